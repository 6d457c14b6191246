"""``/api/v1/support-access/``: operators request support access to an org; its admins decide.

List, create (operators), retrieve, and the actions ``approve`` / ``deny`` (the org's admins), ``end``
(either side) and ``withdraw`` (the operator); ``settings/{org id}/`` reads and sets an org's
pre-approval (its admins). Every write goes through ``tenancy.support``.
"""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from paas.api.fields import ScopedPrimaryKeyRelatedField
from paas.api.viewsets import ScopedGenericViewSet, ServiceCreateMixin
from paas.errors import NotFound
from tenancy import support
from tenancy.models import Organization, SupportAccess, SupportLevel
from tenancy.support_selectors import (
    org_choices_for_request,
    status_of,
    support_list_for,
    support_orgs_administered,
)


class SupportAccessSerializer(serializers.ModelSerializer):
    org = ScopedPrimaryKeyRelatedField(selector=org_choices_for_request)
    org_name = serializers.CharField(source="org.name", read_only=True)
    user_email = serializers.EmailField(source="user.email", read_only=True)
    status = serializers.SerializerMethodField(
        help_text="The state, an approved access told apart as active or expired."
    )
    level = serializers.CharField(help_text="read (every view permission) or admin (an org admin's).")
    duration_minutes = serializers.IntegerField(help_text="15 minutes to 7 days (10080).")
    reason = serializers.CharField(allow_blank=True, max_length=10000)

    class Meta:
        model = SupportAccess
        fields = [
            "id",
            "org",
            "org_name",
            "user",
            "user_email",
            "reason",
            "level",
            "duration_minutes",
            "state",
            "status",
            "requested_at",
            "decided_by",
            "decided_at",
            "decision_note",
            "starts_at",
            "expires_at",
            "ended_at",
        ]
        read_only_fields = [
            "id",
            "user",
            "state",
            "requested_at",
            "decided_by",
            "decided_at",
            "decision_note",
            "starts_at",
            "expires_at",
            "ended_at",
        ]

    def get_status(self, obj) -> str:
        return status_of(obj)


class SupportDecisionSerializer(serializers.Serializer):
    level = serializers.ChoiceField(
        choices=SupportLevel.choices, required=False, help_text="Lower than asked, or omitted: as asked."
    )
    note = serializers.CharField(required=False, allow_blank=True, max_length=500)


class SupportSettingsSerializer(serializers.ModelSerializer):
    support_preapproval = serializers.ChoiceField(choices=list(support.PREAPPROVAL_CHOICES), required=False)
    support_max_minutes = serializers.IntegerField(required=False, help_text="15 minutes to 7 days.")

    class Meta:
        model = Organization
        fields = ["id", "name", "support_preapproval", "support_max_minutes"]
        read_only_fields = ["id", "name"]


class SupportAccessViewSet(
    ServiceCreateMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedGenericViewSet
):
    """Support access: an operator's time-bound access to one org, approved by its admins."""

    selector = staticmethod(support_list_for)
    serializer_class = SupportAccessSerializer
    filterset_fields = ["org", "state"]
    create_service = staticmethod(support.support_request)

    def _decide(self, service, serializer_class=None, **extra) -> Response:
        access = self.get_object()
        data = self.validated(serializer_class) if serializer_class else {}
        return self.respond(service(actor=self.request.user, access=access, **data, **extra))

    @extend_schema(request=SupportDecisionSerializer, responses=SupportAccessSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        return self._decide(support.support_approve, SupportDecisionSerializer)

    @extend_schema(request=SupportDecisionSerializer, responses=SupportAccessSerializer)
    @action(detail=True, methods=["post"])
    def deny(self, request, pk=None):
        access = self.get_object()
        note = self.validated(SupportDecisionSerializer).get("note", "")
        return self.respond(support.support_deny(actor=request.user, access=access, note=note))

    @extend_schema(request=None, responses=SupportAccessSerializer)
    @action(detail=True, methods=["post"])
    def end(self, request, pk=None):
        return self._decide(support.support_end)

    @extend_schema(request=None, responses=SupportAccessSerializer)
    @action(detail=True, methods=["post"])
    def withdraw(self, request, pk=None):
        return self._decide(support.support_withdraw)

    @extend_schema(methods=["GET"], request=None, responses=SupportSettingsSerializer)
    @extend_schema(methods=["PATCH"], request=SupportSettingsSerializer, responses=SupportSettingsSerializer)
    @action(detail=False, methods=["get", "patch"], url_path=r"settings/(?P<org_id>[0-9]{1,18})")
    def org_settings(self, request, org_id=None):
        """An org's support pre-approval; its admins read and set it."""
        org = support_orgs_administered(request.user).filter(pk=org_id).first()
        if org is None:
            raise NotFound("No such organization.")
        if request.method == "PATCH":
            data = self.validated(SupportSettingsSerializer, instance=org, partial=True)
            org = support.support_settings_update(
                actor=request.user,
                org=org,
                preapproval=data.get("support_preapproval"),
                max_minutes=data.get("support_max_minutes"),
            )
        return Response(SupportSettingsSerializer(org).data, status=status.HTTP_200_OK)
