"""Studio pages of profiles: what compute and service profiles share (saving through the services, the
clone page) and the compute profile page. The service profile wizard is catalog/admin_service_profiles.py."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from catalog import secret_inputs, selectors, services
from catalog.admin_base import CatalogAdmin, JSONText, LaunchIntoProjects
from catalog.models import ComputeProfile, ResourceGroup, TemplateVersion
from catalog.pricing import (
    COST_DEFAULTS,
    COST_FIELDS,
    check_cost_form,
    cost_defaults,
    price_label,
    stopped_label,
)
from paas.errors import ApplicationError
from paas.forms import apply_error
from paas.secrets import MASK


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


class ProfileAdmin(LaunchIntoProjects, CatalogAdmin):
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
            *COST_FIELDS,
            "input_values",
            "labels",
            "annotations",
            "icon_url",
            "readme",
            "published",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in COST_DEFAULTS:  # a form posted without them (an older page or client) keeps the default
            self.fields[name].required = False
        if "input_values" in self.initial:  # write-only secrets: the form shows the mask, never a value
            self.initial["input_values"] = secret_inputs.masked(self.initial["input_values"])

    def clean(self):
        data = super().clean()
        cost_defaults(self.cleaned_data)
        check_cost_form(self)
        return data


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
        return format_html("{}<br><small>{}</small>", price_label(obj), stopped_label(obj))

    def extra_service_data(self, form, formsets) -> dict:
        groups = [
            row for formset in formsets for row in formset.cleaned_data if row and not row.get("DELETE")
        ]
        return {"resource_groups": [{k: row.get(k) for k in ResourceGroupInline.fields} for row in groups]}
