"""Studio pages of the inventory (operators manage; org and PaaS admins read what they may use).

Secrets (kubeconfigs, credentials) are write-only form fields: they are never put back into a page.
"""

from django import forms
from django.contrib import admin, messages
from django.utils.html import format_html

from inventory import mig, prometheus, selectors, services
from inventory.models import Agent, Cluster, Datacenter, DatacenterAgent, MigChange, Node, Storage
from paas import authz
from paas.admin import ReadOnlyInline, ScopedModelAdmin, secret_field
from paas.errors import ApplicationError
from paas.units import GIB
from tenancy.selectors import administers_any_org


class OperatorWritesAdmin(ScopedModelAdmin):
    """Visible to whoever the selector lets see rows; only operators change anything."""

    def has_module_permission(self, request) -> bool:
        if not administers_any_org(request.user):
            return False  # PaaS admins see the catalog sections and nothing else
        user = request.user
        return authz.is_operator(user) or authz.remembered(
            user, f"sees_{self.model._meta.label_lower}", self.get_queryset(request).exists
        )

    def has_view_permission(self, request, obj=None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request) -> bool:
        return authz.is_operator(request.user)

    def has_change_permission(self, request, obj=None) -> bool:
        return authz.is_operator(request.user)

    def has_delete_permission(self, request, obj=None) -> bool:
        return authz.is_operator(request.user)


class ListTextField(forms.CharField):
    """A list of names, one per line or comma-separated."""

    def prepare_value(self, value):
        return ", ".join(value) if isinstance(value, list) else value

    def to_python(self, value):
        return [item.strip() for item in (value or "").replace("\n", ",").split(",") if item.strip()]


class DatacenterForm(forms.ModelForm):
    new_credentials = secret_field("Credentials (cloud credentials or SSH keys)")
    clear_credentials = forms.BooleanField(label="Remove the stored credentials", required=False)
    instance_types = ListTextField(required=False, help_text="Comma-separated, e.g. p4d.24xlarge")
    gpu_types = ListTextField(required=False, help_text="Comma-separated, e.g. A100, H100")

    class Meta:
        model = Datacenter
        fields = [
            "name",
            "display_name",
            "kind",
            "provider",
            "region",
            "kubernetes_version",
            "instance_types",
            "infrastructure_type",
            "operating_system",
            "gpu_types",
        ]


@admin.register(Datacenter)
class DatacenterAdmin(OperatorWritesAdmin):
    selector = staticmethod(selectors.datacenter_list_for)
    service_error_fields = {"credentials": "new_credentials"}
    form = DatacenterForm
    list_display = [
        "name",
        "display_name",
        "kind",
        "provider",
        "region",
        "infrastructure_type",
        "has_credentials",
    ]
    list_filter = ["kind", "provider", "infrastructure_type"]
    search_fields = ["name", "display_name", "region"]

    @admin.display(boolean=True, description="credentials")
    def has_credentials(self, obj) -> bool:
        return bool(obj.credentials)

    def get_readonly_fields(self, request, obj=None):
        return ["name"] if obj else []

    def get_fields(self, request, obj=None):
        fields = [*list(DatacenterForm.Meta.fields), "new_credentials"]
        return fields + (["clear_credentials"] if obj and obj.credentials else [])

    def save_model(self, request, obj, form, change):
        data = {f: form.cleaned_data[f] for f in DatacenterForm.Meta.fields if f in form.cleaned_data}
        secret = form.cleaned_data.get("new_credentials") or ""
        if change:
            data.pop("name", None)
            credentials = "" if form.cleaned_data.get("clear_credentials") else (secret or None)
            services.datacenter_update(
                actor=request.user, datacenter=self.fresh(obj), credentials=credentials, **data
            )
        else:
            obj.pk = services.datacenter_create(actor=request.user, credentials=secret, **data).pk

    def service_delete(self, request, obj):
        services.datacenter_delete(actor=request.user, datacenter=obj)


