import django_filters

from paas.context import Client
from paas.models import AuditEvent
from tenancy.models import IdpGroupMapping, Invitation, Project, Quota, RoleAssignment
from tenancy.roles import Role


class ProjectFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search name or display name")

    class Meta:
        model = Project
        fields = ["org", "kind"]

    def search(self, queryset, name, value):
        from django.db.models import Q

        return queryset.filter(Q(name__icontains=value) | Q(display_name__icontains=value))


class RoleAssignmentFilter(django_filters.FilterSet):
    role = django_filters.ChoiceFilter(choices=Role.choices)

    source = django_filters.ChoiceFilter(choices=RoleAssignment.Source.choices)

    class Meta:
        model = RoleAssignment
        fields = ["user", "org", "project", "role", "source"]


class IdpGroupMappingFilter(django_filters.FilterSet):
    role = django_filters.ChoiceFilter(choices=Role.choices)

    class Meta:
        model = IdpGroupMapping
        fields = ["org", "project", "group", "role"]


class InvitationFilter(django_filters.FilterSet):
    email = django_filters.CharFilter(lookup_expr="iexact")

    class Meta:
        model = Invitation
        fields = ["org", "project", "email", "role"]


class QuotaFilter(django_filters.FilterSet):
    class Meta:
        model = Quota
        fields = ["org", "project"]


class AuditEventFilter(django_filters.FilterSet):
    """The reference's audit screen: project, user, client and time range (plus org and action)."""

    user = django_filters.NumberFilter(field_name="actor_id", label="Actor user id")
    client = django_filters.ChoiceFilter(choices=Client.choices)
    since = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    action = django_filters.CharFilter(lookup_expr="startswith")
    org = django_filters.NumberFilter(field_name="org_id")
    project = django_filters.NumberFilter(field_name="project_id")

    class Meta:
        model = AuditEvent
        fields = ["org", "project", "user", "client", "action", "since", "until"]
