"""Compute instances API: launch, inspect, retry, delete, collaborators, kubeconfig, workspace summary."""

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from instances import selectors, services
from instances.api.serializers import CollaboratorSerializer, InstanceSerializer, RunSerializer, latest_runs
from paas.api.viewsets import ScopedGenericViewSet, ServiceCreateMixin
from tenancy.models import User


class InstanceViewSet(
    ServiceCreateMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedGenericViewSet
):
    selector = staticmethod(selectors.instance_list_for)
    serializer_class = InstanceSerializer
    filterset_fields = ["project", "state"]
    create_service = staticmethod(services.instance_launch)

    def get_queryset(self):
        # The latest run of each instance of a page in one query (a sliced prefetch), not one a row.
        queryset = super().get_queryset()
        if self.action in ("list", "retrieve"):
            queryset = queryset.prefetch_related(latest_runs(service__isnull=True))
        return queryset

    @extend_schema(responses={202: RunSerializer})
    def destroy(self, request, pk=None):  # not a plain delete: it starts the teardown run and answers it
        run = services.instance_delete(actor=request.user, instance=self.get_object())
        return Response(RunSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: RunSerializer})
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        run = services.instance_retry(actor=request.user, instance=self.get_object())
        return Response(RunSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses=RunSerializer(many=True))
    @action(detail=True, methods=["get"])
    def runs(self, request, pk=None):
        return Response(
            RunSerializer(self.get_object().runs.filter(service__isnull=True)[:50], many=True).data
        )

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["get"], url_path="service-usage")
    def service_usage(self, request, pk=None):
        """What the instance's services use against its totals: ``totals``, ``own`` (the instance's own
        template's objects), ``services`` (a stopped one counts only its storage) and ``left``."""
        from instances.service_instances import instance_service_usage

        return Response(instance_service_usage(self.get_object()))

    @extend_schema(request=CollaboratorSerializer, responses=CollaboratorSerializer(many=True))
    @action(detail=True, methods=["get", "post"])
    def collaborators(self, request, pk=None):
        instance = self.get_object()
        if request.method == "POST":
            serializer = CollaboratorSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            services.collaborator_add(
                actor=request.user, instance=instance, email=serializer.validated_data["user"]["email"]
            )
        return Response(CollaboratorSerializer(instance.collaborators.select_related("user"), many=True).data)

    @extend_schema(request=None, responses={204: None})
    @action(detail=True, methods=["delete"], url_path=r"collaborators/(?P<user_id>\d+)")
    def remove_collaborator(self, request, pk=None, user_id=None):
        instance = self.get_object()
        user = User.objects.filter(pk=user_id).first()
        if user is None or not instance.collaborators.filter(user=user).exists():
            from paas.errors import NotFound

            raise NotFound("No such collaborator.")
        services.collaborator_remove(actor=request.user, instance=instance, user=user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={(200, "application/yaml"): OpenApiTypes.STR})
    @action(detail=True, methods=["post"])
    def kubeconfig(self, request, pk=None):
        """A kubeconfig with a short-lived token for your own identity in the instance's namespace."""
        text = services.kubeconfig_issue(actor=request.user, instance=self.get_object())
        response = HttpResponse(text, content_type="application/yaml")
        response["Content-Disposition"] = 'attachment; filename="kubeconfig.yaml"'
        response["Cache-Control"] = "no-store"
        return response

    @extend_schema(request=None, responses={200: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["post"], url_path=r"outputs/(?P<name>[A-Za-z0-9_.-]+)/reveal")
    def reveal_output(self, request, pk=None, name=None):
        """The value of a secret output, read from the instance's namespace now (audited, never stored)."""
        value = services.output_reveal(actor=request.user, instance=self.get_object(), name=name)
        response = Response({"name": name, "value": value})
        response["Cache-Control"] = "no-store"
        return response


class WorkspaceSummaryView(APIView):
    """Instances by state and resources in use against the workspace quota (the landing page), for the
    people who work in the workspace (404 for a PaaS admin). GPUs count MIG slices as fractions:
    ``gpu_units`` is exact (28ths of a GPU), ``gpus`` has two decimals. ``instance_limits``: the org's
    and the workspace's per-user limits with what the caller's own instances hold against each."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, project_id):
        return Response(selectors.workspace_summary(request.user, project_id, with_limits=True))
