"""Cluster cost profiles in the API: chargeback rates per GPU-hour by model, per MIG-slice-hour by
profile, per CPU-hour and per GiB-hour of memory and storage (6-place decimal strings)."""

from rest_framework import serializers

from billing import cost_profiles
from billing.cost_profile_selectors import in_force_ids, standing
from billing.cost_profiles import cluster_choices
from billing.models import CostProfile
from paas.api.fields import ScopedPrimaryKeyRelatedField

RATE = {"max_digits": 12, "decimal_places": 6, "min_value": 0}


class CostProfileSerializer(serializers.ModelSerializer):
    cluster = ScopedPrimaryKeyRelatedField(selector=cluster_choices)
    cluster_name = serializers.CharField(source="cluster.name", read_only=True)
    effective_from = serializers.DateTimeField(
        required=False,
        help_text="From when the rates apply (default: now). They apply to the hours starting at or after "
        "it; a time before the roll-up's closed hours is refused.",
    )
    currency = serializers.CharField(max_length=3, help_text="ISO 4217, e.g. USD.")
    gpu_hour = serializers.DictField(
        child=serializers.CharField(max_length=40),
        required=False,
        help_text='Per GPU-hour by GPU model, e.g. {"A100-SXM4-40GB": "2.500000"}.',
    )
    mig_slice_hour = serializers.DictField(
        child=serializers.CharField(max_length=40),
        required=False,
        help_text='Per MIG-slice-hour by MIG profile, e.g. {"1g.10gb": "0.400000"}.',
    )
    cpu_hour = serializers.DecimalField(**RATE, required=False, help_text="Per CPU (core) hour.")
    memory_gib_hour = serializers.DecimalField(**RATE, required=False, help_text="Per GiB-hour of memory.")
    storage_gib_hour = serializers.DecimalField(**RATE, required=False, help_text="Per GiB-hour of storage.")
    standing = serializers.SerializerMethodField(help_text='"future", "in force" or "past".')
    created_by = serializers.SlugRelatedField(read_only=True, slug_field="username")

    class Meta:
        model = CostProfile
        fields = ["id", *cost_profiles.INPUT_FIELDS, "cluster_name", "standing", "created_by", "created_at"]
        read_only_fields = ["id", "cluster_name", "standing", "created_by", "created_at"]
        validators = []

    def get_standing(self, obj) -> str:
        in_force = self.context.get("in_force")
        if in_force is None:
            in_force = in_force_ids([obj.cluster_id])
        return standing(obj, in_force)
