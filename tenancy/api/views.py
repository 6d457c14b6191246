"""Tenancy API: thin viewsets; querysets from selectors, writes through services."""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from paas.api.viewsets import ScopedGenericViewSet, ScopedReadOnlyViewSet
from paas.errors import NotFound
from paas.models import AuditEvent
from tenancy import selectors, services
from tenancy.api import filters
from tenancy.api.serializers import (
    IdpGroupMappingSerializer,
    InvitationAcceptSerializer,
    InvitationSerializer,
    MemberRemoveSerializer,
    MeSerializer,
    OrganizationOnboardSerializer,
    OrganizationSerializer,
    ProjectSerializer,
    ProjectUpdateSerializer,
    QuotaSerializer,
    RoleAssignmentSerializer,
    UserSerializer,
)


class MeView(APIView):
    @extend_schema(responses=MeSerializer)
    def get(self, request):
        return Response(MeSerializer(request.user).data)


class OrganizationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedGenericViewSet):
    """Organizations (tenants). Operators onboard them; org admins rename theirs."""

    selector = staticmethod(selectors.org_list_for)
    serializer_class = OrganizationSerializer
    filterset_fields = ["is_active"]

    @extend_schema(request=OrganizationOnboardSerializer, responses={201: OrganizationSerializer})
    def create(self, request):
        data = self._valid(OrganizationOnboardSerializer, request.data)
        org, _invitation, _token = services.org_onboard(actor=request.user, **data)
        return Response(OrganizationSerializer(org).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=OrganizationSerializer, responses=OrganizationSerializer)
    def partial_update(self, request, pk=None):
        org = self.get_object()
        data = self._valid(OrganizationSerializer, request.data, partial=True)
        org = services.org_update(actor=request.user, org=org, **data)
        return Response(OrganizationSerializer(org).data)

    @extend_schema(request=MemberRemoveSerializer, responses={204: None})
    @action(detail=True, methods=["post"], url_path="remove-member")
    def remove_member(self, request, pk=None):
        """Remove someone from the organization: every role they hold in it goes, and with them their
        access to its instances (their ServiceAccounts are deleted, so their kubeconfigs stop working)."""
        org = self.get_object()
        data = self._valid(MemberRemoveSerializer, request.data)
        services.member_remove(actor=request.user, org=org, user=data["user"])
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _valid(self, serializer_class, data, **kwargs) -> dict:
        serializer = serializer_class(data=data, context=self.get_serializer_context(), **kwargs)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data


class AuditEventSerializer(serializers.ModelSerializer):
    user = serializers.IntegerField(source="actor_id", read_only=True)
    user_email = serializers.CharField(source="actor_repr", read_only=True)

    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "created_at",
            "user",
            "user_email",
            "org",
            "project",
            "client",
            "action",
            "target_type",
            "target_id",
            "target_repr",
            "details",
            "request_id",
            "chain",
            "seq",
            "hash",
            "prev_hash",
        ]


class ProjectViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, ScopedGenericViewSet
):
    """Projects, shown to end users as workspaces."""

    selector = staticmethod(selectors.project_list_for)
    serializer_class = ProjectSerializer
    filterset_class = filters.ProjectFilter

    def create(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        project = services.project_create(actor=request.user, **serializer.validated_data)
        return Response(self.get_serializer(project).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ProjectUpdateSerializer, responses=ProjectSerializer)
    def partial_update(self, request, pk=None):
        project = self.get_object()
        serializer = ProjectUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        project = services.project_update(actor=request.user, project=project, **serializer.validated_data)
        return Response(self.get_serializer(project).data)

    def perform_destroy(self, instance):
        services.project_delete(actor=self.request.user, project=instance)

    @extend_schema(responses=AuditEventSerializer(many=True))
    @action(detail=True, methods=["get"])
    def activity(self, request, pk=None):
        """The workspace's latest audit events (its landing page's "recent activity"), for the people who
        work in it; 404 for a PaaS admin (who manages the workspace's catalog, not its work)."""
        project = self.get_object()
        if not selectors.can_see_workspace_activity(request.user, project):
            raise NotFound("No such project.")
        events = selectors.workspace_activity(request.user, project, limit=50)
        return Response(AuditEventSerializer(events, many=True).data)


class RoleAssignmentViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, ScopedGenericViewSet
):
    selector = staticmethod(selectors.role_assignment_list_for)
    serializer_class = RoleAssignmentSerializer
    filterset_class = filters.RoleAssignmentFilter

    def create(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        assignment = services.role_assign(actor=request.user, **serializer.validated_data)
        return Response(self.get_serializer(assignment).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance):
        services.role_revoke(actor=self.request.user, assignment=instance)


class IdpGroupMappingViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, ScopedGenericViewSet
):
    """Single sign-on: which identity provider group gives which role. Org admins manage their orgs';
    the roles follow at each member's next sign-on."""

    selector = staticmethod(selectors.idp_mapping_list_for)
    serializer_class = IdpGroupMappingSerializer
    filterset_class = filters.IdpGroupMappingFilter

    def create(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        mapping = services.idp_mapping_create(actor=request.user, **serializer.validated_data)
        return Response(self.get_serializer(mapping).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance):
        services.idp_mapping_delete(actor=self.request.user, mapping=instance)


class InvitationViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, ScopedGenericViewSet
):
    """Invitations by email. DELETE revokes a pending invitation."""

    selector = staticmethod(selectors.invitation_list_for)
    serializer_class = InvitationSerializer
    filterset_class = filters.InvitationFilter

    def create(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        invitation, _token = services.invitation_create(actor=request.user, **serializer.validated_data)
        return Response(self.get_serializer(invitation).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance):
        services.invitation_revoke(actor=self.request.user, invitation=instance)

    @extend_schema(request=InvitationAcceptSerializer, responses={200: MeSerializer})
    @action(detail=False, methods=["post"], permission_classes=[AllowAny], url_path="accept")
    def accept(self, request):
        """Accept with the emailed token: signed in as the invited user, or creating a local account."""
        serializer = InvitationAcceptSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = services.invitation_accept(user=request.user, **serializer.validated_data)
        return Response(MeSerializer(user).data)


class QuotaViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedGenericViewSet):
    """Quotas of orgs (set by operators) and projects (set by org admins). Empty = unlimited."""

    selector = staticmethod(selectors.quota_list_for)
    serializer_class = QuotaSerializer
    filterset_class = filters.QuotaFilter

    def update(self, request, pk=None, partial=False):
        quota = self.get_object()
        serializer = self.get_serializer(quota, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        gpu_models = data.pop("gpu_models", None)
        if gpu_models is not None:
            gpu_models = {row["gpu_model"]: row["gpus"] for row in gpu_models}
        quota = services.quota_update(actor=request.user, quota=quota, gpu_models=gpu_models, **data)
        return Response(self.get_serializer(quota).data)

    def partial_update(self, request, pk=None):
        return self.update(request, pk=pk, partial=True)


class UserViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedGenericViewSet):
    selector = staticmethod(selectors.user_list_for)
    serializer_class = UserSerializer
    filterset_fields = ["is_active", "source"]

    def partial_update(self, request, pk=None):
        user = self.get_object()
        serializer = self.get_serializer(user, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        user = services.user_update(actor=request.user, user=user, **serializer.validated_data)
        return Response(self.get_serializer(user).data)


class AuditEventViewSet(ScopedReadOnlyViewSet):
    """The audit trail, newest first. Org admins see their orgs'; operators all."""

    selector = staticmethod(selectors.audit_event_list_for)
    serializer_class = AuditEventSerializer
    filterset_class = filters.AuditEventFilter
