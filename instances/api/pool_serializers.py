"""Warm pools in the API: the pool (operators write desired capacity, scope, quota), its schedules and
its live figures (read-only, from ``instances.pool_selectors.pool_statuses``)."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from instances.models import PoolSchedule, WarmPool
from paas.api.fields import ScopedPrimaryKeyRelatedField


def _profiles(user):
    from instances.pool_selectors import pool_profile_choices

    return pool_profile_choices(user)


def _datacenters(user):
    from inventory.selectors import datacenter_list_for

    return datacenter_list_for(user)


def _clusters(user):
    from inventory.selectors import cluster_list_for

    return cluster_list_for(user)


class PoolScheduleSerializer(serializers.ModelSerializer):
    days = serializers.ListField(
        child=serializers.IntegerField(min_value=0, max_value=6),
        min_length=1,
        max_length=7,
        help_text="Days of the week it applies on: 0 Monday ... 6 Sunday (for a rule past midnight: the "
        "day it starts).",
    )
    timezone = serializers.CharField(
        max_length=64, required=False, help_text="An IANA zone name (default UTC)."
    )

    class Meta:
        model = PoolSchedule
        fields = ["id", "name", "days", "start", "end", "timezone", "desired", "position"]
        read_only_fields = ["id"]
        extra_kwargs = {
            "name": {"required": False, "allow_blank": True},
            "position": {"required": False},
            "desired": {"max_value": 10_000},
        }


class PoolLiveSerializer(serializers.Serializer):
    """What the pool holds now (``instances.pool_selectors.PoolStatus``)."""

    desired = serializers.IntegerField(help_text="The capacity in force now (schedules applied).")
    ready = serializers.IntegerField()
    provisioning = serializers.IntegerField()
    retiring = serializers.IntegerField()
    failed = serializers.IntegerField()
    claimed_24h = serializers.IntegerField()
    hits_24h = serializers.IntegerField()
    misses_24h = serializers.IntegerField()
    hits_7d = serializers.IntegerField()
    misses_7d = serializers.IntegerField()
    hit_rate_24h = serializers.FloatField(allow_null=True)
    hit_rate_7d = serializers.FloatField(allow_null=True)
    next_change_at = serializers.DateTimeField(allow_null=True)
    next_change_desired = serializers.IntegerField(allow_null=True)
    status = serializers.CharField()
    reason = serializers.CharField()


class WarmPoolSerializer(serializers.ModelSerializer):
    profile = ScopedPrimaryKeyRelatedField(selector=_profiles)
    profile_name = serializers.CharField(source="profile.name", read_only=True)
    datacenter = ScopedPrimaryKeyRelatedField(selector=_datacenters, required=False, allow_null=True)
    cluster = ScopedPrimaryKeyRelatedField(selector=_clusters, required=False, allow_null=True)
    schedules = PoolScheduleSerializer(many=True, read_only=True)
    live = serializers.SerializerMethodField()

    class Meta:
        model = WarmPool
        fields = [
            "id",
            "profile",
            "profile_name",
            "datacenter",
            "cluster",
            "desired",
            "max_gpus",
            "enabled",
            "status",
            "status_reason",
            "checked_at",
            "schedules",
            "live",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "status", "status_reason", "checked_at", "created_at", "updated_at"]
        extra_kwargs = {"desired": {"max_value": 10_000}, "max_gpus": {"max_value": 1_000_000}}
        validators = []  # the scope's uniqueness is the service's (a field message, not a 500 or a clash)

    @extend_schema_field(PoolLiveSerializer)
    def get_live(self, obj) -> dict:
        from instances.pool_selectors import pool_status

        statuses = self.context.get("pool_statuses") or {}
        status = statuses.get(obj.pk) or pool_status(obj)
        return PoolLiveSerializer(status).data