class ClusterForm(forms.ModelForm):
    prometheus_url = forms.URLField(
        label="Prometheus URL",
        required=False,
        max_length=300,
        assume_scheme="https",
        help_text=Cluster._meta.get_field("prometheus_url").help_text,
    )
    new_kubeconfig = secret_field(
        "Kubeconfig",
        help_text="Write-only: stored encrypted and never shown again. Required when adding; "
        "leave empty to keep the stored one.",
    )

    class Meta:
        model = Cluster
        fields = [
            "name",
            "display_name",
            "datacenter",
            "labels",
            "tenancy",
            "dedicated_org",
            "ingress_domain",
            "ingress_class",
            "ingress_tls",
            "prometheus_url",
        ]

    def clean_prometheus_url(self):
        """Checked here too, so that an address carrying a password is not put back into the page."""
        value = self.cleaned_data.get("prometheus_url") or ""
        try:
            return prometheus.clean_prometheus_url(value)
        except ApplicationError as exc:
            if "@" in value:
                self.data = self.data.copy()
                self.data[self.add_prefix("prometheus_url")] = prometheus.safe_url(value)
            raise forms.ValidationError(exc.fields.get("prometheus_url") or exc.message) from None

    def clean(self):
        data = super().clean()
        if not self.instance.pk and not data.get("new_kubeconfig"):
            self.add_error("new_kubeconfig", "A kubeconfig is needed to reach the cluster.")
        return data


class NodeInline(ReadOnlyInline):
    model = Node
    fields = [
        "name",
        "gpu_product",
        "gpu_count",
        "mig_config",
        "mig_config_state",
        "allocatable_gpus",
        "mig",
        "cpu",
        "memory",
        "schedulable",
    ]
    readonly_fields = fields
    show_change_link = False

    @admin.display(description="MIG slices")
    def mig(self, obj):
        return ", ".join(f"{k}: {v}" for k, v in sorted(obj.allocatable_mig.items())) or "—"

    @admin.display(description="CPU")
    def cpu(self, obj):
        return f"{obj.allocatable_cpu_millis / 1000:g}"

    @admin.display(description="memory (GiB)")
    def memory(self, obj):
        return f"{obj.allocatable_memory_bytes / GIB:.0f}"


