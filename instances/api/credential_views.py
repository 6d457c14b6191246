"""kubectl credentials API: the live credentials of a compute instance's kubectl proxy (your own, or
everyone's for who may change the instance) and revoking one (audited). A credential is listed by who
holds it, how it was issued (a kubeconfig download or the web shell), when, until when and when it was
last used; never its token or digest. A credential you may not see and one that does not exist (or
expired, or was revoked) alike answer 404."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from instances import selectors
from instances.kubeproxy import credentials
from instances.kubeproxy import selectors as credential_selectors
from instances.models import KubeCredential


class CredentialUserSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    email = serializers.CharField()


class KubeCredentialSerializer(serializers.ModelSerializer):
    user = CredentialUserSerializer(read_only=True)
    via = serializers.CharField(read_only=True, help_text="kubeconfig (a download) or shell (the web shell).")
    revoked = serializers.SerializerMethodField()

    class Meta:
        model = KubeCredential
        fields = ["id", "user", "via", "created_at", "expires_at", "last_used_at", "revoked"]
        read_only_fields = fields

    def get_revoked(self, obj) -> bool:
        return obj.revoked_at is not None


class KubeCredentialListView(APIView):
    """The instance's live kubectl credentials: your own, or everyone's if you may change the instance
    (newest first)."""

    @extend_schema(
        responses=KubeCredentialSerializer(many=True), operation_id="instances_kube_credentials_list"
    )
    def get(self, request, pk):
        instance = selectors.instance_get_for(request.user, pk)
        rows = credential_selectors.credentials_visible(actor=request.user, instance=instance)
        return Response(KubeCredentialSerializer(rows[: credential_selectors.MAX_LISTED], many=True).data)


class KubeCredentialRevokeView(APIView):
    """Revoke a kubectl credential (yours, or anyone's if you may change the instance): the next request
    made with it is refused, and its open streams close at their next check. Audited."""

    @extend_schema(
        request=None, responses=KubeCredentialSerializer, operation_id="instances_kube_credential_revoke"
    )
    def post(self, request, pk, credential_id):
        instance = selectors.instance_get_for(request.user, pk)
        credential = credential_selectors.access_credential(
            actor=request.user, instance=instance, credential_id=credential_id
        )
        credential = credentials.credential_revoke(actor=request.user, credential=credential)
        return Response(KubeCredentialSerializer(credential).data)
