"""Instance limits: a policy of an organization or of one of its workspaces bounding what each end user
may hold there ("the maximum number of instances that can be launched by an end user can be controlled
via limits specified in a policy").

A row holds at most two limits, each empty for "no limit": ``max_active_instances_per_user`` (the
user's instances that hold resources: every active state, stopped ones included, as the quotas count
them) and ``max_gpus_per_user`` (the GPUs those instances hold, MIG slices as fractions of a GPU; a
stopped instance holds none). The org's row counts the user's instances across the org, a workspace's
row those in that workspace; where both apply, each is checked, so the stricter one refuses first.
``instances.launch_decision`` enforces them in the launch's decision on the usage counters.

Org admins set both scopes in their org; operators set the org level as they set org quotas (the model
lists ``authz_operator_codenames``; the service keeps workspace rows to org admins).
"""

from django.conf import settings
from django.db import models
from django.db.models import Q


class InstanceLimit(models.Model):
    org = models.ForeignKey(
        "tenancy.Organization",
        verbose_name="organization",
        on_delete=models.CASCADE,
        related_name="instance_limits",
    )
    project = models.ForeignKey(
        "tenancy.Project",
        verbose_name="workspace",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="instance_limits",
        help_text="Empty: the organization's limit (every workspace of it). Set: this workspace's.",
    )
    max_active_instances_per_user = models.PositiveIntegerField(
        "active instances per user",
        null=True,
        blank=True,
        help_text="At most this many instances per user (stopped ones count: they keep their storage). "
        "Empty: no limit.",
    )
    max_gpus_per_user = models.PositiveIntegerField(
        "GPUs per user",
        null=True,
        blank=True,
        help_text="At most this many GPUs held by one user's instances (a MIG slice counts its fraction of "
        "a GPU; stopped instances hold none). Empty: no limit.",
    )
    updated_at = models.DateTimeField("updated", auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name="updated by",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    LIMIT_FIELDS = ("max_active_instances_per_user", "max_gpus_per_user")

    # Org admins manage both scopes of their org; the workspace's members see its limit.
    authz_parents = {
        "view_instancelimit": [("org", "administer_organization"), ("project", "view_project")],
        "change_instancelimit": [("org", "administer_organization")],
        "delete_instancelimit": [("org", "administer_organization")],
    }
    # Operators set an org's limits as they set its quota. These codenames hold on every row, so the
    # service refuses them a workspace's row and the selector lists them org rows only (paas.authz).
    authz_operator_codenames = {"view_instancelimit", "change_instancelimit", "delete_instancelimit"}

    class Meta:
        verbose_name = "instance limit"
        verbose_name_plural = "instance limits"
        ordering = ["org__name", "project__name", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["org"],
                condition=Q(project__isnull=True),
                name="tenancy_instancelimit_one_per_org",
                violation_error_message="This organization has an instance limit already.",
            ),
            models.UniqueConstraint(
                fields=["project"],
                condition=Q(project__isnull=False),
                name="tenancy_instancelimit_one_per_project",
                violation_error_message="This workspace has an instance limit already.",
            ),
        ]

    def __str__(self) -> str:
        scope = f"workspace {self.project}" if self.project_id else f"organization {self.org}"
        return f"Instance limit of {scope}"

    @property
    def scope(self) -> str:
        return "project" if self.project_id else "org"
