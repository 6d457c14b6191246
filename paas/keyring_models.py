"""The per-organization data keys of :mod:`paas.keyring` (a model of the paas app)."""

from django.db import models
from django.db.models import Q


class KeyState(models.TextChoices):
    ACTIVE = "active", "Active"
    RETIRED = "retired", "Retired"
    DESTROYED = "destroyed", "Destroyed"


class OrgDataKey(models.Model):
    """One data key of one organization: a Fernet key, stored only wrapped (Fernet-encrypted) under the
    platform's keys (``settings.PAAS_ENCRYPTION_KEYS``). At most one active key per org (a constraint);
    a destroyed key has its wrapped key wiped, so what it encrypted can never be read again."""

    org = models.ForeignKey(
        "tenancy.Organization", verbose_name="organization", on_delete=models.CASCADE, related_name="+"
    )
    version = models.PositiveIntegerField("version")
    wrapped_key = models.TextField("wrapped key", blank=True, editable=False)
    state = models.CharField("state", max_length=16, choices=KeyState.choices, default=KeyState.ACTIVE)
    created_at = models.DateTimeField("created", auto_now_add=True)
    retired_at = models.DateTimeField("retired", null=True, blank=True)
    destroyed_at = models.DateTimeField("destroyed", null=True, blank=True)

    # Keys are platform machinery: operators run them for every org (org admins rotate their own).
    authz_operator_codenames = {"view_orgdatakey"}

    class Meta:
        verbose_name = "organization data key"
        verbose_name_plural = "organization data keys"
        ordering = ["org_id", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["org", "version"], name="orgdatakey_org_version_unique"),
            models.UniqueConstraint(
                fields=["org"], condition=Q(state="active"), name="orgdatakey_one_active_per_org"
            ),
        ]

    def __str__(self) -> str:
        return f"data key v{self.version} of org {self.org_id} ({self.state})"
