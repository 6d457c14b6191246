"""Inventory: where GPU capacity lives and how the platform reaches it.

Datacenters group clusters and storage; clusters are registered by kubeconfig (encrypted) and their
nodes are synced from the Kubernetes API (GPU Feature Discovery labels, allocatable resources);
agents are the worker pools that reach a datacenter's clusters. Operators manage all of it; org
admins read what their org may use (shared clusters and those dedicated to the org).
"""

from django.db import models

from paas.fields import EncryptedTextField
from tenancy.models import Organization, slug_validator


class Datacenter(models.Model):
    """A public-cloud region or a private data center."""

    class Kind(models.TextChoices):
        PUBLIC_CLOUD = "public_cloud", "Public cloud"
        DATA_CENTER = "data_center", "Data center"

    class Provider(models.TextChoices):
        AWS = "aws", "AWS"
        AZURE = "azure", "Azure"
        GCP = "gcp", "Google Cloud"
        OCI = "oci", "Oracle Cloud"

    class InfrastructureType(models.TextChoices):
        VSPHERE = "vsphere", "VMware vSphere"
        NUTANIX = "nutanix", "Nutanix"
        BARE_METAL = "bare_metal", "Bare metal"

    name = models.SlugField("name", max_length=63, unique=True, validators=[slug_validator])
    display_name = models.CharField("display name", max_length=200)
    kind = models.CharField("kind", max_length=16, choices=Kind.choices)
    # public cloud
    provider = models.CharField("cloud provider", max_length=16, choices=Provider.choices, blank=True)
    region = models.CharField("region", max_length=64, blank=True)
    kubernetes_version = models.CharField("Kubernetes version", max_length=32, blank=True)
    instance_types = models.JSONField("instance types", default=list, blank=True)
    # data center
    infrastructure_type = models.CharField(
        "infrastructure type", max_length=16, choices=InfrastructureType.choices, blank=True
    )
    operating_system = models.CharField("operating system", max_length=100, blank=True)
    gpu_types = models.JSONField("GPU types", default=list, blank=True)
    credentials = EncryptedTextField("credentials", help_text="Cloud credentials or SSH keys; write-only.")
    created_at = models.DateTimeField("created", auto_now_add=True)

    class Meta:
        verbose_name = "datacenter"
        verbose_name_plural = "datacenters"
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(kind="public_cloud", infrastructure_type="")
                    | models.Q(kind="data_center", provider="", region="")
                ),
                name="inventory_datacenter_fields_match_kind",
            ),
        ]

    def __str__(self) -> str:
        return self.display_name or self.name


class Agent(models.Model):
    """A pool of workers that reaches the clusters of one datacenter, or of all (a global agent).

    Its workers run ``Q_CLUSTER_NAME=agent-<name> manage.py qcluster`` (django-q2's multi-queue
    setting) and take only the tasks routed to that queue; a heartbeat schedule pinned to the queue
    shows they are alive.
    """

    name = models.SlugField("name", max_length=63, unique=True, validators=[slug_validator])
    datacenter = models.ForeignKey(
        Datacenter,
        verbose_name="datacenter",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="agents",
        help_text="Empty: a global agent.",
    )
    created_at = models.DateTimeField("created", auto_now_add=True)

    class Meta:
        verbose_name = "agent"
        verbose_name_plural = "agents"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def queue(self) -> str:
        """The django-q2 cluster name (OrmQ key) this agent's workers listen on."""
        return f"agent-{self.name}"

    @property
    def is_global(self) -> bool:
        return self.datacenter_id is None


class DatacenterAgent(models.Model):
    """Global settings: which agent serves a datacenter's deployment work."""

    datacenter = models.OneToOneField(
        Datacenter, verbose_name="datacenter", on_delete=models.CASCADE, related_name="agent_mapping"
    )
    agent = models.ForeignKey(Agent, verbose_name="agent", on_delete=models.PROTECT, related_name="mappings")

    class Meta:
        verbose_name = "datacenter agent mapping"
        verbose_name_plural = "datacenter agent mappings"
        ordering = ["datacenter__name"]

    def __str__(self) -> str:
        return f"{self.datacenter} → {self.agent}"


