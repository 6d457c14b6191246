"""``/api/v1/instance-limits/``: per-user instance limits of organizations and workspaces.

POST sets a scope's limits (creating its policy row, or changing the one there is), PATCH changes a
row's, DELETE removes it; every write goes through ``tenancy.services.instance_limits``.
"""

import django_filters
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers

from paas.api.fields import ScopedPrimaryKeyRelatedField
from paas.api.viewsets import ScopedGenericViewSet, ServiceWriteMixin
from tenancy import limit_selectors, selectors, services
from tenancy.models import InstanceLimit
from tenancy.services.instance_limits import MAX_VALUE


def _limit_field(help_text: str):
    return serializers.IntegerField(
        min_value=0, max_value=MAX_VALUE, allow_null=True, required=False, help_text=help_text
    )


class InstanceLimitUpdateSerializer(serializers.ModelSerializer):
    max_active_instances_per_user = _limit_field(
        "At most this many active instances per user (stopped ones count); null: no limit."
    )
    max_gpus_per_user = _limit_field(
        "At most this many GPUs held by one user's instances (a MIG slice counts its fraction); "
        "null: no limit."
    )

    class Meta:
        model = InstanceLimit
        fields = list(InstanceLimit.LIMIT_FIELDS)


class InstanceLimitSerializer(InstanceLimitUpdateSerializer):
    org = ScopedPrimaryKeyRelatedField(selector=selectors.org_list_for, required=False, allow_null=True)
    project = ScopedPrimaryKeyRelatedField(
        selector=selectors.project_list_for,
        required=False,
        allow_null=True,
        help_text="A workspace of the organization: its own limit. Empty: the organization's.",
    )
    scope = serializers.SerializerMethodField()

    class Meta:
        model = InstanceLimit
        fields = ["id", "scope", "org", "project", *InstanceLimit.LIMIT_FIELDS, "updated_at", "updated_by"]
        read_only_fields = ["id", "scope", "updated_at", "updated_by"]
        validators = []  # one row per scope: the service's rule (a POST on a scope with one changes it)

    def get_scope(self, limit: InstanceLimit) -> str:
        return limit.scope


class InstanceLimitFilter(django_filters.FilterSet):
    class Meta:
        model = InstanceLimit
        fields = ["org", "project"]


@extend_schema_view(
    create=extend_schema(request=InstanceLimitSerializer, responses={201: InstanceLimitSerializer}),
    partial_update=extend_schema(request=InstanceLimitUpdateSerializer, responses=InstanceLimitSerializer),
)
class InstanceLimitViewSet(
    ServiceWriteMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedGenericViewSet
):
    """Per-user instance limits: at most N active instances and M GPUs per user, set on an organization
    (org admins and operators) or a workspace (org admins); the stricter applies. Null: no limit."""

    selector = staticmethod(limit_selectors.instance_limit_list_for)
    serializer_class = InstanceLimitSerializer
    update_serializer_class = InstanceLimitUpdateSerializer
    filterset_class = InstanceLimitFilter
    create_service = staticmethod(services.instance_limit_set)
    update_service = staticmethod(services.instance_limit_update)
    delete_service = staticmethod(services.instance_limit_delete)
    target_kwarg = "limit"
