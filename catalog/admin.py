"""Studio pages of the catalog: templates and versions (catalog/admin_templates.py), compute profiles
(catalog/admin_profiles.py), the service profile wizard (catalog/admin_service_profiles.py), the studio
home's profile cards (catalog/admin_home.py) and, here, the operators' allow-list of custom resources.
PaaS admins see the catalog sections and nothing else (separation of duties).
"""

from django.contrib import admin

from catalog import (  # noqa: F401  (each module registers its pages)
    admin_home,
    admin_integrations,
    admin_profiles,
    admin_repositories,
    admin_service_profiles,
    admin_templates,
    custom_resources,
    selectors,
)
from catalog.models import AllowedCustomResource
from paas.admin import OperatorOnlyAdmin


@admin.register(AllowedCustomResource)
class AllowedCustomResourceAdmin(OperatorOnlyAdmin):
    """The custom resource kinds templates may create: operators only (add and remove; no edits, a
    different kind is a new entry). Org and PaaS admins read the list through the API."""

    selector = staticmethod(selectors.allowed_custom_resource_list_for)
    list_display = ["kind", "group", "description", "created_by", "created_at"]
    search_fields = ["group", "kind", "description"]
    fields = ["group", "kind", "description"]

    def save_model(self, request, obj, form, change):
        obj.pk = custom_resources.allowed_custom_resource_create(
            actor=request.user,
            group=form.cleaned_data["group"],
            kind=form.cleaned_data["kind"],
            description=form.cleaned_data.get("description", ""),
        ).pk

    def service_delete(self, request, obj):
        custom_resources.allowed_custom_resource_delete(actor=request.user, entry=obj)
