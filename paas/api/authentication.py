from rest_framework import status
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import APIException, AuthenticationFailed, PermissionDenied

from paas import lockout
from paas.api import scopes
from paas.services import TOKEN_PREFIX, api_token_authenticate


def bearer_token(request) -> str | None:
    """The value of ``Authorization: Bearer <value>``; None without a bearer header (every API
    authenticator that takes bearer values reads it here)."""
    parts = get_authorization_header(request).split()
    if not parts or parts[0].lower() != b"bearer":
        return None
    if len(parts) != 2:
        raise AuthenticationFailed("Invalid Authorization header: expected 'Bearer <token>'.")
    try:
        return parts[1].decode()
    except UnicodeError as exc:
        raise AuthenticationFailed("Invalid token.") from exc


class LockedOut(APIException):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "locked_out"


class ApiTokenAuthentication(BaseAuthentication):
    """``Authorization: Bearer gpaas_…`` with a personal API token.

    Bearer values without our prefix are left to the next authenticator (the identity provider's
    access tokens, wired by the developer-hub issue). ``request.auth`` is the ``ApiToken``.

    Failed attempts are counted per client address (``paas.lockout``): past the limit every token from
    that address is refused with a 429 for the cool-off, the right one too. The token's scope is
    enforced here, before any view runs (``paas.api.scopes``).
    """

    def authenticate(self, request):
        raw = bearer_token(request)
        if raw is None or not raw.startswith(TOKEN_PREFIX):
            return None
        try:
            lockout.token_check_allowed(request._request)
        except lockout.TooManyAttempts as exc:
            raise LockedOut(exc.message) from exc
        api_token = api_token_authenticate(raw)
        if api_token is None:
            lockout.token_failed(request._request)
            raise AuthenticationFailed("Invalid, expired or revoked token.")
        refused = scopes.refusal(api_token.scope, request)
        if refused:
            raise PermissionDenied(refused)
        return api_token.user, api_token

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'
