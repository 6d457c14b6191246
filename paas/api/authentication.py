from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

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


class ApiTokenAuthentication(BaseAuthentication):
    """``Authorization: Bearer gpaas_…`` with a personal API token.

    Bearer values without our prefix are left to the next authenticator (the identity provider's
    access tokens, wired by the developer-hub issue).
    """

    def authenticate(self, request):
        raw = bearer_token(request)
        if raw is None or not raw.startswith(TOKEN_PREFIX):
            return None
        user = api_token_authenticate(raw)
        if user is None:
            raise AuthenticationFailed("Invalid, expired or revoked token.")
        return user, raw

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'