@admin.register(Cluster)
class ClusterAdmin(OperatorWritesAdmin):
    """The reference's cluster card: reachability, control plane health, nodes, GPUs."""

    selector = staticmethod(selectors.cluster_list_for)
    service_error_fields = {"kubeconfig": "new_kubeconfig"}
    form = ClusterForm
    list_display = [
        "name",
        "datacenter",
        "tenancy",
        "status_badge",
        "kubernetes_version",
        "node_count",
        "gpu_total",
        "offers_sandbox_runtime",
        "guardrails_summary",
        "last_seen_at",
    ]
    list_filter = ["status", "tenancy", "datacenter"]
    search_fields = ["name", "display_name", "server"]
    actions = ["refresh", "prometheus_test"]

    def get_inlines(self, request, obj):
        return [NodeInline] if obj else []  # nodes come from the sync, after registration

    @admin.display(description="status")
    def status_badge(self, obj):
        colour = {"reachable": "#1a7f37", "degraded": "#9a6700", "unreachable": "#cf222e"}.get(
            obj.status, "#57606a"
        )
        return format_html('<strong style="color:{}">{}</strong>', colour, obj.get_status_display())

    @admin.display(description="nodes")
    def node_count(self, obj):
        return obj.node_count

    @admin.display(description="GPUs")
    def gpu_total(self, obj):
        return obj.gpu_total

    @admin.display(description="guardrails")
    def guardrails_summary(self, obj):
        """Which admission guardrails the cluster enforces (installed at each refresh)."""
        record = obj.guardrails or {}
        if record.get("error"):
            return format_html('<strong style="color:#cf222e">{}</strong>', record["error"])
        if not record.get("version"):
            return "Not installed yet (next refresh)."
        defaults = "pod defaults active" if record.get("mutating_defaults") else "no pod defaults (< 1.36)"
        return format_html(
            "v{}: {} — {}; exempt: {}",
            record["version"],
            ", ".join(record.get("rules") or []),
            defaults,
            record.get("platform_identity") or "?",
        )

    def get_fields(self, request, obj=None):
        base = [
            "name",
            "display_name",
            "datacenter",
            "labels",
            "tenancy",
            "dedicated_org",
            "ingress_domain",
            "ingress_class",
            "ingress_tls",
            "prometheus_url",
        ]
        if not authz.is_operator(request.user):
            return [
                *base,
                "server",
                "status",
                "status_message",
                "kubernetes_version",
                "offers_sandbox_runtime",
                "guardrails_summary",
                "last_checked_at",
                "last_seen_at",
            ]
        info = (
            [
                "server",
                "status",
                "status_message",
                "kubernetes_version",
                "offers_sandbox_runtime",
                "guardrails_summary",
                "last_checked_at",
                "last_seen_at",
            ]
            if obj
            else []
        )
        return [*base, "new_kubeconfig", *info]

    def get_readonly_fields(self, request, obj=None):
        info = [
            "server",
            "status",
            "status_message",
            "kubernetes_version",
            "offers_sandbox_runtime",
            "guardrails_summary",
            "last_checked_at",
            "last_seen_at",
        ]
        return ["name", *info] if obj else []

    def save_model(self, request, obj, form, change):
        data = {f: form.cleaned_data.get(f) for f in ClusterForm.Meta.fields}
        kubeconfig = form.cleaned_data.get("new_kubeconfig") or ""
        if change:
            data.pop("name")
            services.cluster_update(
                actor=request.user, cluster=self.fresh(obj), kubeconfig=kubeconfig or None, **data
            )
        else:
            obj.pk = services.cluster_register(actor=request.user, kubeconfig=kubeconfig, **data).pk

    def service_delete(self, request, obj):
        services.cluster_delete(actor=request.user, cluster=obj)

    @admin.action(description="Check reachability and sync nodes now", permissions=["change"])
    def refresh(self, request, queryset):
        for cluster in queryset:
            services.cluster_refresh_request(actor=request.user, cluster=cluster)
        self.message_user(request, f"Refresh queued for {queryset.count()} cluster(s).", messages.SUCCESS)

    @admin.action(description="Test the Prometheus connection (GPU utilisation)", permissions=["change"])
    def prometheus_test(self, request, queryset):
        """Ask each cluster's Prometheus now and say what it answered (inventory/prometheus.py): a
        success, a warning when it did not answer as it should, an error when there is nothing to ask."""
        for cluster in queryset:
            try:
                works, message = prometheus.prometheus_check(actor=request.user, cluster=cluster)
                level = messages.SUCCESS if works else messages.WARNING
            except ApplicationError as exc:
                level = messages.ERROR
                message = " ".join(m for ms in exc.fields.values() for m in ms) or exc.message
            self.message_user(request, f"{cluster.name}: {message}", level)


@admin.register(Node)
class NodeAdmin(OperatorWritesAdmin):
    selector = staticmethod(selectors.node_list_for)
    list_display = [
        "name",
        "cluster",
        "gpu_product",
        "gpu_count",
        "mig_strategy",
        "mig_config",
        "mig_config_state",
        "allocatable_gpus",
        "schedulable",
        "synced_at",
    ]
    list_filter = ["cluster", "gpu_product", "mig_strategy", "schedulable"]
    search_fields = ["name", "gpu_product"]
    readonly_fields = [f.name for f in Node._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False  # nodes come from the sync

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # a node leaves with the next sync; deleting the row here would only be undone


class MigChangeForm(forms.ModelForm):
    node_names = ListTextField(
        required=False, help_text="Node names, comma-separated; or use a label selector."
    )

    class Meta:
        model = MigChange
        fields = ["cluster", "node_names", "node_selector", "config"]
        widgets = {
            "config": forms.Select(
                choices=[("", "---------")]
                + [(name, name) for name in sorted({*mig.A100_40GB.configs, *mig.GPU_80GB_CONFIGS})]
            )
        }
        help_texts = {
            "config": "A100 40GB: all-1g.5gb … all-7g.40gb; A100/H100 80GB: all-1g.10gb … all-7g.80gb; "
            "all-balanced and all-disabled on both. Invalid choices are refused per node."
        }


@admin.register(MigChange)
class MigChangeAdmin(OperatorWritesAdmin):
    """GPU partitioning: pick a MIG configuration for nodes and follow it to success or failure."""

    selector = staticmethod(selectors.mig_change_list_for)
    form = MigChangeForm
    list_display = [
        "cluster",
        "config",
        "nodes",
        "state",
        "message",
        "requested_by",
        "created_at",
        "finished_at",
    ]
    list_filter = ["state", "cluster"]

    @admin.display(description="nodes")
    def nodes(self, obj):
        return ", ".join(obj.node_names)

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_fields(self, request, obj=None):
        if obj:
            return [
                "cluster",
                "node_names",
                "node_selector",
                "config",
                "previous_configs",
                "state",
                "message",
                "requested_by",
                "created_at",
                "finished_at",
            ]
        return ["cluster", "node_names", "node_selector", "config"]

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj) if obj else []

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        obj.pk = services.mig_change_request(
            actor=request.user,
            cluster=data["cluster"],
            config=data["config"],
            node_names=data["node_names"],
            node_selector=data.get("node_selector", ""),
        ).pk