class Cluster(models.Model):
    """A Kubernetes cluster the platform deploys into, reached with an encrypted kubeconfig."""

    class Tenancy(models.TextChoices):
        SHARED = "shared", "Shared (multi-tenant)"
        DEDICATED = "dedicated", "Dedicated to one organization"

    class Status(models.TextChoices):
        UNKNOWN = "unknown", "Not checked yet"
        REACHABLE = "reachable", "Reachable"
        DEGRADED = "degraded", "Reachable, control plane unhealthy"
        UNREACHABLE = "unreachable", "Unreachable"

    name = models.SlugField("name", max_length=63, unique=True, validators=[slug_validator])
    display_name = models.CharField("display name", max_length=200)
    datacenter = models.ForeignKey(
        Datacenter,
        verbose_name="datacenter",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="clusters",
    )
    kubeconfig = EncryptedTextField("kubeconfig", help_text="Write-only; never shown again.")
    server = models.URLField("API server", max_length=300, blank=True)
    labels = models.JSONField("labels", default=dict, blank=True)
    tenancy = models.CharField("tenancy", max_length=16, choices=Tenancy.choices, default=Tenancy.SHARED)
    dedicated_org = models.ForeignKey(
        Organization,
        verbose_name="dedicated to",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="dedicated_clusters",
    )
    offers_sandbox_runtime = models.BooleanField(
        "offers the sandbox runtime (kata)",
        default=False,
        help_text="Detected by the reachability check from the cluster's RuntimeClasses.",
    )
    ingress_domain = models.CharField(
        "ingress domain",
        max_length=200,
        blank=True,
        help_text="Instance Ingress hosts must end in <namespace>.<this domain> (enforced by admission). "
        "Empty: apps.<cluster name>.paas.internal.",
    )
    ingress_class = models.CharField(
        "ingress class",
        max_length=253,
        blank=True,
        help_text="IngressClass of the Ingresses the platform gives services (notebook and endpoint URLs); "
        "empty uses the cluster's default class. Injected into the render: not a template input.",
    )
    ingress_tls = models.BooleanField(
        "ingress TLS",
        default=False,
        help_text="The ingress controller's default certificate covers *.<ingress domain>: service URLs are "
        "https (no certificate key is ever copied into a tenant namespace).",
    )
    guardrails = models.JSONField(
        "guardrails",
        default=dict,
        blank=True,
        help_text="The admission policies installed on the cluster at the last refresh: version, "
        "enforced rules, whether the mutating pod defaults are active, the platform identity exempt.",
    )
    prometheus_url = models.URLField(
        "Prometheus URL",
        max_length=300,
        blank=True,
        help_text="The cluster's Prometheus (with the DCGM exporter's per-pod GPU utilisation), e.g. "
        "https://prometheus.example.com/. Billing reads GPU utilisation from it for idle-GPU figures; "
        "empty: the dashboards say utilisation is not configured. Checked by the outbound policy.",
    )
    status = models.CharField("status", max_length=16, choices=Status.choices, default=Status.UNKNOWN)
    status_message = models.TextField("status detail", blank=True)
    kubernetes_version = models.CharField("Kubernetes version", max_length=32, blank=True)
    last_checked_at = models.DateTimeField("last checked", null=True, blank=True)
    last_seen_at = models.DateTimeField("last check-in", null=True, blank=True)
    created_at = models.DateTimeField("created", auto_now_add=True)

    class Meta:
        verbose_name = "cluster"
        verbose_name_plural = "clusters"
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(tenancy="shared", dedicated_org__isnull=True)
                    | models.Q(tenancy="dedicated", dedicated_org__isnull=False)
                ),
                name="inventory_cluster_dedicated_has_org",
            ),
        ]

    def __str__(self) -> str:
        return self.display_name or self.name


