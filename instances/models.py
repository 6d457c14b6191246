"""Compute instances (launched compute profiles), service instances (service profiles deployed onto
a compute instance), their runs and collaborators.

An instance keeps a *snapshot* of the profile it was launched from (spec, template version, inputs,
price): later edits or the deletion of the profile never change it. Its resource totals are kept in
columns: the usage counters (``instances.counters``) move by them and are re-summed from them.
"""

from django.db import models
from django.db.models import Q
from guardian.models import UserObjectPermissionBase

from catalog.models import ComputeProfile, ServiceProfile
from instances.states import State
from inventory.models import Cluster, Datacenter
from paas.keyring import holds_sealed
from tenancy.models import Organization, Project, User


class HeldResources(models.Model):
    """The resource totals of a profile snapshot, kept in columns: quota usage and the capacity the
    platform has placed on each cluster are summed from these in SQL (compute instances and warm-pool
    standby instances alike)."""

    gpus = models.PositiveIntegerField("GPUs", default=0)
    gpus_by_model = models.JSONField("GPUs by model", default=dict, blank=True)
    mig_slices = models.JSONField("MIG slices", default=dict, blank=True)
    # GPU quota usage, exact: 28ths of a GPU (tenancy.gpu_units; a MIG slice Ng.* is N/7 GPU = 4N units)
    gpu_units = models.PositiveIntegerField(
        "GPU quota units",
        default=0,
        help_text="28ths of a GPU: a whole GPU counts 28, a MIG slice its fraction (1g.10gb = 1/7 = 4).",
    )
    mig_parents = models.JSONField(
        "MIG parent GPU models",
        default=dict,
        blank=True,
        help_text="Per MIG profile, the GPU models that may host its slices (what per-model limits count).",
    )
    cpu_millis = models.PositiveBigIntegerField("CPU (millicores)", default=0)
    memory_gib = models.PositiveIntegerField("memory (GiB)", default=0)
    storage_gib = models.PositiveIntegerField("storage (GiB)", default=0)

    class Meta:
        abstract = True


class ComputeInstance(HeldResources):
    org = models.ForeignKey(
        Organization, verbose_name="organization", on_delete=models.PROTECT, related_name="compute_instances"
    )
    # The snapshot's sealed secret inputs, under the org's data key (paas.keyring).
    secret_org_field = "org"  # noqa: S105 (a field path, see paas.keyring)
    sealed_json_fields = ("snapshot",)
    project = models.ForeignKey(
        Project, verbose_name="workspace", on_delete=models.PROTECT, related_name="compute_instances"
    )
    name = models.CharField("name", max_length=63, help_text="A DNS label, unique in the workspace.")
    description = models.TextField("description", blank=True)
    owner = models.ForeignKey(User, verbose_name="launched by", on_delete=models.PROTECT, related_name="+")
    profile = models.ForeignKey(
        ComputeProfile,
        verbose_name="compute profile",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="instances",
        help_text="Empty once the profile is deleted; the snapshot remains.",
    )
    snapshot = models.JSONField("profile snapshot", default=dict)
    state = models.CharField(
        "state", max_length=16, choices=State.choices, default=State.PENDING, db_index=True
    )
    state_reason = models.TextField("state detail", blank=True)
    cluster = models.ForeignKey(
        Cluster,
        verbose_name="cluster",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="instances",
    )
    namespace = models.CharField("namespace", max_length=63, blank=True)
    placement = models.JSONField("placement explanation", default=dict, blank=True)
    outputs = models.JSONField("outputs", default=dict, blank=True)
    from_warm_pool = models.BooleanField(
        "from the warm pool",
        default=False,
        help_text="Launched by claiming a standby instance of its profile's warm pool (ready at once).",
    )
    created_at = models.DateTimeField("launched", auto_now_add=True)
    ready_at = models.DateTimeField("ready since", null=True, blank=True)
    deleted_at = models.DateTimeField("deleted", null=True, blank=True)
    owner_left_at = models.DateTimeField(
        "owner left",
        null=True,
        blank=True,
        help_text="When the owner lost access (left the workspace or org): the instance stays, for the "
        "workspace admins to keep or delete; the owner's access and ServiceAccount are gone.",
    )

    # Workspace readers see every instance of the workspace; workspace admins manage them. The owner
    # and collaborators hold the instance's own permissions (including its kubeconfig).
    authz_parents = {
        "view_computeinstance": [("project", "view_instances")],
        "delete_computeinstance": [("project", "manage_instances")],
        "change_computeinstance": [("project", "manage_instances")],
    }

    class Meta:
        verbose_name = "compute instance"
        verbose_name_plural = "compute instances"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "name"],
                condition=~Q(state="deleted"),
                name="instances_name_unique_in_project",
            ),
        ]
        indexes = [
            models.Index(fields=["project", "state"], name="instances_project_state_idx"),
            # The rows whose snapshot holds a sealed secret input, by org (the key pages' counts).
            models.Index(
                fields=["org"], condition=Q(holds_sealed("snapshot")), name="instances_ci_sealed_org"
            ),
        ]
        permissions = [("use_instance", "Use the instance as its owner does (collaborator)")]

    def __str__(self) -> str:
        return f"{self.project}/{self.name}"

    @property
    def owner_left(self) -> bool:
        return self.owner_left_at is not None


