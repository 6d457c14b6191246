"""Studio: operators and org admins see every instance of their scope (read-only) with its status,
placement explanation and runs, and may retry a failed one."""

from django.contrib import admin, messages
from django.utils.html import format_html

# admin_hub: the studio home's Developer Hub; admin_pools: the warm pools' pages; admin_applications:
# applications, read-only (registered on import)
from instances import admin_applications, admin_hub, admin_pools, selectors, services  # noqa: F401
from instances.models import ComputeInstance, Run
from paas.admin import ReadOnlyInline, ScopedModelAdmin
from paas.errors import ApplicationError
from tenancy.gpu_units import format_gpus
from tenancy.selectors import administers_any_org


class RunInline(ReadOnlyInline):
    model = Run
    fields = ["kind", "attempt", "outcome", "message", "created_at", "started_at", "finished_at", "steps"]
    readonly_fields = fields
    ordering = ["-created_at"]

    @admin.display(description="log")
    def steps(self, obj):
        return format_html(
            "<pre style='white-space:pre-wrap;max-width:60em'>{}</pre>",
            "\n".join(f"{e['time'][11:19]} {e['message']}" for e in obj.log[-30:]),
        )


@admin.register(ComputeInstance)
class ComputeInstanceAdmin(ScopedModelAdmin):
    selector = staticmethod(selectors.instance_list_for)
    list_display = [
        "name",
        "project",
        "owner_shown",
        "state",
        "cluster",
        "gpu_quota",
        "created_at",
        "ready_at",
    ]
    list_filter = ["state", "from_warm_pool", "cluster"]
    search_fields = ["name", "project__name", "owner__email", "namespace"]
    inlines = [RunInline]
    actions = ["retry"]
    fields = [
        "name",
        "project",
        "owner",
        "owner_left_at",
        "description",
        "state",
        "state_reason",
        "cluster",
        "namespace",
        "from_warm_pool",
        "explanation",
        "outputs",
        "gpus",
        "gpus_by_model",
        "mig_slices",
        "gpu_quota",
        "mig_parents",
        "cpu_millis",
        "memory_gib",
        "storage_gib",
        "created_at",
        "ready_at",
        "deleted_at",
    ]
    readonly_fields = fields

    @admin.display(description="GPUs of quota (MIG slice Ng.* = N/7 GPU)")
    def gpu_quota(self, obj) -> str:
        return format_gpus(obj.gpu_units)

    @admin.display(description="launched by", ordering="owner__email")
    def owner_shown(self, obj):
        return f"{obj.owner} (owner left)" if obj.owner_left_at else str(obj.owner)

    @admin.display(description="placement explanation")
    def explanation(self, obj):
        return format_html(
            "<pre style='white-space:pre-wrap;max-width:60em'>{}</pre>", obj.placement.get("explanation", "")
        )

    def has_module_permission(self, request) -> bool:
        return administers_any_org(request.user)

    def has_view_permission(self, request, obj=None) -> bool:
        return administers_any_org(request.user)

    @admin.action(description="Retry (redeploy) the selected instances")
    def retry(self, request, queryset):
        for instance in queryset:
            try:
                services.instance_retry(actor=request.user, instance=instance)
                self.message_user(request, f"{instance}: redeploy queued.", messages.SUCCESS)
            except ApplicationError as exc:
                self.message_user(request, f"{instance}: {exc.message}", messages.ERROR)