class StorageForm(forms.ModelForm):
    new_credentials = secret_field("Credentials (bucket access keys)")
    bucket_endpoint = forms.URLField(label="bucket endpoint", required=False, assume_scheme="https")

    class Meta:
        model = Storage
        fields = ["name", "kind", "datacenter", "storage_class", "bucket_endpoint", "bucket_name"]


@admin.register(Storage)
class StorageAdmin(OperatorWritesAdmin):
    selector = staticmethod(selectors.storage_list_for)
    form = StorageForm
    list_display = ["name", "kind", "datacenter_or_open", "storage_class", "bucket_name"]
    list_filter = ["kind", "datacenter"]
    search_fields = ["name"]

    @admin.display(description="datacenter")
    def datacenter_or_open(self, obj):
        return obj.datacenter or "open (every datacenter)"

    def get_readonly_fields(self, request, obj=None):
        return ["name"] if obj else []

    def save_model(self, request, obj, form, change):
        data = {f: form.cleaned_data.get(f) for f in StorageForm.Meta.fields}
        secret = form.cleaned_data.get("new_credentials") or ""
        if change:
            data.pop("name")
            services.storage_update(
                actor=request.user, storage=self.fresh(obj), credentials=secret or None, **data
            )
        else:
            obj.pk = services.storage_create(actor=request.user, credentials=secret, **data).pk

    def service_delete(self, request, obj):
        services.storage_delete(actor=request.user, storage=obj)


@admin.register(Agent)
class AgentAdmin(OperatorWritesAdmin):
    selector = staticmethod(selectors.agent_list_for)
    list_display = ["name", "datacenter_or_global", "queue", "last_heartbeat_at"]
    fields = ["name", "datacenter"]

    @admin.display(description="serves")
    def datacenter_or_global(self, obj):
        return obj.datacenter or "every datacenter (global)"

    @admin.display(description="last heartbeat")
    def last_heartbeat_at(self, obj):
        return obj.last_heartbeat_at or "never"

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change):
        obj.pk = services.agent_create(
            actor=request.user, name=form.cleaned_data["name"], datacenter=form.cleaned_data.get("datacenter")
        ).pk

    def service_delete(self, request, obj):
        services.agent_delete(actor=request.user, agent=obj)


@admin.register(DatacenterAgent)
class DatacenterAgentAdmin(OperatorWritesAdmin):
    """Global settings: the agent that serves each datacenter (others go to a global agent)."""

    selector = staticmethod(selectors.datacenter_agent_list_for)
    list_display = ["datacenter", "agent"]
    fields = ["datacenter", "agent"]

    def save_model(self, request, obj, form, change):
        mapping = services.datacenter_agent_set(
            actor=request.user, datacenter=form.cleaned_data["datacenter"], agent=form.cleaned_data["agent"]
        )
        obj.pk = mapping.pk

    def service_delete(self, request, obj):
        services.datacenter_agent_set(actor=request.user, datacenter=obj.datacenter, agent=None)
