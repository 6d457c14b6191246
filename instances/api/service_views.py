"""Service instances API: deploy a service profile onto a compute instance, list (filters: type,
instance, state), inspect, delete (202 with the delete run), reveal a secret output."""

import django_filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from catalog.models import ServiceProfile
from instances import service_instances, service_selectors
from instances.api.serializers import RunSerializer, latest_runs
from instances.api.service_serializers import ServiceInstanceSerializer
from instances.models import ServiceInstance
from instances.states import State
from paas.api.viewsets import ScopedGenericViewSet, ServiceCreateMixin


class ServiceInstanceFilter(django_filters.FilterSet):
    type = django_filters.ChoiceFilter(field_name="service_type", choices=ServiceProfile.ServiceType.choices)
    instance = django_filters.NumberFilter(field_name="compute_instance")
    state = django_filters.ChoiceFilter(choices=State.choices, method="filter_state")

    class Meta:
        model = ServiceInstance
        fields = ["type", "instance", "state", "project"]

    def filter_state(self, queryset, name, value):
        return queryset.filter(state=value)

    @property
    def qs(self):
        queryset = super().qs
        if not self.form.cleaned_data.get("state"):
            queryset = queryset.exclude(state=State.DELETED)  # deleted ones only when asked for
        return queryset


class ServiceInstanceViewSet(
    ServiceCreateMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedGenericViewSet
):
    selector = staticmethod(service_selectors.service_list_for)
    serializer_class = ServiceInstanceSerializer
    filterset_class = ServiceInstanceFilter
    create_service = staticmethod(service_instances.service_launch)

    def get_queryset(self):
        # The latest run of each service of a page in one query (a sliced prefetch), not one a row.
        queryset = super().get_queryset()
        if self.action in ("list", "retrieve"):
            queryset = queryset.prefetch_related(latest_runs())
        if self.action == "list":
            queryset = queryset.order_by("-created_at", "-pk")
        return queryset

    def filter_queryset(self, queryset):
        if self.action != "list":  # a deleted service stays retrievable by id
            return queryset
        return super().filter_queryset(queryset)

    def prepare(self, data: dict, update: bool = False) -> dict:
        datacenter = data.pop("datacenter_name", None)
        if datacenter:
            data["datacenter"] = datacenter
        return data

    @extend_schema(responses={202: RunSerializer})
    def destroy(self, request, pk=None):  # starts the delete run and answers it
        run = service_instances.service_delete(actor=request.user, service=self.get_object())
        return Response(RunSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses=RunSerializer(many=True))
    @action(detail=True, methods=["get"])
    def runs(self, request, pk=None):
        return Response(RunSerializer(self.get_object().runs.all()[:50], many=True).data)

    @extend_schema(request=None, responses={200: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["post"], url_path=r"outputs/(?P<name>[A-Za-z0-9_.-]+)/reveal")
    def reveal_output(self, request, pk=None, name=None):
        """The value of a secret output, read from the namespace now (audited, never stored)."""
        value = service_instances.service_output_reveal(
            actor=request.user, service=self.get_object(), name=name
        )
        response = Response({"name": name, "value": value})
        response["Cache-Control"] = "no-store"
        return response
