"""Inventory API: operators write; org admins and PaaS admins read what their orgs may use."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from inventory import prometheus, routing, selectors, services
from inventory.api.serializers import (
    AgentSerializer,
    ClusterSerializer,
    DatacenterAgentSerializer,
    DatacenterSerializer,
    MigChangeSerializer,
    NodeSerializer,
    PrometheusCheckResultSerializer,
    PrometheusCheckSerializer,
    StorageSerializer,
)
from paas import authz
from paas.api.viewsets import (
    ScopedGenericViewSet,
    ScopedReadOnlyViewSet,
    ServiceCreateMixin,
    ServiceDestroyMixin,
    ServiceWriteMixin,
)
from paas.errors import NotFound


class DatacenterViewSet(
    ServiceWriteMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedGenericViewSet
):
    selector = staticmethod(selectors.datacenter_list_for)
    serializer_class = DatacenterSerializer
    filterset_fields = ["kind", "provider", "infrastructure_type"]
    create_service = staticmethod(services.datacenter_create)
    update_service = staticmethod(services.datacenter_update)
    delete_service = staticmethod(services.datacenter_delete)
    target_kwarg = "datacenter"
    reread = True  # the selector annotates what the answer shows

    def prepare(self, data, update=False):
        if update:
            data.pop("name", None)  # the name is immutable
        return data


class ClusterViewSet(
    ServiceWriteMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedGenericViewSet
):
    """Clusters. The kubeconfig (or server, CA and token) is write-only: it is never returned."""

    selector = staticmethod(selectors.cluster_list_for)
    serializer_class = ClusterSerializer
    filterset_fields = ["datacenter", "status", "tenancy"]
    create_service = staticmethod(services.cluster_register)
    update_service = staticmethod(services.cluster_update)
    delete_service = staticmethod(services.cluster_delete)
    target_kwarg = "cluster"
    reread = True  # the selector annotates what the answer shows

    def prepare(self, data, update=False):
        if "server_url" in data:
            data["server"] = data.pop("server_url")
        if update:
            data.pop("name", None)
            for field in ("server", "ca_data", "token"):
                data.pop(field, None)
        return data

    @extend_schema(request=None, responses={202: None})
    @action(detail=True, methods=["post"])
    def refresh(self, request, pk=None):
        """Check reachability and sync the nodes now (on the cluster's agent)."""
        cluster = self.get_object()
        authz.require_operator(request.user)
        routing.enqueue_for_cluster(cluster, "inventory.tasks.cluster_refresh", cluster.pk)
        return Response({"queued_on": routing.queue_for_cluster(cluster)}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=PrometheusCheckSerializer, responses={200: PrometheusCheckResultSerializer})
    @action(detail=True, methods=["post"], url_path="prometheus-check")
    def prometheus_check(self, request, pk=None):
        """Test the cluster's Prometheus (GPU utilisation): what it answered, or what failed. A
        ``prometheus_url`` in the body is tested instead of the stored one (before saving it)."""
        cluster = self.get_object()
        body = PrometheusCheckSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        works, message = prometheus.prometheus_check(
            actor=request.user, cluster=cluster, url=body.validated_data.get("prometheus_url")
        )
        return Response({"works": works, "message": message})


class NodeViewSet(ScopedReadOnlyViewSet):
    selector = staticmethod(selectors.node_list_for)
    serializer_class = NodeSerializer
    filterset_fields = ["cluster", "gpu_product", "mig_strategy", "schedulable"]


class MigChangeViewSet(ServiceCreateMixin, ScopedReadOnlyViewSet):
    """GPU partitioning: request a MIG configuration for nodes and follow it to success or failure."""

    selector = staticmethod(selectors.mig_change_list_for)
    serializer_class = MigChangeSerializer
    filterset_fields = ["cluster", "state"]
    create_service = staticmethod(services.mig_change_request)


class StorageViewSet(
    ServiceWriteMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedGenericViewSet
):
    selector = staticmethod(selectors.storage_list_for)
    serializer_class = StorageSerializer
    filterset_fields = ["kind"]
    create_service = staticmethod(services.storage_create)
    update_service = staticmethod(services.storage_update)
    delete_service = staticmethod(services.storage_delete)
    target_kwarg = "storage"
    reread = True  # the selector annotates what the answer shows

    def prepare(self, data, update=False):
        if update:
            data.pop("name", None)
        return data

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "visible_in",
                str,
                description="A datacenter id: its storage plus open storage. 'none': open storage only.",
            )
        ]
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        visible_in = self.request.query_params.get("visible_in")
        if visible_in is None or self.action != "list":
            return queryset
        if visible_in in ("", "none"):
            return selectors.storage_for_datacenter(queryset, None)
        datacenter = authz.get_visible(selectors.datacenter_list_for(self.request.user), visible_in)
        return selectors.storage_for_datacenter(queryset, datacenter)


class AgentViewSet(
    ServiceCreateMixin,
    ServiceDestroyMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    ScopedGenericViewSet,
):
    selector = staticmethod(selectors.agent_list_for)
    serializer_class = AgentSerializer
    create_service = staticmethod(services.agent_create)
    delete_service = staticmethod(services.agent_delete)
    target_kwarg = "agent"
    reread = True  # the selector annotates the last heartbeat


class DatacenterAgentViewSet(ServiceCreateMixin, mixins.ListModelMixin, ScopedGenericViewSet):
    """Global settings: which agent serves each datacenter. POST sets it; DELETE (by datacenter id) unsets."""

    selector = staticmethod(selectors.datacenter_agent_list_for)
    serializer_class = DatacenterAgentSerializer
    create_service = staticmethod(services.datacenter_agent_set)

    def destroy(self, request, pk=None):
        mapping = authz.get_visible(self.get_queryset(), pk)
        if mapping is None:
            raise NotFound()
        services.datacenter_agent_set(actor=request.user, datacenter=mapping.datacenter, agent=None)
        return Response(status=status.HTTP_204_NO_CONTENT)
