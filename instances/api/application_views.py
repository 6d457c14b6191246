"""Applications API: deploy YAML or a Helm chart onto a compute instance (uploaded files, a repository,
or an application of the workspace's catalog), list (filters: project, compute_instance, state, q),
inspect (revisions, objects and their status), update (PATCH: a new revision), roll back, retry,
refresh the status, delete (202 with the delete run). Writes through ``instances.applications``."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from instances import application_selectors, applications
from instances.api.application_serializers import (
    ApplicationCreateSerializer,
    ApplicationDetailSerializer,
    ApplicationSerializer,
    ApplicationUpdateSerializer,
    RollbackSerializer,
)
from instances.api.serializers import RunSerializer
from instances.states import State
from paas.api.viewsets import ScopedGenericViewSet, ServiceWriteMixin, query_id
from paas.errors import ValidationFailed


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("project", OpenApiTypes.INT),
            OpenApiParameter("compute_instance", OpenApiTypes.INT),
            OpenApiParameter(
                "state", OpenApiTypes.STR, enum=State.values, description="Deleted ones only when asked for."
            ),
            OpenApiParameter("q", OpenApiTypes.STR, description="Name or description contains."),
        ]
    ),
    create=extend_schema(request=ApplicationCreateSerializer, responses={201: ApplicationDetailSerializer}),
    partial_update=extend_schema(
        request=ApplicationUpdateSerializer,
        responses={200: ApplicationDetailSerializer},
        description="Deploy a new revision: the current source with these changes.",
    ),
)
class ApplicationViewSet(
    ServiceWriteMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedGenericViewSet
):
    selector = staticmethod(application_selectors.application_list_for)
    serializer_class = ApplicationDetailSerializer
    create_serializer_class = ApplicationCreateSerializer
    update_serializer_class = ApplicationUpdateSerializer
    create_service = staticmethod(applications.application_create)
    update_service = staticmethod(applications.application_update)
    target_kwarg = "application"
    update_validates_instance = False
    reread = True

    def get_serializer_class(self):
        return ApplicationSerializer if self.action == "list" else ApplicationDetailSerializer

    def get_queryset(self):
        if self.action == "list" and not getattr(self, "swagger_fake_view", False):
            params = self.request.query_params
            state = params.get("state") or None
            if state is not None and state not in State.values:
                raise ValidationFailed(
                    "Invalid filter.", fields={"state": f"One of: {', '.join(State.values)}."}
                )
            return application_selectors.application_list_filtered(
                self.request.user,
                project=query_id(self.request, "project"),
                compute_instance=query_id(self.request, "compute_instance"),
                state=state,
                q=(params.get("q") or "").replace("\x00", "")[:200] or None,
            )
        return super().get_queryset()

    def result(self, returned):
        return getattr(returned, "application", returned)  # an update answers with its application

    @extend_schema(request=None, responses={202: RunSerializer})
    def destroy(self, request, pk=None):
        run = applications.application_delete(actor=request.user, application=self.get_object())
        return Response(RunSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=RollbackSerializer, responses={202: ApplicationDetailSerializer})
    @action(detail=True, methods=["post"])
    def rollback(self, request, pk=None):
        """Deploy an earlier revision again (default: the last deployed one before the current)."""
        data = self.validated(RollbackSerializer)
        revision = applications.application_rollback(
            actor=request.user, application=self.get_object(), to=data.get("revision")
        )
        return self.respond(revision.application, status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: RunSerializer})
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        """Run the current revision's deploy again (a failed application)."""
        run = applications.application_retry(actor=request.user, application=self.get_object())
        return Response(RunSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: None})
    @action(detail=True, methods=["post"])
    def refresh(self, request, pk=None):
        """Read the status and events of the application's objects again (on the cluster's agent)."""
        applications.application_status_refresh(actor=request.user, application=self.get_object())
        return Response(status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses=RunSerializer(many=True))
    @action(detail=True, methods=["get"])
    def runs(self, request, pk=None):
        return Response(RunSerializer(self.get_object().runs.order_by("-created_at")[:50], many=True).data)
