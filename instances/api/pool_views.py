"""Warm pools API (operators): pools of standby instances per compute profile, their schedules and
live figures, and "converge now". Anyone else sees no pool: an empty list, a 404 for any id, and a
403 on create."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from instances import pool_selectors, pools
from instances.api.pool_serializers import PoolScheduleSerializer, WarmPoolSerializer
from paas import authz
from paas.api.viewsets import ScopedGenericViewSet, ServiceWriteMixin


class WarmPoolViewSet(
    ServiceWriteMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedGenericViewSet
):
    selector = staticmethod(pool_selectors.pool_list_for)
    serializer_class = WarmPoolSerializer
    filterset_fields = ["profile", "datacenter", "cluster", "enabled", "status"]
    create_service = staticmethod(pools.pool_create)
    update_service = staticmethod(pools.pool_update)
    delete_service = staticmethod(pools.pool_delete)
    target_kwarg = "pool"
    reread = True  # answer with the schedules and live figures

    def get_serializer(self, *args, **kwargs):
        if kwargs.get("many") and args:  # a page of pools: their live figures in a few queries
            rows = list(args[0])
            kwargs["context"] = self.get_serializer_context() | {
                "pool_statuses": pool_selectors.pool_statuses(rows)
            }
            args = (rows, *args[1:])
        return super().get_serializer(*args, **kwargs)

    def create(self, request, *args, **kwargs):
        authz.require_operator(request.user, message="Only platform operators manage warm pools.")
        return super().create(request, *args, **kwargs)

    def prepare(self, data, update=False):
        if update:  # a pool's profile is fixed (the service checks a change of scope)
            data.pop("profile", None)
        return data

    @extend_schema(methods=["GET"], responses=PoolScheduleSerializer(many=True))
    @extend_schema(methods=["POST"], request=PoolScheduleSerializer, responses={201: PoolScheduleSerializer})
    @action(detail=True, methods=["get", "post"])
    def schedules(self, request, pk=None):
        """The pool's schedules (the first that applies sets the capacity); POST adds one."""
        pool = self.get_object()
        if request.method == "POST":
            serializer = PoolScheduleSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            schedule = pools.schedule_create(actor=request.user, pool=pool, **serializer.validated_data)
            return Response(PoolScheduleSerializer(schedule).data, status=status.HTTP_201_CREATED)
        return Response(
            PoolScheduleSerializer(pool_selectors.schedule_list_for(request.user, pool), many=True).data
        )

    @extend_schema(methods=["GET"], responses=PoolScheduleSerializer)
    @extend_schema(methods=["PATCH"], request=PoolScheduleSerializer, responses=PoolScheduleSerializer)
    @extend_schema(methods=["DELETE"], request=None, responses={204: None})
    @action(detail=True, methods=["get", "patch", "delete"], url_path=r"schedules/(?P<schedule_id>[0-9]+)")
    def schedule(self, request, pk=None, schedule_id=None):
        """One schedule of the pool: read, change (PATCH) or delete it."""
        pool = self.get_object()
        schedule = authz.get_visible(pool_selectors.schedule_list_for(request.user, pool), schedule_id)
        if request.method == "DELETE":
            pools.schedule_delete(actor=request.user, schedule=schedule)
            return Response(status=status.HTTP_204_NO_CONTENT)
        if request.method == "PATCH":
            serializer = PoolScheduleSerializer(schedule, data=request.data, partial=True)
            serializer.is_valid(raise_exception=True)
            schedule = pools.schedule_update(
                actor=request.user, schedule=schedule, **serializer.validated_data
            )
        return Response(PoolScheduleSerializer(schedule).data)

    @extend_schema(request=None, responses={202: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["post"])
    def converge(self, request, pk=None):
        """Run the control loop for this pool now rather than at its next tick."""
        pool = self.get_object()
        pools.pool_converge_now(actor=request.user, pool=pool)
        return Response({"queued": True}, status=status.HTTP_202_ACCEPTED)
