"""Tenancy API: thin viewsets; querysets from selectors, writes through services."""

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from paas.api.viewsets import (
    ScopedGenericViewSet,
    ScopedReadOnlyViewSet,
    ServiceCreateMixin,
    ServiceDestroyMixin,
    ServiceUpdateMixin,
)
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


@extend_schema_view(
    create=extend_schema(request=OrganizationOnboardSerializer, responses={201: OrganizationSerializer}),
    partial_update=extend_schema(request=OrganizationSerializer, responses=OrganizationSerializer),
)
class OrganizationViewSet(
    ServiceCreateMixin,
    ServiceUpdateMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    ScopedGenericViewSet,
):
    """Organizations (tenants). Operators onboard them; org admins rename theirs."""

    selector = staticmethod(selectors.org_list_for)
    serializer_class = OrganizationSerializer
    filterset_fields = ["is_active"]
    create_serializer_class = OrganizationOnboardSerializer
    create_service = staticmethod(services.org_onboard)
    update_service = staticmethod(services.org_update)
    target_kwarg = "org"
    update_validates_instance = False

    def result(self, returned):
        return (
            returned[0] if isinstance(returned, tuple) else returned
        )  # onboarding: (org, invitation, token)

    @extend_schema(request=MemberRemoveSerializer, responses={204: None})
    @action(detail=True, methods=["post"], url_path="remove-member")
    def remove_member(self, request, pk=None):
        """Remove someone from the organization: every role they hold in it goes, and with them their
        access to its instances (their ServiceAccounts are deleted, so their kubeconfigs stop working)."""
        org = self.get_object()
        data = self.validated(MemberRemoveSerializer)
        services.member_remove(actor=request.user, org=org, user=data["user"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class AuditEventSerializer(serializers.ModelSerializer):
    user = serializers.IntegerField(source="actor_id", read_only=True)
    user_email = serializers.CharField(source="actor_repr", read_only=True)
    cluster = serializers.IntegerField(
        source="cluster_id", read_only=True, allow_null=True, help_text="The cluster of a kubectl request."
    )
    cluster_name = serializers.SerializerMethodField(help_text="Its name when the request was made.")

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
            "cluster",
            "cluster_name",
            "chain",
            "seq",
            "hash",
            "prev_hash",
        ]

    def get_cluster_name(self, obj) -> str | None:
        if obj.cluster_id is None:
            return None
        return (obj.details or {}).get("cluster") or None


@extend_schema_view(
    partial_update=extend_schema(request=ProjectUpdateSerializer, responses=ProjectSerializer)
)
class ProjectViewSet(
    ServiceCreateMixin,
    ServiceUpdateMixin,
    ServiceDestroyMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    ScopedGenericViewSet,
):
    """Projects, shown to end users as workspaces."""

    selector = staticmethod(selectors.project_list_for)
    serializer_class = ProjectSerializer
    filterset_class = filters.ProjectFilter
    update_serializer_class = ProjectUpdateSerializer
    create_service = staticmethod(services.project_create)
    update_service = staticmethod(services.project_update)
    delete_service = staticmethod(services.project_delete)
    target_kwarg = "project"
    update_validates_instance = False

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
    ServiceCreateMixin,
    ServiceDestroyMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    ScopedGenericViewSet,
):
    selector = staticmethod(selectors.role_assignment_list_for)
    serializer_class = RoleAssignmentSerializer
    filterset_class = filters.RoleAssignmentFilter
    create_service = staticmethod(services.role_assign)
    delete_service = staticmethod(services.role_revoke)
    target_kwarg = "assignment"


class IdpGroupMappingViewSet(
    ServiceCreateMixin,
    ServiceDestroyMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    ScopedGenericViewSet,
):
    """Single sign-on: which identity provider group gives which role. Org admins manage their orgs';
    the roles follow at each member's next sign-on."""

    selector = staticmethod(selectors.idp_mapping_list_for)
    serializer_class = IdpGroupMappingSerializer
    filterset_class = filters.IdpGroupMappingFilter
    create_service = staticmethod(services.idp_mapping_create)
    delete_service = staticmethod(services.idp_mapping_delete)
    target_kwarg = "mapping"


class InvitationViewSet(
    ServiceCreateMixin,
    ServiceDestroyMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    ScopedGenericViewSet,
):
    """Invitations by email. DELETE revokes a pending invitation."""

    selector = staticmethod(selectors.invitation_list_for)
    serializer_class = InvitationSerializer
    filterset_class = filters.InvitationFilter
    create_service = staticmethod(services.invitation_create)
    delete_service = staticmethod(services.invitation_revoke)
    target_kwarg = "invitation"

    def result(self, returned):
        invitation, _token = returned  # the token goes by email only, never into an answer
        return invitation

    @extend_schema(request=InvitationAcceptSerializer, responses={200: MeSerializer})
    @action(detail=False, methods=["post"], permission_classes=[AllowAny], url_path="accept")
    def accept(self, request):
        """Accept with the emailed token: signed in as the invited user, or creating a local account."""
        serializer = InvitationAcceptSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = services.invitation_accept(user=request.user, **serializer.validated_data)
        return Response(MeSerializer(user).data)


class QuotaViewSet(
    ServiceUpdateMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedGenericViewSet
):
    """Quotas of orgs (set by operators) and projects (set by org admins). Empty = unlimited."""

    selector = staticmethod(selectors.quota_list_for)
    serializer_class = QuotaSerializer
    filterset_class = filters.QuotaFilter
    update_service = staticmethod(services.quota_update)
    target_kwarg = "quota"

    def update(self, request, *args, **kwargs):  # PUT as well as PATCH
        return self.service_update(partial=False)

    def prepare(self, data, update=False):
        gpu_models = data.pop("gpu_models", None)
        data["gpu_models"] = (
            None if gpu_models is None else {row["gpu_model"]: row["gpus"] for row in gpu_models}
        )
        return data


class UserViewSet(ServiceUpdateMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedGenericViewSet):
    selector = staticmethod(selectors.user_list_for)
    serializer_class = UserSerializer
    filterset_fields = ["is_active", "source"]
    update_service = staticmethod(services.user_update)
    target_kwarg = "user"


class AuditEventViewSet(ScopedReadOnlyViewSet):
    """The audit trail, newest first. Org admins see their orgs'; operators the platform's events and
    those of the orgs a support access opens to them."""

    selector = staticmethod(selectors.audit_event_list_for)
    serializer_class = AuditEventSerializer
    filterset_class = filters.AuditEventFilter
