"""Studio page "Audit events": the trail, its filters offering only what the viewer may see.

Kept apart from tenancy/admin.py (past 600 lines with it); imported from there so it is registered.
"""

from django.contrib import admin

from paas import authz
from paas.admin import AuditEventAdminBase
from paas.context import Client
from paas.models import AuditEvent
from tenancy import selectors
from tenancy.models import Organization, Project

# --- audit trail ------------------------------------------------------------------------------------


class _ScopedFilter(admin.SimpleListFilter):
    """A list filter whose choices are only what the user may see (no other tenant's names)."""

    def queryset(self, request, queryset):
        return queryset.filter(**{self.field: self.value()}) if self.value() else queryset


class OrgFilter(_ScopedFilter):
    title, parameter_name, field = "organization", "org", "org_id"

    def lookups(self, request, model_admin):
        return [
            (o.pk, str(o)) for o in authz.filter_for(request.user, "view_audit", Organization.objects.all())
        ]


class ProjectFilter(_ScopedFilter):
    title, parameter_name, field = "project", "project", "project_id"

    def lookups(self, request, model_admin):
        orgs = authz.filter_for(request.user, "view_audit", Organization.objects.all())
        return [(p.pk, str(p)) for p in Project.objects.filter(org__in=orgs).select_related("org")]


class UserFilter(_ScopedFilter):
    title, parameter_name, field = "user", "user", "actor_id"

    def lookups(self, request, model_admin):
        return [(u.pk, str(u)) for u in selectors.user_list_for(request.user)]


class ClientFilter(_ScopedFilter):
    title, parameter_name, field = "client", "client", "client"

    def lookups(self, request, model_admin):
        return Client.choices


class ClusterFilter(_ScopedFilter):
    """The reference's filter by cluster: the clusters of the kubectl requests the viewer may see."""

    title, parameter_name, field = "cluster", "cluster", "cluster_id"

    def lookups(self, request, model_admin):
        return selectors.audit_clusters_for(request.user)


@admin.register(AuditEvent)
class AuditEventAdmin(AuditEventAdminBase):
    selector = staticmethod(selectors.audit_event_list_for)
    list_filter = [
        OrgFilter,
        ProjectFilter,
        UserFilter,
        ClientFilter,
        ClusterFilter,
        ("created_at", admin.DateFieldListFilter),
    ]

    def has_module_permission(self, request) -> bool:
        # (operators first: for them the visible events are every org's, an exists() over the whole table)
        return authz.is_operator(request.user) or selectors.audit_event_list_for(request.user).exists()

    def has_view_permission(self, request, obj=None) -> bool:
        # Only who may read an org's audit (operators, org admins): a PaaS admin gets 403, not a list.
        return selectors.can_view_audit(request.user)