class ComputeInstanceUserObjectPermission(UserObjectPermissionBase):
    """guardian: per-instance permissions (instance collaborators)."""

    content_object = models.ForeignKey(
        ComputeInstance, on_delete=models.CASCADE, related_name="user_object_permissions"
    )


class Collaborator(models.Model):
    """A user with the owner's access to one instance (granted as the ``use_instance`` permission)."""

    instance = models.ForeignKey(
        ComputeInstance, verbose_name="instance", on_delete=models.CASCADE, related_name="collaborators"
    )
    user = models.ForeignKey(User, verbose_name="user", on_delete=models.CASCADE, related_name="+")
    added_by = models.ForeignKey(
        User, verbose_name="added by", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    added_at = models.DateTimeField("added", auto_now_add=True)

    class Meta:
        verbose_name = "collaborator"
        verbose_name_plural = "collaborators"
        constraints = [
            models.UniqueConstraint(fields=["instance", "user"], name="instances_collaborator_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user} on {self.instance}"


class Run(models.Model):
    """One attempt of an operation on an instance, with its log of steps and Kubernetes events."""

    class Kind(models.TextChoices):
        DEPLOY = "deploy", "Deploy"
        RETRY = "retry", "Retry"
        DELETE = "delete", "Delete"
        ACTION = "action", "Action"
        REDEPLOY = "redeploy", "Redeploy"
        CLAIM = "claim", "Warm-pool hand-over"

    class Outcome(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    instance = models.ForeignKey(
        ComputeInstance, verbose_name="instance", on_delete=models.CASCADE, related_name="runs"
    )
    service = models.ForeignKey(
        "ServiceInstance",
        verbose_name="service",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="runs",
        help_text="Set for a run of a service instance (``instance`` is then the compute instance it "
        "runs on); empty for a run of the compute instance itself.",
    )
    application = models.ForeignKey(
        "Application",
        verbose_name="application",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="runs",
        help_text="Set for a run of an application (``instance`` is then the compute instance it runs on).",
    )
    kind = models.CharField("kind", max_length=16, choices=Kind.choices)
    action = models.CharField(
        "action", max_length=63, blank=True, help_text="For an action run: the template action's name."
    )
    variables = models.JSONField(
        "action variables", default=dict, blank=True, help_text="For an action run: the values it ran with."
    )
    # Sealed secret variables, under the instance's org's data key (paas.keyring).
    secret_org_field = "instance__org"  # noqa: S105 (a field path, see paas.keyring)
    sealed_json_fields = ("variables",)
    requested_by = models.ForeignKey(
        User, verbose_name="requested by", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    attempt = models.PositiveIntegerField("attempt", default=0)
    outcome = models.CharField("outcome", max_length=16, choices=Outcome.choices, default=Outcome.QUEUED)
    message = models.TextField("message", blank=True)
    log = models.JSONField("log", default=list, blank=True)
    created_at = models.DateTimeField("queued", auto_now_add=True)
    started_at = models.DateTimeField("started", null=True, blank=True)
    finished_at = models.DateTimeField("finished", null=True, blank=True)
    heartbeat_at = models.DateTimeField("last heartbeat", null=True, blank=True)

    class Meta:
        verbose_name = "run"
        verbose_name_plural = "runs"
        ordering = ["-created_at"]
        indexes = [
            # The runs whose variables hold a sealed secret (the key pages' counts, by the instance).
            models.Index(
                fields=["instance"], condition=Q(holds_sealed("variables")), name="instances_run_sealed"
            ),
        ]

    def __str__(self) -> str:
        target = self.service or self.application or self.instance
        what = f"{self.action} action" if self.kind == self.Kind.ACTION else self.get_kind_display()
        return f"{what} of {target} ({self.get_outcome_display()})"


class CollaboratorInvitation(models.Model):
    """Someone without an account invited to an instance: they become its collaborator when they
    accept the workspace invitation sent to them (``instances.services.invitation_accepted``)."""

    instance = models.ForeignKey(
        ComputeInstance,
        verbose_name="instance",
        on_delete=models.CASCADE,
        related_name="collaborator_invitations",
    )
    invitation = models.ForeignKey(
        "tenancy.Invitation",
        verbose_name="invitation",
        on_delete=models.CASCADE,
        related_name="instance_grants",
    )
    invited_by = models.ForeignKey(
        User, verbose_name="invited by", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField("invited", auto_now_add=True)

    class Meta:
        verbose_name = "collaborator invitation"
        verbose_name_plural = "collaborator invitations"
        constraints = [
            models.UniqueConstraint(
                fields=["instance", "invitation"], name="instances_collaboratorinvitation_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.invitation.email} invited to {self.instance}"


class UsedOfInstance(models.Model):
    """What a workload deployed onto a compute instance (a service, an application) uses of it, from its
    rendered pod templates and claims; summed per instance against the instance's totals."""

    gpus = models.PositiveIntegerField("GPUs", default=0)
    gpu_units = models.PositiveIntegerField("GPU quota units", default=0)
    mig_slices = models.JSONField("MIG slices", default=dict, blank=True)
    cpu_millis = models.PositiveBigIntegerField("CPU (millicores)", default=0)
    memory_gib = models.DecimalField("memory (GiB)", max_digits=12, decimal_places=3, default=0)
    storage_gib = models.DecimalField("storage (GiB)", max_digits=12, decimal_places=3, default=0)

    class Meta:
        abstract = True


class ServiceInstance(UsedOfInstance):
    """A service profile deployed onto a compute instance: its objects live in the instance's namespace
    and within the instance's quota (what it uses is kept in columns, summed per instance).

    Like a compute instance it keeps a *snapshot* of its profile (template version, input, output and
    action settings, labels, annotations, extra configuration, datacenter and storage): later edits of
    the profile only affect new services.
    """

    org = models.ForeignKey(
        Organization, verbose_name="organization", on_delete=models.PROTECT, related_name="service_instances"
    )
    # Sealed secret inputs of the snapshot and of the service's own values (paas.keyring).
    secret_org_field = "org"  # noqa: S105 (a field path, see paas.keyring)
    sealed_json_fields = ("snapshot", "input_values")
    project = models.ForeignKey(
        Project, verbose_name="workspace", on_delete=models.PROTECT, related_name="service_instances"
    )
    compute_instance = models.ForeignKey(
        ComputeInstance, verbose_name="compute instance", on_delete=models.PROTECT, related_name="services"
    )
    name = models.CharField("name", max_length=63, help_text="A DNS label, unique on the compute instance.")
    description = models.TextField("description", blank=True)
    owner = models.ForeignKey(User, verbose_name="deployed by", on_delete=models.PROTECT, related_name="+")
    profile = models.ForeignKey(
        ServiceProfile,
        verbose_name="service profile",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="service_instances",
        help_text="Empty once the profile is deleted; the snapshot remains.",
    )
    service_type = models.CharField(
        "service type", max_length=16, choices=ServiceProfile.ServiceType.choices, db_index=True
    )
    snapshot = models.JSONField("profile snapshot", default=dict)
    input_values = models.JSONField(
        "input values",
        default=dict,
        blank=True,
        help_text="The inputs it was deployed with (defaults and the user's overrides; secrets sealed).",
    )
    datacenter = models.ForeignKey(
        Datacenter,
        verbose_name="datacenter",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    storage = models.JSONField(
        "storage", default=list, blank=True, help_text="Names of the storage attached."
    )
    state = models.CharField(
        "state", max_length=16, choices=State.choices, default=State.PENDING, db_index=True
    )
    state_reason = models.TextField("state detail", blank=True)
    host = models.CharField(
        "host",
        max_length=253,
        blank=True,
        help_text="The Ingress host the platform assigned (under the compute instance's host suffix).",
    )
    outputs = models.JSONField("outputs", default=dict, blank=True)
    objects_applied = models.JSONField(
        "objects",
        default=list,
        blank=True,
        help_text="apiVersion, kind and name of every object the last deploy applied (what delete and "
        "redeploy remove).",
    )
    created_at = models.DateTimeField("deployed", auto_now_add=True)
    ready_at = models.DateTimeField("ready since", null=True, blank=True)
    deleted_at = models.DateTimeField("deleted", null=True, blank=True)

    # Workspace readers see every service of the workspace. Services are managed by those who may
    # manage services in the workspace (workspace admins, read-write collaborators) and by the compute
    # instance's owner and collaborators; read-only members only look.
    authz_parents = {
        "view_serviceinstance": [("compute_instance", "view_computeinstance")],
        "change_serviceinstance": [("project", "manage_services"), ("compute_instance", "use_instance")],
        "delete_serviceinstance": [("project", "manage_services"), ("compute_instance", "use_instance")],
    }

    class Meta:
        verbose_name = "service instance"
        verbose_name_plural = "service instances"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["compute_instance", "name"],
                condition=~Q(state="deleted"),
                name="instances_service_name_unique_on_instance",
            ),
        ]
        indexes = [
            models.Index(fields=["project", "state"], name="instances_service_proj_state"),
            models.Index(fields=["compute_instance", "state"], name="instances_service_ci_state"),
            # The rows holding a sealed secret in either column, by org (the key pages' counts: the
            # same condition as their query's, so PostgreSQL proves it and reads only these rows).
            models.Index(
                fields=["org"],
                condition=Q(holds_sealed("snapshot")) | Q(holds_sealed("input_values")),
                name="instances_svc_sealed_org",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.compute_instance}/{self.name}"

    @property
    def namespace(self) -> str:
        return self.compute_instance.namespace

    @property
    def cluster(self):
        return self.compute_instance.cluster


# --- warm pools ----------------------------------------------------------------------------------------


class WarmPool(models.Model):
    """Standby instances of one compute profile kept ready at a desired capacity, anywhere the profile
    may run or only in one datacenter or on one cluster, so that a launch claims one at once.

    The control loop (``instances.pool_loop``) provisions standby instances up to the capacity in force
    (``desired``, or the first schedule that applies now) and retires the surplus, within the clusters'
    free capacity and the pool quota (``max_gpus``): standby GPUs count there, never against a tenant's
    quota. The profile's own pool (no datacenter, no cluster) follows the profile's
    ``warm_pool_size``; operators add scoped pools and schedules in the studio.
    """

    class Status(models.TextChoices):
        AT_TARGET = "at_target", "At target"
        CONVERGING = "converging", "Converging"
        SHORT = "short", "Cannot reach target"
        DISABLED = "disabled", "Disabled"

    profile = models.ForeignKey(
        ComputeProfile, verbose_name="compute profile", on_delete=models.CASCADE, related_name="warm_pools"
    )
    datacenter = models.ForeignKey(
        Datacenter,
        verbose_name="datacenter",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="warm_pools",
        help_text="Keep this pool's standby instances in this datacenter only (empty: anywhere).",
    )
    cluster = models.ForeignKey(
        Cluster,
        verbose_name="cluster",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="warm_pools",
        help_text="Keep this pool's standby instances on this cluster only (empty: anywhere).",
    )
    desired = models.PositiveIntegerField(
        "desired capacity", default=0, help_text="Standby instances kept ready when no schedule applies."
    )
    max_gpus = models.PositiveIntegerField(
        "pool quota (GPUs)",
        null=True,
        blank=True,
        help_text="At most this many GPUs (a MIG slice counts its fraction of a GPU) held by this pool's "
        "standby instances. Empty: only the clusters' free capacity limits the pool.",
    )
    enabled = models.BooleanField("enabled", default=True)
    status = models.CharField(
        "status", max_length=16, choices=Status.choices, default=Status.CONVERGING, editable=False
    )
    status_reason = models.TextField(
        "status detail", blank=True, editable=False, help_text="Why the loop cannot reach the target, if so."
    )
    checked_at = models.DateTimeField("last converged", null=True, blank=True, editable=False)
    created_at = models.DateTimeField("created", auto_now_add=True)
    updated_at = models.DateTimeField("updated", auto_now=True)

    class Meta:
        verbose_name = "warm pool"
        verbose_name_plural = "warm pools"
        ordering = ["profile__name", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["profile", "datacenter", "cluster"],
                nulls_distinct=False,
                name="instances_warmpool_unique_scope",
            ),
            models.CheckConstraint(
                condition=Q(datacenter__isnull=True) | Q(cluster__isnull=True),
                name="instances_warmpool_one_scope",
            ),
        ]

    def __str__(self) -> str:
        scope = self.cluster or self.datacenter
        return f"{self.profile.name} pool" + (f" ({scope})" if scope else "")


class PoolSchedule(models.Model):
    """A rule that sets a pool's desired capacity on some days between two times of a time zone, e.g.
    weekdays 08:00-20:00 Europe/Paris: 9. The first rule (by position) that applies wins; when none
    does the pool's own ``desired`` is in force. ``start == end`` means the whole day; an ``end``
    before ``start`` runs past midnight (into the next day)."""

    pool = models.ForeignKey(
        WarmPool, verbose_name="pool", on_delete=models.CASCADE, related_name="schedules"
    )
    name = models.CharField("name", max_length=100, blank=True)
    days = models.JSONField(
        "days", default=list, help_text="Days of the week it applies on: 0 Monday ... 6 Sunday."
    )
    start = models.TimeField("from")
    end = models.TimeField("until")
    timezone = models.CharField("time zone", max_length=64, default="UTC", help_text="An IANA zone name.")
    desired = models.PositiveIntegerField("desired capacity")
    position = models.PositiveIntegerField("position", default=0)

    class Meta:
        verbose_name = "pool schedule"
        verbose_name_plural = "pool schedules"
        ordering = ["pool", "position", "pk"]

    def __str__(self) -> str:
        return self.name or f"schedule {self.position}"


class StandbyInstance(HeldResources):
    """A compute instance built ahead of demand for a warm pool: its namespace, the template's objects
    and placeholder pods (a low PriorityClass) that hold the profile's GPUs, CPU and memory on the
    cluster. It carries no tenant identity (no user ServiceAccount, no org, workspace or instance
    labels, no outputs) until a launch claims it: the claiming ``ComputeInstance`` then takes over its
    namespace (``instance``) and the hand-over gives it the tenant's identity."""

    # Its snapshot's sealed secret inputs are its profile's: under the profile's org's data key (a system
    # profile's: the platform keys), rotated with that org (paas.keyring).
    secret_org_field = "pool__profile__org"  # noqa: S105 (a field path)
    sealed_json_fields = ("snapshot",)

    class State(models.TextChoices):
        PROVISIONING = "provisioning", "Provisioning"
        READY = "ready", "Ready"
        CLAIMED = "claimed", "Claimed"
        RETIRING = "retiring", "Retiring"
        FAILED = "failed", "Failed"
        DELETED = "deleted", "Deleted"

    pool = models.ForeignKey(
        WarmPool,
        verbose_name="pool",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="standbys",
        help_text="Empty once the pool is deleted (the loop then retires it).",
    )
    profile = models.ForeignKey(
        ComputeProfile, verbose_name="compute profile", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    snapshot = models.JSONField("profile snapshot", default=dict)
    snapshot_digest = models.CharField(
        "snapshot digest",
        max_length=64,
        db_index=True,
        help_text="Claimable only by launches of this snapshot.",
    )
    cluster = models.ForeignKey(
        Cluster, verbose_name="cluster", on_delete=models.PROTECT, related_name="standbys"
    )
    namespace = models.CharField("namespace", max_length=63, unique=True)
    placement = models.JSONField("placement explanation", default=dict, blank=True)
    state = models.CharField("state", max_length=16, choices=State.choices, default=State.PROVISIONING)
    state_reason = models.TextField("state detail", blank=True)
    objects_applied = models.JSONField(
        "objects",
        default=list,
        blank=True,
        help_text="apiVersion, kind and name of the template objects applied for the standby (the "
        "hand-over deletes those the claiming instance's render no longer has).",
    )
    instance = models.OneToOneField(
        ComputeInstance,
        verbose_name="claimed by",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="standby",
    )
    attempts = models.PositiveIntegerField("deploy attempts", default=0)
    created_at = models.DateTimeField("created", auto_now_add=True)
    ready_at = models.DateTimeField("ready since", null=True, blank=True)
    claimed_at = models.DateTimeField("claimed", null=True, blank=True)
    retired_at = models.DateTimeField("retired", null=True, blank=True)
    heartbeat_at = models.DateTimeField("last heartbeat", null=True, blank=True)

    class Meta:
        verbose_name = "standby instance"
        verbose_name_plural = "standby instances"
        ordering = ["created_at", "pk"]
        indexes = [
            models.Index(fields=["pool", "state"], name="instances_standby_pool_state"),
            models.Index(fields=["profile", "state", "snapshot_digest"], name="instances_standby_claim"),
        ]

    def __str__(self) -> str:
        return self.namespace


# Applications and the kubectl proxy's records live in their own modules (this one holds the instances
# and their runs); imported here so that Django registers them with the app.
from instances.application_models import Application, ApplicationRevision  # noqa: E402, F401
from instances.counter_models import UsageCounter, UsageCounterCheck, WarmPoolUsage  # noqa: E402, F401
from instances.proxy_models import KubeCredential, ProxyRequestLog  # noqa: E402, F401
