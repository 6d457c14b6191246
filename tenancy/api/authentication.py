"""The identity provider's access tokens as API credentials (``Authorization: Bearer <token>``).

Listed after ``paas.api.authentication.ApiTokenAuthentication`` (our own ``gpaas_`` tokens) and inert
unless single sign-on is enabled. The token is checked with the provider's userinfo endpoint (briefly
cached); the person behind it is the same user as in the browser, through the same service.
"""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions, status
from rest_framework.authentication import BaseAuthentication

from paas import lockout
from paas.api.authentication import LockedOut, bearer_token
from paas.errors import ApplicationError
from paas.services import TOKEN_PREFIX
from tenancy import sso


class IdentityProviderUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The identity provider cannot be reached to check your token; try again later."
    default_code = "idp_unavailable"


class OidcBearerAuthentication(BaseAuthentication):
    def authenticate(self, request):
        if not sso.is_enabled():
            return None
        token = bearer_token(request)
        if token is None:
            return None
        if token.startswith(TOKEN_PREFIX):
            return None  # one of ours: ApiTokenAuthentication answers it
        try:  # failed token checks count per address, like ours (paas.lockout)
            lockout.token_check_allowed(request._request)
        except lockout.TooManyAttempts as exc:
            raise LockedOut(exc.message) from exc
        try:
            user = sso.user_for_access_token(token)
        except sso.InvalidAccessToken as exc:
            lockout.token_failed(request._request)
            raise exceptions.AuthenticationFailed("Invalid or expired access token.") from exc
        except sso.ProviderUnavailable as exc:
            raise IdentityProviderUnavailable() from exc
        except ApplicationError as exc:
            raise exceptions.AuthenticationFailed(exc.message) from exc
        return user, token

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


class OidcBearerScheme(OpenApiAuthenticationExtension):
    target_class = "tenancy.api.authentication.OidcBearerAuthentication"
    name = "oidcAccessToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An access token of the single sign-on identity provider (when SSO is enabled).",
        }
