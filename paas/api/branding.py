"""``/api/v1/branding/``: the brand in effect for the caller (everyone signed in) and, for operators,
the platform's brand and the per-org brands (``brands/``, ``orgs/{org_id}/``). Images are given as
base64 (an empty string removes one) and served at their ``logo_url`` / ``favicon_url``."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from paas.brand_checks import COLOUR_FIELDS, TEXT_FIELDS, decode_image
from paas.branding import (
    BrandView,
    brand_delete,
    brand_get_for,
    brand_in_effect,
    brand_list_for,
    brand_update,
)
from paas.errors import ValidationFailed

SHOWN = ["id", "org_id", *TEXT_FIELDS, *COLOUR_FIELDS, "logo_url", "favicon_url"]


class BrandSerializer(serializers.Serializer):
    id = serializers.IntegerField(allow_null=True, help_text="null: the defaults (nothing saved yet).")
    org_id = serializers.IntegerField(allow_null=True, help_text="null: the platform's brand.")
    product_name = serializers.CharField()
    portal_name = serializers.CharField()
    studio_name = serializers.CharField()
    support_email = serializers.CharField()
    support_url = serializers.CharField()
    email_from_name = serializers.CharField()
    email_from_address = serializers.CharField()
    email_footer = serializers.CharField()
    color_background = serializers.CharField()
    color_text = serializers.CharField()
    color_primary = serializers.CharField()
    color_primary_text = serializers.CharField()
    logo_url = serializers.CharField()
    favicon_url = serializers.CharField()


class BrandUpdateSerializer(serializers.Serializer):
    product_name = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    portal_name = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    studio_name = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    support_email = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    support_url = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    email_from_name = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    email_from_address = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    email_footer = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    color_background = serializers.CharField(required=False, help_text="#rrggbb")
    color_text = serializers.CharField(
        required=False, help_text="#rrggbb; contrast on the background >= 4.5:1"
    )
    color_primary = serializers.CharField(
        required=False, help_text="#rrggbb (buttons, links); contrast on the background >= 4.5:1"
    )
    color_primary_text = serializers.CharField(
        required=False, help_text="#rrggbb (button text); contrast on the primary colour >= 4.5:1"
    )
    logo = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="PNG, JPEG, WebP or ICO as base64 (max 256 KiB); '' removes",
    )
    favicon = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="PNG, JPEG, WebP or ICO as base64 (max 64 KiB); '' removes",
    )


def _shown(view: BrandView) -> dict:
    return BrandSerializer({name: getattr(view, name) for name in SHOWN}).data


def _update(request, org_id):
    data = BrandUpdateSerializer(data=request.data)
    data.is_valid(raise_exception=True)
    values = dict(data.validated_data)
    images = {}
    for kind in ("logo", "favicon"):
        if kind in values:
            raw = values.pop(kind)
            images[kind] = decode_image(kind, raw) if raw else None
    row = brand_update(actor=request.user, org=org_id, **images, **values)
    return Response(_shown(BrandView.of(row)))


class BrandingView(APIView):
    """GET: the brand you see (``?org=`` one of your orgs). PATCH: the platform's brand (operators)."""

    @extend_schema(
        parameters=[OpenApiParameter("org", int, required=False, description="One of your organizations.")],
        responses=BrandSerializer,
    )
    def get(self, request):
        org = request.query_params.get("org")
        if org is not None and not org.isdigit():
            raise ValidationFailed("org must be an organization id.", fields={"org": "An id."})
        return Response(_shown(brand_in_effect(request.user, org_id=org)))

    @extend_schema(request=BrandUpdateSerializer, responses=BrandSerializer)
    def patch(self, request):
        return _update(request, None)


class BrandListView(APIView):
    """Every saved brand (operators; others see an empty list)."""

    @extend_schema(responses=BrandSerializer(many=True))
    def get(self, request):
        return Response([_shown(BrandView.of(row)) for row in brand_list_for(request.user)])


class OrgBrandView(APIView):
    """An organization's own brand (operators): GET, PATCH (creates it), DELETE (back to the platform's)."""

    @extend_schema(responses=BrandSerializer)
    def get(self, request, org_id: int):
        return Response(_shown(BrandView.of(brand_get_for(request.user, org_id=org_id))))

    @extend_schema(request=BrandUpdateSerializer, responses=BrandSerializer)
    def patch(self, request, org_id: int):
        return _update(request, org_id)

    @extend_schema(responses={204: None})
    def delete(self, request, org_id: int):
        brand_delete(actor=request.user, brand=brand_get_for(request.user, org_id=org_id))
        return Response(status=status.HTTP_204_NO_CONTENT)
