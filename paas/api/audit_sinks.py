"""``/api/v1/audit-sinks/``: where the audit trail streams (paas/audit_sinks.py, paas/audit_stream.py).

Org admins manage their org's sinks, operators the platform's (``org`` null). The secret (a webhook's
HMAC key, a Splunk HEC token) is write-only. ``lag`` is the chain's head seq minus the cursor.
"""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers
from rest_framework.decorators import action

from paas import audit_sinks
from paas.api.fields import ScopedPrimaryKeyRelatedField
from paas.api.viewsets import ScopedGenericViewSet, ServiceWriteMixin
from paas.models import AuditSink


class AuditSinkSerializer(serializers.ModelSerializer):
    org = ScopedPrimaryKeyRelatedField(
        selector=audit_sinks.orgs_for,
        required=False,
        allow_null=True,
        help_text="The org whose trail is streamed; null: the platform's events (operators only). Fixed "
        "at creation.",
    )
    secret = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        style={"input_type": "password"},
        help_text="Write-only. https: the HMAC-SHA256 key of the X-Signature header (16 characters or "
        "more); splunk_hec: the HEC token. Empty on update: kept.",
    )
    from_beginning = serializers.BooleanField(
        write_only=True,
        required=False,
        default=True,
        help_text="On creation: stream the chain from its first event (default) or only new events.",
    )
    head = serializers.IntegerField(read_only=True, help_text="The last seq of the sink's chain.")
    lag = serializers.SerializerMethodField(help_text="Events not yet accepted by the receiver.")
    health = serializers.CharField(read_only=True, help_text="healthy, failing, unhealthy or disabled.")

    class Meta:
        model = AuditSink
        fields = [
            "id",
            "org",
            "name",
            "kind",
            "url",
            "ca_pem",
            "secret",
            "sourcetype",
            "enabled",
            "batch_size",
            "backoff_initial_seconds",
            "backoff_max_seconds",
            "unhealthy_after",
            "from_beginning",
            "cursor",
            "head",
            "lag",
            "health",
            "consecutive_failures",
            "next_attempt_at",
            "last_delivery_at",
            "last_error",
            "last_error_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "cursor",
            "consecutive_failures",
            "next_attempt_at",
            "last_delivery_at",
            "last_error",
            "last_error_at",
            "created_at",
            "updated_at",
        ]
        validators = []  # (org, name) uniqueness: the service answers 409

    def get_lag(self, obj) -> int:
        return audit_sinks.lag(obj)


class AuditSinkViewSet(
    ServiceWriteMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedGenericViewSet
):
    selector = staticmethod(audit_sinks.audit_sink_list_for)
    serializer_class = AuditSinkSerializer
    filterset_fields = ["org", "kind", "enabled"]
    create_service = staticmethod(audit_sinks.audit_sink_create)
    update_service = staticmethod(audit_sinks.audit_sink_update)
    delete_service = staticmethod(audit_sinks.audit_sink_delete)
    target_kwarg = "sink"
    reread = True  # the selector annotates the chain's head

    def prepare(self, data, update=False):
        if update:
            for fixed in ("org", "kind", "from_beginning"):
                data.pop(fixed, None)
            if not data.get("secret"):
                data.pop("secret", None)
        else:
            data.setdefault("org", None)
        return data

    @extend_schema(request=None, responses=AuditSinkSerializer)
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        """Try the sink at the next delivery pass instead of waiting for its backoff."""
        return self.respond(audit_sinks.audit_sink_retry(actor=request.user, sink=self.get_object()))
