"""Support access: the time-bound, approved way an operator reaches inside one organization.

Operators run the platform (inventory, organizations, quotas, the system catalog, health) but see no
tenant's workspaces, instances, services, outputs or audit trail: "only users authorized to an Org
have access to it". To help a customer an operator asks for access to one org, with a reason, a level
and a duration; the org's admins approve or deny it (or the org pre-approves support access in its
settings). ``paas.authz`` honours a grant only while it is approved and ``starts_at <= now <
expires_at``, so access ends on its own. The level decides what it gives:

- ``read``: every ``view_*`` permission on the org and on everything in it, nothing else;
- ``admin``: what an org admin holds (``ORG_PERMISSIONS[ORG_ADMIN]`` on the org, and all that implies).
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from tenancy.roles import ORG_PERMISSIONS, Role


class SupportLevel(models.TextChoices):
    READ = "read", "Read-only"
    ADMIN = "admin", "Administrative"


class SupportState(models.TextChoices):
    PENDING = "pending", "Waiting for approval"
    APPROVED = "approved", "Approved"
    DENIED = "denied", "Denied"
    REVOKED = "revoked", "Ended early"
    WITHDRAWN = "withdrawn", "Withdrawn"


class SupportAccess(models.Model):
    """One operator's request for access to one organization, and its decision."""

    org = models.ForeignKey(
        "tenancy.Organization",
        verbose_name="organization",
        on_delete=models.CASCADE,
        related_name="support_accesses",
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name="support person",
        on_delete=models.CASCADE,
        related_name="support_accesses",
        help_text="The operator who asked for access and uses it.",
    )
    reason = models.TextField("reason", help_text="Why the access is needed (the customer's ticket).")
    level = models.CharField("level", max_length=8, choices=SupportLevel.choices)
    duration_minutes = models.PositiveIntegerField(
        "duration (minutes)", help_text="How long the access lasts once approved."
    )
    state = models.CharField(
        "state", max_length=12, choices=SupportState.choices, default=SupportState.PENDING, db_index=True
    )
    requested_at = models.DateTimeField("requested", auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name="decided by",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The org admin who approved or denied it; empty when the org pre-approved it.",
    )
    decided_at = models.DateTimeField("decided", null=True, blank=True)
    decision_note = models.CharField("decision note", max_length=500, blank=True)
    starts_at = models.DateTimeField("starts", null=True, blank=True)
    expires_at = models.DateTimeField("expires", null=True, blank=True)
    ended_at = models.DateTimeField("ended early", null=True, blank=True)
    expiry_recorded_at = models.DateTimeField(
        "expiry recorded",
        null=True,
        blank=True,
        help_text="When the schedule wrote the support.expire event of an approved access that ran out.",
    )

    class Meta:
        verbose_name = "support access"
        verbose_name_plural = "support accesses"
        ordering = ["-requested_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(state="approved")
                | (Q(starts_at__isnull=False) & Q(expires_at__gt=models.F("starts_at"))),
                name="tenancy_supportaccess_approved_has_window",
            ),
            models.CheckConstraint(
                condition=Q(duration_minutes__gt=0), name="tenancy_supportaccess_duration_positive"
            ),
        ]
        indexes = [
            models.Index(fields=["user", "state", "expires_at"], name="tenancy_support_user_idx"),
            models.Index(fields=["org", "state", "expires_at"], name="tenancy_support_org_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_level_display()} support access to {self.org} for {self.user}"

    @staticmethod
    def org_codenames(level: str) -> frozenset[str]:
        """The permissions a grant of ``level`` holds on the organization itself (``view_*`` aside)."""
        return frozenset(ORG_PERMISSIONS[Role.ORG_ADMIN]) if level == SupportLevel.ADMIN else frozenset()
