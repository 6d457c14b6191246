from datetime import UTC

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField

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


class UtcIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 time, normalised to UTC. Python takes offsets up to ±23:59 and years 1 to 9999;
    PostgreSQL refuses offsets past ±15:59 and the conversion can leave Python's range: both are the
    client's error, not the server's."""

    def to_python(self, value):
        parsed = super().to_python(value)
        if parsed is not None and parsed.tzinfo is not None:
            try:
                parsed = parsed.astimezone(UTC)
            except OverflowError as exc:
                raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from exc
        return parsed


class UtcIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField


class AuditEventFilter(django_filters.FilterSet):
    """The reference's audit screen: project, user, client, cluster and time range (plus org and
    action)."""

    user = django_filters.NumberFilter(field_name="actor_id", label="Actor user id")
    client = django_filters.ChoiceFilter(choices=Client.choices)
    since = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    action = django_filters.CharFilter(lookup_expr="startswith")
    org = django_filters.NumberFilter(field_name="org_id")
    project = django_filters.NumberFilter(field_name="project_id")
    cluster = django_filters.NumberFilter(field_name="cluster_id", label="Cluster id (kubectl requests)")

    class Meta:
        model = AuditEvent
        fields = ["org", "project", "user", "client", "action", "since", "until", "cluster"]
