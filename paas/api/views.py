from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.response import Response

from paas import mfa_policy, selectors, services
from paas.api.viewsets import ScopedGenericViewSet, ServiceDestroyMixin
from paas.models import ApiToken, TokenScope


class ApiTokenSerializer(serializers.ModelSerializer):
    token_hint = serializers.SerializerMethodField()
    is_active = serializers.BooleanField(read_only=True)

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "name",
            "scope",
            "token_hint",
            "created_at",
            "expires_at",
            "last_used_at",
            "revoked_at",
            "is_active",
        ]

    def get_token_hint(self, obj) -> str:
        return f"gpaas_{obj.prefix}_…"


class ApiTokenCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    expires_in_days = serializers.IntegerField(min_value=1, default=90)
    scope = serializers.ChoiceField(
        choices=TokenScope.choices,
        default=TokenScope.READ_WRITE,
        help_text="read-only tokens may only read (GET); read-write tokens may do what you may; "
        "billing:read tokens may only read the billing API (/api/v1/billing/), for a billing system.",
    )


class ApiTokenCreatedSerializer(ApiTokenSerializer):
    token = serializers.CharField(read_only=True, help_text="Shown once; store it now.")

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "token"]


class ApiTokenViewSet(
    ServiceDestroyMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedGenericViewSet
):
    """Your personal API tokens. The token is returned once, at creation; DELETE revokes it. Tokens are
    created from a signed-in session only: a request authenticated by a token cannot create one."""

    selector = staticmethod(selectors.api_token_list_for)
    serializer_class = ApiTokenSerializer
    delete_service = staticmethod(services.api_token_revoke)
    target_kwarg = "api_token"

    @extend_schema(request=ApiTokenCreateSerializer, responses={201: ApiTokenCreatedSerializer})
    def create(self, request):  # not plain: the answer carries the token, once
        serializer = ApiTokenCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        api_token, token = services.api_token_create(
            actor=request.user,
            via_token=request.auth is not None,
            mfa_verified=request.auth is None and mfa_policy.session_verified(request._request.user),
            **serializer.validated_data,
        )
        data = ApiTokenSerializer(api_token).data | {"token": token}
        return Response(data, status=status.HTTP_201_CREATED)
