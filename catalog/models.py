"""The profile catalog: environment templates (versioned), compute profiles and service profiles.

Every catalog item lives in one of three scopes:

* **project**: ``org`` and ``project`` set; created by the project's PaaS admins (or org admins), and
  shareable with all or selected projects *of the same org* (read-only there: inherited);
* **system**: ``org`` and ``project`` empty; the operators' system catalog, shared with all or selected
  orgs;
* **tenant copy** (profiles only): ``org`` set, ``project`` empty, ``origin`` the system profile. A
  tenant's edits of a system profile live here; the original is untouched and the copy replaces it in
  that org's catalogs.
"""

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q

from inventory.models import Datacenter, Storage
from paas.fields import EncryptedTextField
from tenancy.models import Organization, Project, User, slug_validator


class Sharing(models.TextChoices):
    NONE = "none", "None"
    ALL = "all", "All projects"
    SELECTED = "selected", "Selected projects"


class SystemSharing(models.TextChoices):
    NONE = "none", "No organization"
    ALL = "all", "All organizations"
    SELECTED = "selected", "Selected organizations"


class CatalogItem(models.Model):
    """Scope, sharing and naming shared by templates and profiles."""

    org = models.ForeignKey(
        Organization,
        verbose_name="organization",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
    )
    project = models.ForeignKey(
        Project, verbose_name="project", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    name = models.SlugField(
        "unique name",
        max_length=63,
        validators=[slug_validator],
        help_text="Cannot be changed after creation.",
    )
    display_name = models.CharField("display name", max_length=200)
    description = models.TextField("description", blank=True)
    sharing = models.CharField("sharing", max_length=16, choices=Sharing.choices, default=Sharing.NONE)
    shared_projects = models.ManyToManyField(
        Project, verbose_name="shared with projects", blank=True, related_name="+"
    )
    system_sharing = models.CharField(
        "system catalog sharing", max_length=16, choices=SystemSharing.choices, default=SystemSharing.NONE
    )
    shared_orgs = models.ManyToManyField(
        Organization, verbose_name="shared with organizations", blank=True, related_name="+"
    )
    created_by = models.ForeignKey(
        User, verbose_name="created by", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField("created", auto_now_add=True)
    updated_at = models.DateTimeField("updated", auto_now=True)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return self.name

    @property
    def is_system(self) -> bool:
        return self.org_id is None

    @property
    def scope_label(self) -> str:
        if self.org_id is None:
            return "system"
        return str(self.project) if self.project_id else f"{self.org.name} (tenant copy)"


def _scope_constraints(prefix: str, *, tenant_copies: bool) -> list:
    scopes = Q(org__isnull=True, project__isnull=True) | Q(org__isnull=False, project__isnull=False)
    if tenant_copies:
        scopes |= Q(org__isnull=False, project__isnull=True, origin__isnull=False)
    constraints = [
        models.CheckConstraint(condition=scopes, name=f"{prefix}_scope"),
        models.UniqueConstraint(
            fields=["project", "name"],
            condition=Q(project__isnull=False),
            name=f"{prefix}_project_name_unique",
        ),
        models.UniqueConstraint(
            fields=["name"], condition=Q(org__isnull=True), name=f"{prefix}_system_name_unique"
        ),
    ]
    if tenant_copies:
        constraints.append(
            models.UniqueConstraint(
                fields=["org", "origin"], condition=Q(origin__isnull=False), name=f"{prefix}_one_tenant_copy"
            )
        )
    return constraints


class EnvironmentTemplate(CatalogItem):
    """Versioned code that drives a deployment (Kubernetes manifests as a Jinja2 template)."""

    class Meta:
        verbose_name = "environment template"
        verbose_name_plural = "environment templates"
        ordering = ["name"]
        constraints = _scope_constraints("catalog_template", tenant_copies=False)


class TemplateVersion(models.Model):
    """One version of a template: manifests plus declared inputs, outputs, actions and custom resources.

    Drafts may change; a published version is immutable (new versions are added instead).
    """

    class State(models.TextChoices):
        DRAFT = "draft", "Draft"
        PUBLISHED = "published", "Published"

    template = models.ForeignKey(
        EnvironmentTemplate, verbose_name="template", on_delete=models.CASCADE, related_name="versions"
    )
    version = models.CharField("version", max_length=32, validators=[slug_validator])
    manifests = models.TextField(
        "manifests (Jinja2)", help_text="Kubernetes YAML, rendered in Jinja2's sandbox."
    )
    inputs = models.JSONField("inputs", default=list, blank=True)
    outputs = models.JSONField("outputs", default=list, blank=True)
    actions = models.JSONField("actions", default=list, blank=True)
    custom_resources = models.JSONField("custom resources", default=list, blank=True)
    kubernetes_version = models.CharField("Kubernetes version", max_length=16, default="1.37.0")
    state = models.CharField("state", max_length=16, choices=State.choices, default=State.DRAFT)
    published_at = models.DateTimeField("published", null=True, blank=True)
    created_by = models.ForeignKey(
        User, verbose_name="created by", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField("created", auto_now_add=True)

    class Meta:
        verbose_name = "template version"
        verbose_name_plural = "template versions"
        ordering = ["template__name", "-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["template", "version"], name="catalog_templateversion_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.template.name}@{self.version}"

    @property
    def is_published(self) -> bool:
        return self.state == self.State.PUBLISHED

    def input_names(self) -> list[str]:
        return [item["name"] for item in self.inputs]


class Profile(CatalogItem):
    """What compute and service profiles share: backing template version, metadata, presentation."""

    origin = models.ForeignKey(
        "self",
        verbose_name="system original",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="tenant_copies",
        help_text="For a tenant's edited copy of a system profile.",
    )
    template_version = models.ForeignKey(
        TemplateVersion, verbose_name="template version", on_delete=models.PROTECT, related_name="+"
    )
    labels = models.JSONField("labels", default=dict, blank=True)
    annotations = models.JSONField("annotations", default=dict, blank=True)
    icon_url = models.URLField("icon URL", max_length=500, blank=True)
    readme = models.TextField("readme (markdown)", blank=True)
    published = models.BooleanField("published", default=False)

    # Cost metadata: what a tenant is billed for an instance of the profile (snapshotted at launch;
    # billing meters the instance's running time against it).
    class CostPeriod(models.TextChoices):
        HOUR = "hour", "per hour"
        DAY = "day", "per day"
        MONTH = "month", "per month"

    class BillingModel(models.TextChoices):
        ON_DEMAND = "on_demand", "On demand (billed for running time)"
        RESERVED = "reserved", "Reserved (billed for the committed term, whatever runs)"

    cost_currency = models.CharField("currency", max_length=3, default="USD")
    cost_amount = models.DecimalField(
        "price", max_digits=12, decimal_places=4, default=0, validators=[MinValueValidator(0)]
    )
    cost_period = models.CharField(
        "price unit", max_length=8, choices=CostPeriod.choices, default=CostPeriod.HOUR
    )
    cost_billing_model = models.CharField(
        "billing model", max_length=16, choices=BillingModel.choices, default=BillingModel.ON_DEMAND
    )
    cost_stopped_amount = models.DecimalField(
        "price while stopped",
        max_digits=12,
        decimal_places=4,
        default=0,
        validators=[MinValueValidator(0)],
        help_text="Per the same unit, while the instance is stopped or being deleted (its storage only). "
        "On-demand only: a reserved instance is billed its price for the whole term.",
    )

    class Meta:
        abstract = True


class ComputeProfile(Profile):
    """A SKU: GPUs, CPU, memory and storage in one or more resource groups, at a price."""

    class Flavor(models.TextChoices):
        NAMESPACE = "namespace", "Namespace"
        VIRTUAL_CLUSTER = "virtual_cluster", "Virtual cluster"
        VM = "vm", "Virtual machine"
        BARE_METAL = "bare_metal", "Bare metal"
        DEDICATED_CLUSTER = "dedicated_cluster", "Dedicated cluster"

    class Allocation(models.TextChoices):
        ON_DEMAND = "on_demand", "On demand"
        WARM_POOL = "warm_pool", "Warm pool"

    flavor = models.CharField("flavor", max_length=32, choices=Flavor.choices, default=Flavor.NAMESPACE)
    allocation_strategy = models.CharField(
        "allocation strategy", max_length=16, choices=Allocation.choices, default=Allocation.ON_DEMAND
    )
    warm_pool_size = models.PositiveIntegerField("warm pool desired capacity", default=0)
    input_values = models.JSONField("template input values", default=dict, blank=True)

    # Sealed secret inputs (catalog/secret_inputs.py) under the org's data key (paas.keyring).
    secret_org_field = "org"  # noqa: S105 (a field path, see paas.keyring)
    sealed_json_fields = ("input_values",)

    class Meta:
        verbose_name = "compute profile"
        verbose_name_plural = "compute profiles"
        ordering = ["name"]
        constraints = _scope_constraints("catalog_computeprofile", tenant_copies=True)
        indexes = [models.Index(fields=["org", "published"], name="catalog_compute_org_pub_idx")]


class ResourceGroup(models.Model):
    """One group of resources of a compute profile; several groups make a heterogeneous profile."""

    profile = models.ForeignKey(
        ComputeProfile, verbose_name="profile", on_delete=models.CASCADE, related_name="resource_groups"
    )
    position = models.PositiveSmallIntegerField("position", default=0)
    gpu_model = models.CharField("GPU model", max_length=100, blank=True, help_text="nvidia.com/gpu.product")
    gpu_count = models.PositiveIntegerField("GPUs", default=0)
    mig_profile = models.CharField("MIG slice", max_length=32, blank=True, help_text="e.g. 1g.10gb")
    mig_count = models.PositiveIntegerField("MIG slices", default=0)
    cpu_cores = models.DecimalField("CPU cores", max_digits=8, decimal_places=3)
    memory_gib = models.PositiveIntegerField("memory (GiB)")
    storage_gib = models.PositiveIntegerField("storage (GiB)", default=0)

    class Meta:
        verbose_name = "resource group"
        verbose_name_plural = "resource groups"
        ordering = ["profile", "position"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(gpu_count__gt=0, mig_count__gt=0), name="catalog_resourcegroup_gpu_or_mig"
            ),
        ]

    def __str__(self) -> str:
        accelerators = (
            f"{self.gpu_count}x {self.gpu_model}"
            if self.gpu_count
            else f"{self.mig_count}x MIG {self.mig_profile}"
            if self.mig_count
            else "no GPU"
        )
        cpu = f"{self.cpu_cores.normalize():f}"
        return f"{accelerators}, {cpu} CPU, {self.memory_gib} GiB, {self.storage_gib} GiB storage"


class ServiceProfile(Profile):
    """A one-click software stack deployed on a compute instance, with the admin's per-input,
    per-output and per-action-variable decisions."""

    class ServiceType(models.TextChoices):
        NOTEBOOK = "notebook", "Notebook"
        INFERENCE = "inference", "Inference"
        JOBS = "jobs", "Jobs"
        CUSTOM = "custom", "Custom Service"

    service_type = models.CharField("service type", max_length=16, choices=ServiceType.choices)
    datacenter = models.ForeignKey(
        Datacenter,
        verbose_name="datacenter",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    datacenter_exposed = models.BooleanField("datacenter exposed", default=False)
    datacenter_overridable = models.BooleanField("datacenter overridable", default=False)
    storages = models.ManyToManyField(Storage, verbose_name="storage", blank=True, related_name="+")
    storage_exposed = models.BooleanField("storage exposed", default=False)
    storage_overridable = models.BooleanField("storage overridable", default=False)
    extra_config = models.JSONField("extra configuration", default=dict, blank=True)
    input_settings = models.JSONField("input settings", default=dict, blank=True)
    output_settings = models.JSONField("output settings", default=dict, blank=True)
    action_settings = models.JSONField("action settings", default=dict, blank=True)

    class Meta:
        verbose_name = "service profile"
        verbose_name_plural = "service profiles"
        ordering = ["name"]
        constraints = _scope_constraints("catalog_serviceprofile", tenant_copies=True)
        indexes = [models.Index(fields=["org", "published"], name="catalog_service_org_pub_idx")]


class CatalogGeneration(models.Model):
    """A counter every catalog write bumps (in its transaction): cached catalog pages are keyed by it,
    so a change is visible to the next read, with no invalidation to forget."""

    value = models.PositiveBigIntegerField("generation", default=0)

    class Meta:
        verbose_name = "catalog generation"
        verbose_name_plural = "catalog generation"

    def __str__(self) -> str:
        return str(self.value)


class AllowedCustomResource(models.Model):
    """A custom resource kind (API group and kind, any version) that templates may create.

    Managed by platform operators only. A template declares the custom resources it renders under
    ``custom_resources`` (version and scope: how its objects are checked), but may create an object of
    a custom kind only while that kind is on this list: a custom resource is acted on by a controller
    in the cluster, often with wide rights, so which ones tenants may drive is the operators' call.
    Checked at publish and again at apply (``catalog.templating.validate_objects``).
    """

    group = models.CharField(
        "API group", max_length=253, help_text="The custom resource's API group, e.g. ray.io."
    )
    kind = models.CharField("kind", max_length=63, help_text="The custom resource's kind, e.g. RayCluster.")
    description = models.TextField(
        "description", blank=True, help_text="What the kind is for and which controller acts on it."
    )
    created_by = models.ForeignKey(
        User, verbose_name="allowed by", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField("allowed at", auto_now_add=True)

    class Meta:
        verbose_name = "allowed custom resource"
        verbose_name_plural = "allowed custom resources"
        ordering = ["group", "kind"]
        constraints = [
            models.UniqueConstraint(fields=["group", "kind"], name="catalog_allowedcr_unique_group_kind")
        ]

    def __str__(self) -> str:
        return f"{self.kind} ({self.group})"


# --- integrations: repositories, container registries, the application catalog ------------------------


def _integration_constraints(prefix: str) -> list:
    """Integrations live in one of three scopes: system (operators), an org (its admins; shared with
    all or selected projects of the org) or a project (shared with all or selected projects of the org,
    like a project's profiles)."""
    return [
        models.CheckConstraint(
            condition=Q(org__isnull=False) | Q(project__isnull=True), name=f"{prefix}_scope"
        ),
        models.UniqueConstraint(
            fields=["project", "name"],
            condition=Q(project__isnull=False),
            name=f"{prefix}_project_name_unique",
        ),
        models.UniqueConstraint(
            fields=["org", "name"],
            condition=Q(org__isnull=False, project__isnull=True),
            name=f"{prefix}_org_name_unique",
        ),
        models.UniqueConstraint(
            fields=["name"], condition=Q(org__isnull=True), name=f"{prefix}_system_name_unique"
        ),
    ]


class CheckedIntegration(CatalogItem):
    """An integration the platform connects to, with the outcome of its last connectivity check."""

    checked_at = models.DateTimeField("last checked", null=True, blank=True, editable=False)
    check_ok = models.BooleanField("last check passed", null=True, blank=True, editable=False)
    check_message = models.TextField("last check result", blank=True, editable=False)

    class Meta:
        abstract = True

    @property
    def scope_label(self) -> str:
        if self.org_id is None:
            return "system"
        return str(self.project) if self.project_id else f"{self.org.name} (organization)"


class Repository(CheckedIntegration):
    """Where application artifacts are pulled from: a Git repository, a Helm chart repository
    (``index.yaml`` over HTTP) or an OCI registry holding charts (``oci://``).

    The URL passes the outbound-address policy when it is saved and again at every connection. The
    credential (a password or token, or an SSH private key) is encrypted and write-only. Fetching runs
    on the worker of the agent serving the target cluster's datacenter, so a repository behind a
    firewall is reached the same way as the cluster.
    """

    # The credential: under the org's data key (paas.keyring); a system repository: the platform keys.
    secret_org_field = "org"  # noqa: S105 (a field path)

    class Kind(models.TextChoices):
        GIT = "git", "Git"
        HELM = "helm", "Helm"
        OCI = "oci", "OCI registry (Helm charts)"

    class Auth(models.TextChoices):
        NONE = "none", "None (public)"
        BASIC = "basic", "Username and password or token"
        TOKEN = "token", "Bearer token"
        SSH_KEY = "ssh_key", "SSH private key (Git)"

    kind = models.CharField("type", max_length=8, choices=Kind.choices)
    url = models.CharField(
        "URL",
        max_length=2048,
        help_text="https://… for Git and Helm (ssh://… for Git with an SSH key), oci://host/path for OCI.",
    )
    default_ref = models.CharField(
        "branch or tag", max_length=255, blank=True, help_text="Git: the ref deployed when none is given."
    )
    path = models.CharField(
        "path", max_length=1024, blank=True, help_text="Git: the directory applications read by default."
    )
    auth = models.CharField("authentication", max_length=8, choices=Auth.choices, default=Auth.NONE)
    username = models.CharField("username", max_length=255, blank=True)
    credential = EncryptedTextField(
        "password, token or SSH key", help_text="Write-only: encrypted at rest, never shown again."
    )
    ssh_known_hosts = models.TextField(
        "SSH known hosts", blank=True, help_text="Git over SSH: the server's host keys (known_hosts lines)."
    )
    ca_certificate = models.TextField(
        "CA certificate", blank=True, help_text="PEM; for a server whose certificate a private CA signed."
    )

    class Meta:
        verbose_name = "repository"
        verbose_name_plural = "repositories"
        ordering = ["name"]
        constraints = _integration_constraints("catalog_repository")


class ContainerRegistry(CheckedIntegration):
    """A container registry whose pull credential the platform delivers, as an ``imagePullSecret``, into
    every instance namespace of the projects it is shared with, and references from the pods it
    deploys. A tenant can read the secrets of their own namespace: the credential must be a pull-only
    one (a robot account or token), never an administrator's.
    """

    # Credential and token: under the org's data key (paas.keyring); a system registry: the platform's.
    secret_org_field = "org"  # noqa: S105 (a field path)

    class Provider(models.TextChoices):
        DOCKERHUB = "dockerhub", "Docker Hub"
        ECR = "ecr", "Amazon ECR"
        GCR = "gcr", "Google GCR / Artifact Registry"
        JFROG = "jfrog", "JFrog Artifactory"
        NEXUS = "nexus", "Sonatype Nexus"
        GENERIC = "generic", "Docker registry (v2 API)"

    class Scheme(models.TextChoices):
        HTTPS = "https", "HTTPS"
        HTTP = "http", "HTTP"

    provider = models.CharField("provider", max_length=16, choices=Provider.choices)
    scheme = models.CharField("scheme", max_length=8, choices=Scheme.choices, default=Scheme.HTTPS)
    endpoint = models.CharField(
        "registry endpoint",
        max_length=512,
        help_text="e.g. registry-1.docker.io, myregistry.example.com:5000",
    )
    username = models.CharField(
        "username", max_length=255, blank=True, help_text="Amazon ECR: the access key id of a pull-only user."
    )
    credential = EncryptedTextField(
        "password or token",
        help_text=(
            "Write-only: encrypted at rest, never shown again. PULL-ONLY: this credential is delivered as "
            "an imagePullSecret into the namespaces of every workspace the registry is shared with, where "
            "the workspace's members can read it. Enter a robot account or access token that may only "
            "pull images (Amazon ECR: the secret access key of an IAM user allowed only "
            "ecr:GetAuthorizationToken and pulls), never an administrator's or a push credential."
        ),
    )
    credential_version = models.PositiveIntegerField(
        "credential version", default=1, editable=False, help_text="Bumped when the credential changes."
    )
    # Registries whose credential is exchanged for a short-lived token (Amazon ECR: 12 hours).
    token = EncryptedTextField("current registry token", help_text="Derived; refreshed before it expires.")
    token_expires_at = models.DateTimeField("token expires", null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "container registry"
        verbose_name_plural = "container registries"
        ordering = ["name"]
        constraints = _integration_constraints("catalog_containerregistry")


class PackageType(models.TextChoices):
    YAML = "yaml", "K8s YAML"
    HELM = "helm", "Helm chart"


class ArtifactSync(models.TextChoices):
    UPLOAD = "upload", "Upload files"
    REPOSITORY = "repository", "Pull files from repository"


class ApplicationSource(models.Model):
    """What an application is made of: the package type and where its artifacts come from. Shared by
    the catalog's applications and by deployed applications' revisions (``instances``)."""

    package_type = models.CharField("package type", max_length=8, choices=PackageType.choices)
    sync = models.CharField("artifact sync", max_length=16, choices=ArtifactSync.choices)
    files = models.JSONField(
        "uploaded files",
        default=dict,
        blank=True,
        help_text="Upload: {file name: text} (K8s YAML) or {chart.tgz: base64} (a packaged chart).",
    )
    repository = models.ForeignKey(
        Repository,
        verbose_name="repository",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Empty for an upload, or once the repository is deleted (nothing can be pulled again).",
    )
    ref = models.CharField("ref", max_length=255, blank=True, help_text="Git: a branch, tag or commit.")
    path = models.CharField(
        "path",
        max_length=1024,
        blank=True,
        help_text="Git: the directory (or file) of the YAML or the chart.",
    )
    chart = models.CharField("chart", max_length=255, blank=True, help_text="Helm/OCI repository: the chart.")
    chart_version = models.CharField(
        "chart version", max_length=64, blank=True, help_text="Empty: the latest."
    )
    values_file = models.CharField(
        "values file", max_length=1024, blank=True, help_text="A values file of the chart (or in Git)."
    )
    values = models.TextField("value overrides (YAML)", blank=True)

    class Meta:
        abstract = True


class CatalogApplication(CatalogItem, ApplicationSource):
    """An application of the application catalog, deployed in one click ("New Application From
    Catalog"): a chart or a YAML bundle with its default values and a readme, published by operators
    (system) or org admins (their org or a project), shared like profiles."""

    readme = models.TextField("readme (markdown)", blank=True)
    icon_url = models.URLField("icon URL", max_length=500, blank=True)
    published = models.BooleanField("published", default=False)

    class Meta:
        verbose_name = "catalog application"
        verbose_name_plural = "application catalog"
        ordering = ["display_name", "name"]
        constraints = _integration_constraints("catalog_catalogapplication")

    scope_label = CheckedIntegration.scope_label
