"""Studio: applications (a user's YAML or Helm chart on a compute instance), read-only for those who see
instances in the studio (operators, org admins), with their revisions, objects and runs."""

from django.contrib import admin
from django.utils.html import format_html, format_html_join

from instances.application_selectors import application_list_for
from instances.models import Application, ApplicationRevision, Run
from paas.admin import ReadOnlyInline, ScopedModelAdmin
from tenancy.selectors import administers_any_org


class RevisionInline(ReadOnlyInline):
    model = ApplicationRevision
    fk_name = "application"
    fields = [
        "number",
        "outcome",
        "sync",
        "repository",
        "ref",
        "path",
        "chart",
        "chart_version",
        "commit",
        "resolved_chart_version",
        "message",
        "created_by",
        "created_at",
        "deployed_at",
    ]
    readonly_fields = fields
    ordering = ["-number"]


class ApplicationRunInline(ReadOnlyInline):
    model = Run
    fk_name = "application"
    fields = ["kind", "attempt", "outcome", "message", "created_at", "started_at", "finished_at", "steps"]
    readonly_fields = fields
    ordering = ["-created_at"]

    @admin.display(description="log")
    def steps(self, obj):
        return format_html(
            "<pre style='white-space:pre-wrap;max-width:60em'>{}</pre>",
            "\n".join(f"{e['time'][11:19]} {e['message']}" for e in obj.log[-30:]),
        )


@admin.register(Application)
class ApplicationAdmin(ScopedModelAdmin):
    selector = staticmethod(application_list_for)
    list_display = [
        "name",
        "package_type",
        "compute_instance",
        "project",
        "owner",
        "revision",
        "state",
        "created_at",
    ]
    list_filter = ["state", "package_type"]
    search_fields = ["name", "description", "compute_instance__name", "project__name", "owner__email"]
    list_select_related = ["compute_instance", "project", "owner"]
    inlines = [RevisionInline, ApplicationRunInline]
    fields = [
        "name",
        "project",
        "compute_instance",
        "owner",
        "description",
        "package_type",
        "catalog_item",
        "state",
        "state_reason",
        "revision",
        "objects",
        "status_checked_at",
        "gpus",
        "mig_slices",
        "cpu_millis",
        "memory_gib",
        "storage_gib",
        "created_at",
        "ready_at",
        "deleted_at",
    ]
    readonly_fields = fields

    @admin.display(description="objects and their status")
    def objects(self, obj):
        rows = []
        for entry in obj.object_status or []:
            events = "; ".join(
                f"{e.get('reason', '')}: {e.get('message', '')}" for e in entry.get("events") or []
            )
            rows.append(
                (
                    f"{entry.get('kind', '')}/{entry.get('name', '')}",
                    "ready" if entry.get("ready") else "not ready",
                    " ".join(part for part in (entry.get("message") or "", events) if part),
                )
            )
        if not rows:
            return "—"
        return format_html(
            "<table>{}</table>", format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", rows)
        )

    def has_module_permission(self, request) -> bool:
        return administers_any_org(request.user)

    def has_view_permission(self, request, obj=None) -> bool:
        return administers_any_org(request.user)
