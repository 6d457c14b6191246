"""Studio pages of environment templates and their versions (drafts edited, then published)."""

from django import forms
from django.contrib import admin, messages

from catalog import selectors, services
from catalog.admin_base import CatalogAdmin, JSONText
from catalog.models import EnvironmentTemplate, TemplateVersion
from paas.errors import ApplicationError


@admin.register(EnvironmentTemplate)
class EnvironmentTemplateAdmin(CatalogAdmin):
    selector = staticmethod(selectors.template_list_for)
    list_display = [
        "name",
        "display_name",
        "scope",
        "sharing_label",
        "version_list",
        "created_at",
        "actions_menu",
    ]
    search_fields = ["name", "display_name"]
    fields = ["project", "name", "display_name", "description"]

    @admin.display(description="versions")
    def version_list(self, obj):
        return ", ".join(f"{v.version}{'' if v.is_published else ' (draft)'}" for v in obj.versions.all())

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("versions")

    def get_readonly_fields(self, request, obj=None):
        return ["project", "name"] if obj else []

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            # only descriptive fields; they are not part of a version
            services.template_update(
                actor=request.user,
                template=self.fresh(obj),
                display_name=data["display_name"],
                description=data["description"],
            )
        else:
            obj.pk = services.template_create(
                actor=request.user,
                project=data.get("project"),
                name=data["name"],
                display_name=data["display_name"],
                description=data["description"],
            ).pk

    def service_delete(self, request, obj):
        services.template_delete(actor=request.user, template=obj)


class TemplateVersionForm(forms.ModelForm):
    inputs = JSONText(
        required=False,
        initial=list,
        help_text='[{"name": "image", "type": "text", "required": '
        'true, "default": null, "description": "..."}]; types: text, number, boolean, select, secret, '
        "multiline",
    )
    outputs = JSONText(
        required=False,
        initial=list,
        help_text='[{"name": "url", "description": "...", "source": '
        '{"type": "template", "value": "https://{{ instance.name }}.example.com"}}]',
    )
    actions = JSONText(
        required=False,
        initial=list,
        help_text='[{"name": "stop", "description": "...", '
        '"variables": [{"name": "run_strategy", "type": "select", "options": ["started", "halted"], '
        '"default": "halted"}]}]',
    )
    custom_resources = JSONText(
        required=False,
        initial=list,
        help_text='[{"apiVersion": "ray.io/v1", "kind": "RayCluster", "scope": "Namespaced"}]',
    )

    class Meta:
        model = TemplateVersion
        fields = [
            "template",
            "version",
            "kubernetes_version",
            "manifests",
            "inputs",
            "outputs",
            "actions",
            "custom_resources",
        ]
        widgets = {
            "manifests": forms.Textarea(
                attrs={
                    "rows": 24,
                    "class": "vLargeTextField",
                    "spellcheck": "false",
                    "style": "font-family: monospace",
                }
            )
        }


@admin.register(TemplateVersion)
class TemplateVersionAdmin(CatalogAdmin):
    """Drafts are edited here; "Publish" validates and freezes them."""

    selector = staticmethod(selectors.template_version_list_for)
    form = TemplateVersionForm
    list_display = ["template", "version", "state", "kubernetes_version", "published_at", "created_at"]
    list_filter = ["state"]
    search_fields = ["template__name", "version"]
    actions = ["publish"]

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is None or (
            not obj.is_published and "edit" in selectors.allowed_actions(request.user, obj.template)
        )

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_readonly_fields(self, request, obj=None):
        return ["template", "version"] if obj else []

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "template":
            kwargs["queryset"] = selectors.template_list_for(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        data = {f: form.cleaned_data[f] for f in services.VERSION_FIELDS if f in form.cleaned_data}
        for field in ("inputs", "outputs", "actions", "custom_resources"):
            data[field] = data.get(field) or []
        if change:
            services.template_version_update(actor=request.user, version=self.fresh(obj), **data)
        else:
            obj.pk = services.template_version_create(
                actor=request.user,
                template=form.cleaned_data["template"],
                version=form.cleaned_data["version"],
                **data,
            ).pk

    @admin.action(description="Publish the selected drafts (validates them)")
    def publish(self, request, queryset):
        for version in queryset:
            try:
                services.template_version_publish(actor=request.user, version=version)
                self.message_user(request, f"{version} published.", messages.SUCCESS)
            except ApplicationError as exc:
                details = "; ".join(f"{field}: {m}" for field, ms in exc.fields.items() for m in ms)
                self.message_user(request, f"{exc.message} {details}", messages.ERROR)
