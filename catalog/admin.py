"""Studio pages of the catalog: templates and versions, compute and service profiles, with clone and
sharing pages. PaaS admins see these sections and nothing else (separation of duties).

Over 600 lines, kept whole: the template and profile pages share their forms, the clone and share
pages and the change-list actions column; one page more splits it (templates / profiles).
"""

import copy
import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.forms.fields import InvalidJSONInput
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from catalog import custom_resources, secret_inputs, selectors, services
from catalog.models import (
    AllowedCustomResource,
    ComputeProfile,
    EnvironmentTemplate,
    ResourceGroup,
    ServiceProfile,
    TemplateVersion,
)
from paas import authz
from paas.admin import ScopedModelAdmin
from paas.errors import ApplicationError
from paas.forms import apply_error
from paas.jsondepth import MAX_DEPTH, too_deep
from paas.secrets import MASK
from tenancy.models import Organization, Project


class JSONText(forms.JSONField):
    """JSON edited as text, shown indented."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault(
            "widget", forms.Textarea(attrs={"rows": 6, "class": "vLargeTextField", "spellcheck": "false"})
        )
        super().__init__(*args, **kwargs)

    def prepare_value(self, value):
        if isinstance(value, str):
            return value
        return json.dumps(value, indent=2)

    def bound_data(self, data, initial):
        try:
            return super().bound_data(data, initial)
        except RecursionError:
            return InvalidJSONInput(data)  # shown again as typed, with the error below

    def to_python(self, value):
        try:
            data = super().to_python(value)
        except RecursionError:
            data = None  # the decoder gave up on the nesting: the same message as below
        else:
            if not too_deep(data):
                return data
        raise forms.ValidationError(f"JSON nested more than {MAX_DEPTH} levels deep.", code="invalid")


class CatalogAdmin(ScopedModelAdmin):
    """Visible to operators and catalog managers (org admins, PaaS admins)."""

    def _is_catalog_manager(self, request) -> bool:
        return (
            authz.is_operator(request.user)
            or selectors.managed_projects(request.user).exists()
            or (authz.filter_for(request.user, "manage_catalog", Organization.objects.all()).exists())
        )

    def has_module_permission(self, request) -> bool:
        return self._is_catalog_manager(request)

    def has_view_permission(self, request, obj=None) -> bool:
        return self._is_catalog_manager(request)

    def has_add_permission(self, request) -> bool:
        return self._is_catalog_manager(request)

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is None or "edit" in selectors.allowed_actions(request.user, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return obj is not None and "delete" in selectors.allowed_actions(request.user, obj)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "project":
            kwargs["queryset"] = selectors.managed_projects(request.user).select_related("org")
            kwargs["required"] = not authz.is_operator(request.user)
            kwargs["help_text"] = (
                "Empty: the system catalog (operators)." if authz.is_operator(request.user) else ""
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.display(description="scope")
    def scope(self, obj):
        return obj.scope_label

    @admin.display(description="sharing")
    def sharing_label(self, obj):
        if obj.org_id is None:
            return obj.get_system_sharing_display()
        return obj.get_sharing_display() if obj.project_id else "—"

    @admin.display(description="actions")
    def actions_menu(self, obj):
        user = getattr(self, "changelist_user", None)
        allowed = selectors.allowed_actions(user, obj) if user is not None else set()
        info = (obj._meta.app_label, obj._meta.model_name)
        links = []
        for act, label in (
            ("edit", "Edit"),
            ("clone", "Clone"),
            ("share", "Manage sharing"),
            ("delete", "Delete"),
        ):
            if act not in allowed or (act == "clone" and not hasattr(self, "clone_view")):
                continue
            name = {"edit": "change", "delete": "delete"}.get(act, act)
            links.append((reverse(f"admin:{info[0]}_{info[1]}_{name}", args=[obj.pk]), label))
        if not links:
            return "read-only (inherited)"
        return format_html_join(" · ", '<a href="{}">{}</a>', links)

    def get_changelist_instance(self, request):
        """The change list renders its rows through a copy of this admin that knows the request's user
        (the actions column asks what they may do). The registered admin is shared by every request of
        a threaded server, so it keeps no request of its own."""
        scoped = copy.copy(self)
        scoped.changelist_user = request.user
        return super(CatalogAdmin, scoped).get_changelist_instance(request)

    # --- sharing page -------------------------------------------------------------------------------
    def get_urls(self):
        prefix = f"{self.model._meta.app_label}_{self.model._meta.model_name}"
        urls = [path("<int:pk>/share/", self.admin_site.admin_view(self.share_view), name=f"{prefix}_share")]
        if hasattr(self, "clone_view"):
            urls.append(
                path("<int:pk>/clone/", self.admin_site.admin_view(self.clone_view), name=f"{prefix}_clone")
            )
        return urls + super().get_urls()

    def _object_or_404(self, request, pk):
        return authz.get_visible(self.get_queryset(request), pk)

    def share_view(self, request, pk):
        item = self._get_or_redirect(request, pk)
        if "share" not in selectors.allowed_actions(request.user, item):
            raise PermissionDenied
        system = item.org_id is None

        class ShareForm(forms.Form):
            sharing = forms.ChoiceField(
                choices=[
                    ("none", "None"),
                    ("all", "All organizations" if system else "All projects"),
                    ("selected", "Selected organizations" if system else "Selected projects"),
                ],
                widget=forms.RadioSelect,
            )
            targets = forms.ModelMultipleChoiceField(
                queryset=Organization.objects.all()
                if system
                else Project.objects.filter(org=item.org_id).exclude(pk=item.project_id),
                required=False,
                widget=forms.CheckboxSelectMultiple,
                label="Organizations" if system else "Projects",
            )

        initial = {
            "sharing": item.system_sharing if system else item.sharing,
            "targets": list((item.shared_orgs if system else item.shared_projects).all()),
        }
        form = ShareForm(request.POST or None, initial=initial)
        if request.method == "POST" and form.is_valid():
            try:
                targets = list(form.cleaned_data["targets"])
                services.item_share(
                    actor=request.user,
                    item=item,
                    sharing=form.cleaned_data["sharing"],
                    projects=[] if system else targets,
                    orgs=targets if system else [],
                )
            except ApplicationError as exc:
                form.add_error(None, apply_error(None, exc))  # the form's fields are not the service's
            else:
                self.message_user(request, f"Sharing of {item.name} saved.", messages.SUCCESS)
                return redirect(reverse(f"admin:{item._meta.app_label}_{item._meta.model_name}_changelist"))
        return self._form_page(request, item, form, f"Manage sharing of {item.name}")

    def _get_or_redirect(self, request, pk):
        return self._object_or_404(request, pk)

    def _form_page(self, request, item, form, title):
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "form": form,
            "object": item,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/catalog/action_form.html", context)


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


class ResourceGroupInline(admin.TabularInline):
    model = ResourceGroup
    fields = ["gpu_model", "gpu_count", "mig_profile", "mig_count", "cpu_cores", "memory_gib", "storage_gib"]
    extra = 1
    min_num = 1

    def has_view_permission(self, request, obj=None) -> bool:
        return True

    def has_add_permission(self, request, obj=None) -> bool:
        return True

    def has_change_permission(self, request, obj=None) -> bool:
        return True

    def has_delete_permission(self, request, obj=None) -> bool:
        return True


class ProfileAdmin(CatalogAdmin):
    """Profiles save through the services in ``save_related``, where the inline rows are known."""

    search_fields = ["name", "display_name", "description"]
    readonly_when_changing = ["project", "name"]

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_when_changing if obj else []

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "template_version":
            kwargs["queryset"] = TemplateVersion.objects.filter(
                template__in=selectors.template_list_for(request.user), state="published"
            ).select_related("template")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        pass  # written in save_related, with the inline rows

    def save_related(self, request, form, formsets, change):
        data = {f: form.cleaned_data[f] for f in self.service_fields if f in form.cleaned_data}
        extra = self.extra_service_data(form, formsets)
        if change:
            profile = services.profile_update(
                actor=request.user, profile=self.fresh(form.instance), **data, **extra
            )
        else:
            profile = services.profile_create(
                actor=request.user,
                model=self.model,
                project=form.cleaned_data.get("project"),
                name=form.cleaned_data["name"],
                **data,
                **extra,
            )
        form.instance.pk = profile.pk

    def extra_service_data(self, form, formsets) -> dict:
        return {}

    def service_delete(self, request, obj):
        services.profile_delete(actor=request.user, profile=obj)

    def clone_view(self, request, pk):
        profile = self._get_or_redirect(request, pk)
        if "clone" not in selectors.allowed_actions(request.user, profile):
            raise PermissionDenied

        class CloneForm(forms.Form):
            name = forms.SlugField(max_length=63, help_text="The clone's unique name (cannot change later).")
            display_name = forms.CharField(max_length=200, required=False)
            description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
            target_project = forms.ModelChoiceField(
                queryset=selectors.managed_projects(request.user), initial=profile.project_id
            )

        form = CloneForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                clone = services.profile_clone(
                    actor=request.user,
                    profile=profile,
                    target_project=data["target_project"],
                    name=data["name"],
                    display_name=data["display_name"],
                    description=data["description"] or None,
                )
            except ApplicationError as exc:
                if left := apply_error(form, exc):
                    form.add_error(None, left)
            else:
                self.message_user(request, f"Cloned into {clone.project} as {clone.name}.", messages.SUCCESS)
                return redirect(
                    reverse(f"admin:catalog_{self.model._meta.model_name}_change", args=[clone.pk])
                )
        return self._form_page(request, profile, form, f"Clone {profile.name}")


class ComputeProfileForm(forms.ModelForm):
    icon_url = forms.URLField(label="icon URL", required=False, assume_scheme="https")
    labels = JSONText(required=False, initial=dict)
    annotations = JSONText(required=False, initial=dict)
    input_values = JSONText(
        required=False,
        initial=dict,
        help_text="Values for the template's inputs. Secret inputs are stored encrypted and shown as "
        f"{MASK}; leave the mask to keep a stored secret.",
    )

    class Meta:
        model = ComputeProfile
        fields = [
            "project",
            "name",
            "display_name",
            "description",
            "template_version",
            "flavor",
            "allocation_strategy",
            "warm_pool_size",
            "cost_currency",
            "cost_amount",
            "cost_period",
            "input_values",
            "labels",
            "annotations",
            "icon_url",
            "readme",
            "published",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "input_values" in self.initial:  # write-only secrets: the form shows the mask, never a value
            self.initial["input_values"] = secret_inputs.masked(self.initial["input_values"])


@admin.register(ComputeProfile)
class ComputeProfileAdmin(ProfileAdmin):
    selector = staticmethod(selectors.compute_profile_list_for)
    form = ComputeProfileForm
    inlines = [ResourceGroupInline]
    service_fields = [f for f in services.COMPUTE_FIELDS]
    list_display = [
        "name",
        "display_name",
        "flavor",
        "resources",
        "price",
        "scope",
        "sharing_label",
        "published",
        "created_at",
        "actions_menu",
    ]
    list_filter = ["flavor", "published", "allocation_strategy"]

    @admin.display(description="resources")
    def resources(self, obj):
        return format_html_join("", "<div>{}</div>", ((str(g),) for g in obj.resource_groups.all()))

    @admin.display(description="price")
    def price(self, obj):
        return format_html(
            "{} {} {}", obj.cost_amount.normalize(), obj.cost_currency, obj.get_cost_period_display()
        )

    def extra_service_data(self, form, formsets) -> dict:
        groups = [
            row for formset in formsets for row in formset.cleaned_data if row and not row.get("DELETE")
        ]
        return {"resource_groups": [{k: row.get(k) for k in ResourceGroupInline.fields} for row in groups]}


class ServiceProfileForm(forms.ModelForm):
    icon_url = forms.URLField(label="icon URL", required=False, assume_scheme="https")
    labels = JSONText(required=False, initial=dict, help_text='e.g. {"ALLOW_DAY2_OPERATIONS": "true"}')
    annotations = JSONText(required=False, initial=dict)
    extra_config = JSONText(required=False, initial=dict)
    input_settings = JSONText(
        required=False,
        initial=dict,
        help_text='Per template input: {"name": {"default": ..., "required": true, '
        '"exposed": true, "overridable": true}}',
    )
    output_settings = JSONText(
        required=False,
        initial=dict,
        help_text='Per template output: {"url": {"shown": true, "label": "Notebook URL"}}',
    )
    action_settings = JSONText(
        required=False,
        initial=dict,
        help_text='Per action and variable: {"stop": {"run_strategy": {"alias": "...", '
        '"tooltip": "...", "allow_override": false, "default": "halted"}}}',
    )

    class Meta:
        model = ServiceProfile
        fields = [
            "project",
            "name",
            "display_name",
            "description",
            "template_version",
            "service_type",
            "datacenter",
            "datacenter_exposed",
            "datacenter_overridable",
            "storages",
            "storage_exposed",
            "storage_overridable",
            "labels",
            "annotations",
            "extra_config",
            "icon_url",
            "readme",
            "input_settings",
            "output_settings",
            "action_settings",
            "published",
        ]


@admin.register(ServiceProfile)
class ServiceProfileAdmin(ProfileAdmin):
    selector = staticmethod(selectors.service_profile_list_for)
    form = ServiceProfileForm
    service_fields = [f for f in services.SERVICE_FIELDS]
    filter_horizontal = ["storages"]
    list_display = [
        "name",
        "display_name",
        "service_type",
        "scope",
        "sharing_label",
        "published",
        "created_at",
        "actions_menu",
    ]
    list_filter = ["service_type", "published"]

    def extra_service_data(self, form, formsets) -> dict:
        return {"storages": list(form.cleaned_data.get("storages") or [])}

    def get_readonly_fields(self, request, obj=None):
        readonly = super().get_readonly_fields(request, obj)
        if obj is not None:
            readonly = [*readonly, "template_declarations"]
        return readonly

    def get_fields(self, request, obj=None):
        fields = list(ServiceProfileForm.Meta.fields)
        return [*fields, "template_declarations"] if obj else fields

    @admin.display(description="what the template declares")
    def template_declarations(self, obj):
        version = obj.template_version
        inputs = (
            ", ".join(
                f"{i['name']} ({i['type']}{', required' if i.get('required') else ''})"
                for i in version.inputs
            )
            or "none"
        )
        outputs = ", ".join(o["name"] for o in version.outputs) or "none"
        actions = (
            "; ".join(
                f"{a['name']}: {', '.join(v['name'] for v in a.get('variables', [])) or '—'}"
                for a in version.actions
            )
            or "none"
        )
        return format_html("<p>Inputs: {}</p><p>Outputs: {}</p><p>Actions: {}</p>", inputs, outputs, actions)


@admin.register(AllowedCustomResource)
class AllowedCustomResourceAdmin(ScopedModelAdmin):
    """The custom resource kinds templates may create: operators only (add and remove; no edits, a
    different kind is a new entry). Org and PaaS admins read the list through the API."""

    selector = staticmethod(selectors.allowed_custom_resource_list_for)
    list_display = ["kind", "group", "description", "created_by", "created_at"]
    search_fields = ["group", "kind", "description"]
    fields = ["group", "kind", "description"]

    def has_module_permission(self, request) -> bool:
        return authz.is_operator(request.user)

    def has_view_permission(self, request, obj=None) -> bool:
        return authz.is_operator(request.user)

    def has_add_permission(self, request) -> bool:
        return authz.is_operator(request.user)

    def has_delete_permission(self, request, obj=None) -> bool:
        return authz.is_operator(request.user)

    def save_model(self, request, obj, form, change):
        obj.pk = custom_resources.allowed_custom_resource_create(
            actor=request.user,
            group=form.cleaned_data["group"],
            kind=form.cleaned_data["kind"],
            description=form.cleaned_data.get("description", ""),
        ).pk

    def service_delete(self, request, obj):
        custom_resources.allowed_custom_resource_delete(actor=request.user, entry=obj)
