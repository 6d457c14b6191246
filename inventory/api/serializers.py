from rest_framework import serializers

from inventory import mig
from inventory.models import Agent, Cluster, Datacenter, DatacenterAgent, MigChange, Node, Storage
from paas.api.fields import ScopedPrimaryKeyRelatedField
from tenancy.models import slug_validator
from tenancy.selectors import org_list_for


def _datacenters(user):
    from inventory.selectors import datacenter_list_for

    return datacenter_list_for(user)


def _clusters(user):
    from inventory.selectors import cluster_list_for

    return cluster_list_for(user)


def _agents(user):
    from inventory.selectors import agent_list_for

    return agent_list_for(user)


SECRET_STYLE = {"input_type": "password"}


class DatacenterSerializer(serializers.ModelSerializer):
    name = serializers.CharField(max_length=63, validators=[slug_validator])
    credentials = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        style=SECRET_STYLE,
        help_text="Write-only. Omit to keep, empty string to clear.",
    )
    has_credentials = serializers.SerializerMethodField()
    instance_types = serializers.ListField(child=serializers.CharField(max_length=100), required=False)
    gpu_types = serializers.ListField(child=serializers.CharField(max_length=100), required=False)

    class Meta:
        model = Datacenter
        fields = [
            "id",
            "name",
            "display_name",
            "kind",
            "provider",
            "region",
            "kubernetes_version",
            "instance_types",
            "infrastructure_type",
            "operating_system",
            "gpu_types",
            "credentials",
            "has_credentials",
            "created_at",
        ]
        read_only_fields = ["id", "created_at"]
        extra_kwargs = {"display_name": {"required": False, "allow_blank": True}}

    def get_has_credentials(self, obj) -> bool:
        return bool(obj.credentials)


class ClusterSerializer(serializers.ModelSerializer):
    name = serializers.CharField(max_length=63, validators=[slug_validator])
    datacenter = ScopedPrimaryKeyRelatedField(selector=_datacenters, required=False, allow_null=True)
    dedicated_org = ScopedPrimaryKeyRelatedField(selector=org_list_for, required=False, allow_null=True)
    kubeconfig = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        help_text="Write-only. The kubeconfig text; never returned.",
    )
    ca_data = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        help_text="Base64 PEM CA, with server and token instead of a kubeconfig.",
    )
    token = serializers.CharField(write_only=True, required=False, allow_blank=True, style=SECRET_STYLE)
    server_url = serializers.CharField(write_only=True, required=False, allow_blank=True)
    node_count = serializers.IntegerField(read_only=True)
    gpu_count = serializers.IntegerField(source="gpu_total", read_only=True)

    class Meta:
        model = Cluster
        fields = [
            "id",
            "name",
            "display_name",
            "datacenter",
            "server",
            "labels",
            "tenancy",
            "dedicated_org",
            "offers_sandbox_runtime",
            "ingress_domain",
            "ingress_class",
            "ingress_tls",
            "prometheus_url",
            "guardrails",
            "status",
            "status_message",
            "kubernetes_version",
            "last_checked_at",
            "last_seen_at",
            "node_count",
            "gpu_count",
            "created_at",
            "kubeconfig",
            "server_url",
            "ca_data",
            "token",
        ]
        read_only_fields = [
            "id",
            "server",
            "offers_sandbox_runtime",
            "guardrails",
            "status",
            "status_message",
            "kubernetes_version",
            "last_checked_at",
            "last_seen_at",
            "created_at",
        ]
        extra_kwargs = {"display_name": {"required": False, "allow_blank": True}}

    def validate_labels(self, value):
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise serializers.ValidationError("Labels are a mapping of text keys to text values.")
        return value


class PrometheusCheckSerializer(serializers.Serializer):
    prometheus_url = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=300,
        help_text="An address to test before saving it; omitted: the cluster's stored Prometheus URL.",
    )


class PrometheusCheckResultSerializer(serializers.Serializer):
    works = serializers.BooleanField(help_text="Prometheus answered the query API.")
    message = serializers.CharField(
        help_text="What Prometheus answered (version, DCGM series), or what failed."
    )


class NodeSerializer(serializers.ModelSerializer):
    cluster_name = serializers.CharField(source="cluster.name", read_only=True)
    valid_mig_configs = serializers.SerializerMethodField()

    class Meta:
        model = Node
        fields = [
            "id",
            "cluster",
            "cluster_name",
            "name",
            "gpu_product",
            "gpu_count",
            "gpu_memory_mib",
            "mig_capable",
            "mig_strategy",
            "mig_config",
            "mig_config_state",
            "valid_mig_configs",
            "allocatable_cpu_millis",
            "allocatable_memory_bytes",
            "allocatable_gpus",
            "allocatable_mig",
            "ready",
            "schedulable",
            "labels",
            "synced_at",
        ]

    def get_valid_mig_configs(self, obj) -> list[str]:
        return mig.valid_configs(obj.gpu_product) if obj.mig_capable else []


class MigChangeSerializer(serializers.ModelSerializer):
    cluster = ScopedPrimaryKeyRelatedField(selector=_clusters)
    node_names = serializers.ListField(child=serializers.CharField(max_length=253), required=False)

    class Meta:
        model = MigChange
        fields = [
            "id",
            "cluster",
            "node_names",
            "node_selector",
            "config",
            "previous_configs",
            "state",
            "message",
            "requested_by",
            "created_at",
            "finished_at",
        ]
        read_only_fields = [
            "id",
            "previous_configs",
            "state",
            "message",
            "requested_by",
            "created_at",
            "finished_at",
        ]


class StorageSerializer(serializers.ModelSerializer):
    name = serializers.CharField(max_length=63, validators=[slug_validator])
    datacenter = ScopedPrimaryKeyRelatedField(selector=_datacenters, required=False, allow_null=True)
    credentials = serializers.CharField(write_only=True, required=False, allow_blank=True, style=SECRET_STYLE)
    has_credentials = serializers.SerializerMethodField()
    is_open = serializers.SerializerMethodField()

    class Meta:
        model = Storage
        fields = [
            "id",
            "name",
            "kind",
            "datacenter",
            "is_open",
            "storage_class",
            "bucket_endpoint",
            "bucket_name",
            "credentials",
            "has_credentials",
            "created_at",
        ]
        read_only_fields = ["id", "created_at"]

    def get_has_credentials(self, obj) -> bool:
        return bool(obj.credentials)

    def get_is_open(self, obj) -> bool:
        return obj.datacenter_id is None


class AgentSerializer(serializers.ModelSerializer):
    name = serializers.CharField(max_length=63, validators=[slug_validator])
    datacenter = ScopedPrimaryKeyRelatedField(selector=_datacenters, required=False, allow_null=True)
    queue = serializers.CharField(read_only=True)
    last_heartbeat_at = serializers.DateTimeField(read_only=True, default=None)

    class Meta:
        model = Agent
        fields = ["id", "name", "datacenter", "queue", "last_heartbeat_at", "created_at"]
        read_only_fields = ["id", "created_at"]


class DatacenterAgentSerializer(serializers.ModelSerializer):
    datacenter = ScopedPrimaryKeyRelatedField(selector=_datacenters)
    agent = ScopedPrimaryKeyRelatedField(selector=_agents)

    class Meta:
        model = DatacenterAgent
        fields = ["id", "datacenter", "agent"]
        validators = []
