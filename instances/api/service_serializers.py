from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from catalog.models import ServiceProfile
from catalog.service_inputs import shown_values
from instances import service_instances
from instances.api.serializers import LATEST_RUNS, run_data
from instances.models import ServiceInstance
from instances.selectors import instance_list_for
from paas.api.fields import ScopedPrimaryKeyRelatedField


def _profiles(user):
    return ServiceProfile.objects.all()  # the launch service checks the workspace's service catalog


class ShownOutputSerializer(serializers.Serializer):
    name = serializers.CharField()
    label = serializers.CharField()
    value = serializers.JSONField(allow_null=True)
    secret = serializers.BooleanField()


class ServiceInstanceSerializer(serializers.ModelSerializer):
    compute_instance = ScopedPrimaryKeyRelatedField(selector=instance_list_for)
    compute_instance_name = serializers.CharField(source="compute_instance.name", read_only=True)
    profile = ScopedPrimaryKeyRelatedField(selector=_profiles, write_only=True)
    profile_name = serializers.CharField(source="snapshot.name", read_only=True, default="")
    inputs = serializers.DictField(
        write_only=True, required=False, help_text="Values of the inputs the profile exposes."
    )
    input_values = serializers.SerializerMethodField(help_text="The exposed inputs (secrets masked).")
    datacenter = serializers.SlugRelatedField(slug_field="name", read_only=True)
    datacenter_name = serializers.CharField(
        write_only=True, required=False, allow_blank=True, help_text="Where the profile lets it be chosen."
    )
    storage = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="Names of the storage to attach, where the profile lets it be chosen.",
    )
    owner = serializers.CharField(source="owner.email", read_only=True)
    url = serializers.SerializerMethodField()
    outputs = serializers.SerializerMethodField()
    latest_run = serializers.SerializerMethodField()

    class Meta:
        model = ServiceInstance
        fields = [
            "id",
            "project",
            "compute_instance",
            "compute_instance_name",
            "name",
            "description",
            "profile",
            "profile_name",
            "service_type",
            "inputs",
            "input_values",
            "datacenter",
            "datacenter_name",
            "storage",
            "owner",
            "state",
            "state_reason",
            "host",
            "url",
            "outputs",
            "gpus",
            "mig_slices",
            "cpu_millis",
            "memory_gib",
            "storage_gib",
            "created_at",
            "ready_at",
            "deleted_at",
            "latest_run",
        ]
        read_only_fields = [
            f
            for f in fields
            if f
            not in (
                "compute_instance",
                "name",
                "description",
                "profile",
                "inputs",
                "datacenter_name",
                "storage",
            )
        ]
        validators = []

    def get_input_values(self, obj) -> dict:
        return shown_values(obj.snapshot, obj.input_values)

    def get_url(self, obj) -> str:
        if not obj.host:
            return ""
        tls = obj.compute_instance.cluster.ingress_tls if obj.compute_instance.cluster_id else False
        return f"{'https' if tls else 'http'}://{obj.host}"

    @extend_schema_field(ShownOutputSerializer(many=True))
    def get_outputs(self, obj) -> list[dict]:
        return ShownOutputSerializer(service_instances.shown_outputs(obj), many=True).data

    def get_latest_run(self, obj) -> dict | None:
        if hasattr(obj, LATEST_RUNS):  # prefetched by the viewset (latest_runs)
            run = next(iter(getattr(obj, LATEST_RUNS)), None)
        else:
            run = obj.runs.order_by("-created_at").first()
        return run_data(self, run)
