"""Studio page "Audit events": the trail, its filters offering only what the viewer may see.

Kept apart from tenancy/admin.py (past 600 lines with it); imported from there so it is registered.
"""

from django.contrib import admin

from paas import authz
from paas.admin import AuditEventAdminBase
from paas.context import Client
from paas.models import AuditEvent
from paas.validation import is_id
from tenancy import selectors
from tenancy.models import Organization, Project, RoleAssignment

# --- audit trail ------------------------------------------------------------------------------------


# A filter lists its choices while they are few enough to read; past that (an operator's thousands of
# projects and users) it lists those of the organization chosen in the organization filter, and until one
# is chosen only the value chosen in it, if any (the list is the viewer's events only either way).
CHOICES_SHOWN = 100


class _ScopedFilter(admin.SimpleListFilter):
    """A list filter whose choices are only what the user may see (no other tenant's names)."""

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        if self.field.endswith("_id") and not is_id(value):
            return queryset.none()  # not an id (?org=x): nothing matches, never a 500
        return queryset.filter(**{self.field: value})


def _audited_orgs(request):
    return authz.filter_for(request.user, "view_audit", Organization.objects.all())


def _chosen_org(request) -> int | None:
    value = request.GET.get(OrgFilter.parameter_name, "")
    return int(value) if is_id(value) else None


def _few(rows, request, in_org, chosen: str | None) -> list:
    """The choices of ``rows`` (a query of the viewer's): all of them when at most
    :data:`CHOICES_SHOWN`; else those ``in_org(org_id)`` narrows to when an organization is chosen; else
    only the filter's own ``chosen`` value, if it is one of them (a filter with no choice is not shown,
    and Django then ignores its parameter: a chosen project must stay listed to filter the list)."""
    listed = list(rows[: CHOICES_SHOWN + 1])
    if len(listed) <= CHOICES_SHOWN:
        return listed
    org_id = _chosen_org(request)
    if org_id is not None:
        return list(in_org(org_id)[: CHOICES_SHOWN * 10])
    return list(rows.filter(pk=int(chosen))) if chosen and is_id(chosen) else []


class OrgFilter(_ScopedFilter):
    title, parameter_name, field = "organization", "org", "org_id"

    def lookups(self, request, model_admin):
        return [(o.pk, str(o)) for o in _audited_orgs(request).order_by("name")]


class ProjectFilter(_ScopedFilter):
    title, parameter_name, field = "project", "project", "project_id"

    def lookups(self, request, model_admin):
        projects = Project.objects.filter(org__in=_audited_orgs(request)).order_by("org__name", "name")
        rows = projects.values_list("pk", "org__name", "name")
        choices = _few(rows, request, lambda org_id: rows.filter(org_id=org_id), self.value())
        return [(pk, f"{org}/{name}") for pk, org, name in choices]


class UserFilter(_ScopedFilter):
    title, parameter_name, field = "user", "user", "actor_id"

    def lookups(self, request, model_admin):
        users = selectors.user_list_for(request.user).order_by("username")

        def members(org_id: int):
            return users.filter(pk__in=RoleAssignment.objects.filter(org_id=org_id).values("user_id"))

        return [(u.pk, str(u)) for u in _few(users, request, members, self.value())]


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