class Node(models.Model):
    """A node of a cluster as last synced: GPU Feature Discovery labels and allocatable resources."""

    cluster = models.ForeignKey(
        Cluster, verbose_name="cluster", on_delete=models.CASCADE, related_name="nodes"
    )
    name = models.CharField("name", max_length=253)
    gpu_product = models.CharField("GPU product", max_length=100, blank=True, db_index=True)
    gpu_count = models.PositiveIntegerField("GPUs", default=0)
    gpu_memory_mib = models.PositiveIntegerField("GPU memory (MiB)", default=0)
    mig_capable = models.BooleanField("MIG capable", default=False)
    mig_strategy = models.CharField("MIG strategy", max_length=16, blank=True)
    mig_config = models.CharField("MIG configuration", max_length=64, blank=True)
    mig_config_state = models.CharField("MIG configuration state", max_length=32, blank=True)
    allocatable_cpu_millis = models.PositiveBigIntegerField("allocatable CPU (millicores)", default=0)
    allocatable_memory_bytes = models.PositiveBigIntegerField("allocatable memory (bytes)", default=0)
    allocatable_gpus = models.PositiveIntegerField("allocatable nvidia.com/gpu", default=0)
    allocatable_mig = models.JSONField(
        "allocatable MIG slices", default=dict, blank=True, help_text='e.g. {"mig-1g.10gb": 56}'
    )
    ready = models.BooleanField("ready", default=False)
    schedulable = models.BooleanField("schedulable", default=False, help_text="Ready and not cordoned.")
    labels = models.JSONField("labels", default=dict, blank=True)
    synced_at = models.DateTimeField("synced")

    class Meta:
        verbose_name = "node"
        verbose_name_plural = "nodes"
        ordering = ["cluster__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["cluster", "name"], name="inventory_node_cluster_name_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.cluster.name}/{self.name}"


class MigChange(models.Model):
    """An admin's request to partition GPUs: set ``nvidia.com/mig.config`` on nodes and follow
    ``nvidia.com/mig.config.state`` (written by NVIDIA's MIG manager) to success or failure."""

    class State(models.TextChoices):
        PENDING = "pending", "Applying"
        SUCCESS = "success", "Succeeded"
        FAILED = "failed", "Failed"

    cluster = models.ForeignKey(
        Cluster, verbose_name="cluster", on_delete=models.CASCADE, related_name="mig_changes"
    )
    node_names = models.JSONField("nodes", default=list)
    node_selector = models.CharField("node label selector", max_length=300, blank=True)
    config = models.CharField("MIG configuration", max_length=64)
    previous_configs = models.JSONField("previous configurations", default=dict, blank=True)
    state = models.CharField("state", max_length=16, choices=State.choices, default=State.PENDING)
    message = models.TextField("message", blank=True)
    requested_by = models.ForeignKey(
        "tenancy.User", verbose_name="requested by", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField("requested", auto_now_add=True)
    finished_at = models.DateTimeField("finished", null=True, blank=True)

    class Meta:
        verbose_name = "GPU partitioning change"
        verbose_name_plural = "GPU partitioning changes"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.config} on {self.cluster.name} ({self.get_state_display()})"


class Storage(models.Model):
    """Storage a service can attach: high-speed (a StorageClass) or object storage (a bucket).

    Without a datacenter it is *open* storage, visible in every datacenter.
    """

    class Kind(models.TextChoices):
        HIGH_SPEED = "high-speed-storage", "High-speed storage"
        OBJECT = "object-storage", "Object storage"

    name = models.SlugField("name", max_length=63, unique=True, validators=[slug_validator])
    kind = models.CharField("type", max_length=32, choices=Kind.choices)
    datacenter = models.ForeignKey(
        Datacenter,
        verbose_name="datacenter",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="storages",
        help_text="Empty: open storage, visible in every datacenter.",
    )
    storage_class = models.CharField("StorageClass", max_length=253, blank=True)
    bucket_endpoint = models.URLField("bucket endpoint", max_length=300, blank=True)
    bucket_name = models.CharField("bucket", max_length=63, blank=True)
    credentials = EncryptedTextField("credentials", help_text="Bucket access keys; write-only.")
    created_at = models.DateTimeField("created", auto_now_add=True)

    class Meta:
        verbose_name = "storage"
        verbose_name_plural = "storage"
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(kind="high-speed-storage", bucket_endpoint="", bucket_name="")
                    & ~models.Q(storage_class="")
                )
                | (models.Q(kind="object-storage", storage_class="") & ~models.Q(bucket_name="")),
                name="inventory_storage_backing_matches_type",
            ),
        ]

    def __str__(self) -> str:
        return self.name


# What the platform holds on each cluster (one row per cluster, kept by conditional UPDATEs): its own
# module; imported here so that Django registers it with the app.
from inventory.reservation_models import ClusterReservation  # noqa: E402, F401
