"""Applications: a user's own Kubernetes YAML or Helm chart deployed onto a compute instance (uploaded,
pulled from a repository, or from the application catalog), with revisions to update to and roll back
to. Registered with the app by ``instances.models``.

Like a service, an application lives in its compute instance's namespace, within the instance's totals
(what it uses is kept in columns), and is deployed by the platform's own deployer: the chart is
rendered with ``helm template`` and the objects get the same validation, guardrails, apply, wait and
readiness as a service's (never ``helm install``).
"""

from django.db import models
from django.db.models import Q

from catalog.models import ApplicationSource, CatalogApplication, PackageType
from instances.models import ComputeInstance, Run, UsedOfInstance
from instances.states import State
from tenancy.models import Organization, Project, User


class Application(UsedOfInstance):
    """An application on a compute instance. Its current desired source is its latest revision."""

    org = models.ForeignKey(
        Organization, verbose_name="organization", on_delete=models.PROTECT, related_name="applications"
    )
    project = models.ForeignKey(
        Project, verbose_name="workspace", on_delete=models.PROTECT, related_name="applications"
    )
    compute_instance = models.ForeignKey(
        ComputeInstance,
        verbose_name="compute instance",
        on_delete=models.PROTECT,
        related_name="applications",
    )
    name = models.CharField(
        "name", max_length=53, help_text="A DNS label, unique on the compute instance (a Helm release name)."
    )
    description = models.TextField("description", blank=True)
    owner = models.ForeignKey(User, verbose_name="created by", on_delete=models.PROTECT, related_name="+")
    package_type = models.CharField("package type", max_length=8, choices=PackageType.choices)
    catalog_item = models.ForeignKey(
        CatalogApplication,
        verbose_name="from the catalog",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="deployments",
    )
    state = models.CharField(
        "deployment status", max_length=16, choices=State.choices, default=State.PENDING, db_index=True
    )
    state_reason = models.TextField("state detail", blank=True)
    revision = models.PositiveIntegerField(
        "current revision", default=0, help_text="The number of the revision deployed (or being deployed)."
    )
    objects_applied = models.JSONField(
        "objects",
        default=list,
        blank=True,
        help_text="apiVersion, kind and name of every object applied (what an update prunes and delete "
        "removes).",
    )
    object_status = models.JSONField(
        "object status",
        default=list,
        blank=True,
        help_text="Per object: kind, name, ready, message, and the events of objects that are not ready.",
    )
    status_checked_at = models.DateTimeField("status read", null=True, blank=True)
    created_at = models.DateTimeField("created at", auto_now_add=True)
    ready_at = models.DateTimeField("ready since", null=True, blank=True)
    deleted_at = models.DateTimeField("deleted", null=True, blank=True)

    # Like services: workspace readers see them; the workspace's service managers and the compute
    # instance's owner and collaborators manage them.
    authz_parents = {
        "view_application": [("compute_instance", "view_computeinstance")],
        "change_application": [("project", "manage_services"), ("compute_instance", "use_instance")],
        "delete_application": [("project", "manage_services"), ("compute_instance", "use_instance")],
    }

    class Meta:
        verbose_name = "application"
        verbose_name_plural = "applications"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["compute_instance", "name"],
                condition=~Q(state="deleted"),
                name="instances_application_name_unique",
            ),
        ]
        indexes = [
            models.Index(fields=["project", "state"], name="instances_app_proj_state"),
            models.Index(fields=["compute_instance", "state"], name="instances_app_ci_state"),
        ]

    def __str__(self) -> str:
        return f"{self.compute_instance}/{self.name}"

    @property
    def namespace(self) -> str:
        return self.compute_instance.namespace

    @property
    def cluster(self):
        return self.compute_instance.cluster


class ApplicationRevision(ApplicationSource):
    """One revision of an application: the source it asked for (package type, upload or repository, ref,
    chart, version, values) and what was resolved when it deployed (the Git commit, the chart version
    and digest, the objects). Rolling back adds a new revision with an older one's resolved source."""

    class Outcome(models.TextChoices):
        PENDING = "pending", "Pending"
        DEPLOYED = "deployed", "Deployed"
        FAILED = "failed", "Failed"
        SUPERSEDED = "superseded", "Superseded"

    application = models.ForeignKey(
        Application, verbose_name="application", on_delete=models.CASCADE, related_name="revisions"
    )
    number = models.PositiveIntegerField("revision")
    run = models.OneToOneField(
        Run,
        verbose_name="deploy run",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="revision",
    )
    rollback_of = models.ForeignKey(
        "self",
        verbose_name="rolled back to",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="For a rollback: the earlier revision whose source this one deploys again.",
    )
    outcome = models.CharField("outcome", max_length=16, choices=Outcome.choices, default=Outcome.PENDING)
    message = models.TextField("message", blank=True)
    commit = models.CharField("Git commit", max_length=64, blank=True, help_text="The commit deployed.")
    resolved_chart_version = models.CharField("chart version deployed", max_length=64, blank=True)
    digest = models.CharField(
        "artifact digest", max_length=71, blank=True, help_text="sha256 of the chart archive or the YAML."
    )
    applied = models.JSONField(
        "objects",
        default=list,
        blank=True,
        help_text="apiVersion, kind and name of what this revision applied.",
    )
    notes = models.JSONField("notes", default=list, blank=True, help_text="Warnings from rendering.")
    created_by = models.ForeignKey(
        User, verbose_name="requested by", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField("created", auto_now_add=True)
    deployed_at = models.DateTimeField("deployed", null=True, blank=True)

    class Meta:
        verbose_name = "application revision"
        verbose_name_plural = "application revisions"
        ordering = ["application", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["application", "number"], name="instances_apprevision_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.application.name} revision {self.number}"
