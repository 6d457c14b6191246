"""Studio page of instance limits per user (``tenancy.InstanceLimit``): org admins set their orgs' and
their workspaces' limits, operators the organizations' (as they set org quotas). Every save and delete
goes through ``tenancy.services.instance_limits``; a refusal is shown on the form, the input kept."""

from django.contrib import admin

from paas import authz
from tenancy import limit_selectors, selectors, services
from tenancy.admin import AdministeredScopeAdmin
from tenancy.models import InstanceLimit


@admin.register(InstanceLimit)
class InstanceLimitAdmin(AdministeredScopeAdmin):
    """At most N active instances and M GPUs per user, on an organization or one of its workspaces
    (the stricter applies). Empty: no limit."""

    selector = staticmethod(limit_selectors.instance_limit_list_for)
    list_display = ["__str__", *InstanceLimit.LIMIT_FIELDS, "updated_at", "updated_by"]
    list_select_related = ["org", "project", "updated_by"]
    search_fields = ["org__name", "project__name"]

    def get_fields(self, request, obj=None):
        base = ["org", "project", *InstanceLimit.LIMIT_FIELDS]
        return base if obj is None else [*base, "updated_at", "updated_by"]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else ["org", "project", "updated_at", "updated_by"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "org" and authz.is_operator(request.user):
            field.queryset = selectors.org_list_for(request.user)  # operators set any org's own limit
        return field

    def has_add_permission(self, request) -> bool:
        return authz.is_operator(request.user) or super().has_add_permission(request)

    def _may_set(self, request, obj) -> bool:
        if obj is None:
            return self.has_add_permission(request)
        if obj.project_id is None and authz.is_operator(request.user):
            return True
        return authz.has_perm(request.user, "administer_organization", obj.org)

    def has_change_permission(self, request, obj=None) -> bool:
        return self._may_set(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self._may_set(request, obj)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        limits = {field: data.get(field) for field in InstanceLimit.LIMIT_FIELDS}
        if change:
            services.instance_limit_update(actor=request.user, limit=self.fresh(obj), **limits)
            return
        limit = services.instance_limit_set(
            actor=request.user, org=data.get("org"), project=data.get("project"), **limits
        )
        obj.pk = limit.pk

    def service_delete(self, request, obj):
        services.instance_limit_delete(actor=request.user, limit=obj)
