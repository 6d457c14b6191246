"""``/api/v1/audit-settings/``: the operators' audit settings (how kubectl reads reach the trail)."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from paas.audit_settings import audit_settings_for, audit_settings_update
from paas.models import AuditSettings, KubectlReads


class AuditSettingsSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditSettings
        fields = ["kubectl_reads", "kubectl_sample_every", "updated_at"]
        read_only_fields = ["updated_at"]


class AuditSettingsUpdateSerializer(serializers.Serializer):
    kubectl_reads = serializers.ChoiceField(
        choices=KubectlReads.choices,
        required=False,
        help_text="all: every read is an event; sample: 1 read in kubectl_sample_every per user and "
        "instance; summary: one kubectl.reads event per user, instance, verb, resource and namespace "
        "per flush, with a count. Writes are always recorded one by one.",
    )
    kubectl_sample_every = serializers.IntegerField(required=False)


class AuditSettingsView(APIView):
    """Operators only (others: 403)."""

    @extend_schema(responses=AuditSettingsSerializer)
    def get(self, request):
        return Response(AuditSettingsSerializer(audit_settings_for(request.user)).data)

    @extend_schema(request=AuditSettingsUpdateSerializer, responses=AuditSettingsSerializer)
    def patch(self, request):
        current = audit_settings_for(request.user)
        data = AuditSettingsUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        row = audit_settings_update(
            actor=request.user,
            kubectl_reads=data.validated_data.get("kubectl_reads", current.kubectl_reads),
            kubectl_sample_every=data.validated_data.get("kubectl_sample_every"),
        )
        return Response(AuditSettingsSerializer(row).data)
