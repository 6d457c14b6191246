"""``/api/v1/org-keys/``: the organizations' data keys (``paas.org_keys``). One entry per organization
the user may see (operators: every org; org admins: their own), keyed by the org's id. ``POST
{id}/rotate/`` rotates it (operators, the org's admins); ``POST {id}/destroy/`` with ``{"confirm":
"<org name>"}`` crypto-shreds a deactivated org's secrets (operators only). No key material is ever
answered."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from paas import org_keys
from paas.keyring_models import OrgDataKey


class OrgKeySerializer(serializers.Serializer):
    org = serializers.IntegerField(source="org.pk", help_text="The organization's id (also this entry's id).")
    org_name = serializers.CharField(source="org.name")
    org_active = serializers.BooleanField(source="org.is_active")
    state = serializers.CharField(
        help_text="active: secrets are encrypted under the org's data key; none: no secret stored since "
        "per-org keys (older ones stay under the platform keys until a rotation); destroyed: the org's "
        "keys were destroyed and its secrets cannot be read."
    )
    version = serializers.IntegerField(allow_null=True, help_text="The active data key's version.")
    created_at = serializers.DateTimeField(allow_null=True, help_text="When the active data key was made.")
    secrets = serializers.IntegerField(help_text="How many of the org's records hold a secret.")
    can_rotate = serializers.BooleanField()
    can_destroy = serializers.BooleanField()


class OrgKeyDestroySerializer(serializers.Serializer):
    confirm = serializers.CharField(help_text="The organization's name, to confirm: this cannot be undone.")


ORG_ID = OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The organization's id.")


class OrgKeyViewSet(viewsets.GenericViewSet):
    serializer_class = OrgKeySerializer
    lookup_value_regex = r"[0-9]+"

    def _row(self, pk):
        return org_keys.org_key_get_for(self.request.user, pk)

    def get_queryset(self):  # (the rows come from paas.org_keys; this only types the schema)
        return OrgDataKey.objects.none()

    @extend_schema(responses=OrgKeySerializer(many=True))
    def list(self, request):
        page = self.paginate_queryset(org_keys.org_key_orgs_for(request.user).order_by("name"))
        rows = org_keys.org_key_rows(request.user, page)
        return self.get_paginated_response(OrgKeySerializer(rows, many=True).data)

    @extend_schema(parameters=[ORG_ID], responses=OrgKeySerializer)
    def retrieve(self, request, pk=None):
        return Response(OrgKeySerializer(self._row(pk)).data)

    @extend_schema(parameters=[ORG_ID], request=None, responses=OrgKeySerializer)
    @action(detail=True, methods=["post"])
    def rotate(self, request, pk=None):
        row = self._row(pk)
        org_keys.org_key_rotate(actor=request.user, org=row.org)
        return Response(OrgKeySerializer(self._row(pk)).data)

    @extend_schema(parameters=[ORG_ID], request=OrgKeyDestroySerializer, responses=OrgKeySerializer)
    @action(detail=True, methods=["post"], url_path="destroy")
    def destroy_keys(self, request, pk=None):
        row = self._row(pk)
        data = OrgKeyDestroySerializer(data=request.data)
        data.is_valid(raise_exception=True)
        org_keys.org_key_destroy(actor=request.user, org=row.org, confirm=data.validated_data["confirm"])
        return Response(OrgKeySerializer(self._row(pk)).data)
