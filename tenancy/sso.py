"""Single sign-on with any standard OpenID Connect provider (mozilla-django-oidc underneath).

The browser flow is the authorization code flow with PKCE: ``/oidc/authenticate/`` sends the person to
the provider, ``/oidc/callback/`` exchanges the code over HTTP, verifies the ID token (signature from the
provider's JWKS, audience, issuer when discovered, expiry, nonce) and reads the userinfo claims; then
``tenancy.services.sso_login`` finds or creates the user and syncs their roles from the groups claim.
The API accepts the provider's access tokens too (``tenancy.api.authentication``), checked against the
userinfo endpoint and cached briefly.

Everything here is inert unless ``OIDC_ENABLED``: the backend answers no one and the views are 404, so
password logins and the suite's other tests never meet the provider. Endpoints come from settings, or
from the provider's discovery document (``OIDC_OP_DISCOVERY_URL``), read on first use and cached.
"""

import base64
import hashlib
import json
import logging
import time
from urllib.parse import urlencode

import jwt
import requests
from django.conf import settings
from django.contrib import auth, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.cache import cache
from django.core.exceptions import SuspiciousOperation
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import resolve_url
from django.urls import reverse
from django.views.decorators.http import require_POST
from django.views.generic import View
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView
from requests.auth import HTTPBasicAuth

from paas import outbound
from paas.errors import ApplicationError

logger = logging.getLogger(__name__)

DISCOVERY_TTL_SECONDS = 3600
_ENDPOINT_SETTINGS = {
    "authorization_endpoint": "OIDC_OP_AUTHORIZATION_ENDPOINT",
    "token_endpoint": "OIDC_OP_TOKEN_ENDPOINT",
    "userinfo_endpoint": "OIDC_OP_USER_ENDPOINT",
    "jwks_uri": "OIDC_OP_JWKS_ENDPOINT",
    "end_session_endpoint": "OIDC_OP_LOGOUT_ENDPOINT",
}
_discovered: dict[str, tuple[float, dict]] = {}


class ProviderUnavailable(Exception):
    """The identity provider could not be reached or answered with a server error."""


class InvalidAccessToken(Exception):
    """The provider does not accept the access token (tampered, expired, revoked or unknown)."""


def is_enabled() -> bool:
    return bool(getattr(settings, "OIDC_ENABLED", False))


def _discover(url: str) -> dict:
    now = time.monotonic()
    hit = _discovered.get(url)
    if hit and now - hit[0] < DISCOVERY_TTL_SECONDS:
        return hit[1]
    try:
        response = _provider_http().get(url, timeout=settings.OIDC_TIMEOUT)
        response.raise_for_status()
        document = response.json()
    except (requests.RequestException, ValueError) as exc:
        logger.warning("OIDC discovery from %s failed: %s", url, exc)
        raise ProviderUnavailable(f"The identity provider's configuration could not be read: {exc}") from exc
    _discovered[url] = (now, document)
    return document


def _provider_http() -> requests.Session:
    """Every call to the provider goes through the outbound-address policy (paas/outbound.py): no
    environment proxy, http(s) only, each connection (redirect hops included) to a checked address.
    The provider is the operator's choice, but its URLs (and its discovery document's) are still URLs
    that could point at the platform's own host; a provider on loopback needs
    PAAS_OUTBOUND_ALLOW_LOOPBACK (the suite's fake provider has it)."""
    return outbound.checked_session(purpose="identity provider")


def provider_config() -> dict:
    """The provider's endpoints (and issuer): explicit settings first, then the discovery document."""
    config = {key: getattr(settings, name, "") or "" for key, name in _ENDPOINT_SETTINGS.items()}
    config["issuer"] = ""
    url = getattr(settings, "OIDC_OP_DISCOVERY_URL", "")
    if url and not all(config[key] for key in _ENDPOINT_SETTINGS):
        document = _discover(url)
        for key in [*_ENDPOINT_SETTINGS, "issuer"]:
            config[key] = config[key] or document.get(key) or ""
    return config


def clear_discovery_cache() -> None:
    _discovered.clear()


# --- the authentication backend ---------------------------------------------------------------------


class OidcBackend(OIDCAuthenticationBackend):
    """mozilla-django-oidc's backend, reading settings lazily and handing the user to our service.

    Listed in ``AUTHENTICATION_BACKENDS`` always (so switching SSO on is configuration only); it does
    nothing unless ``OIDC_ENABLED`` and it grants no permissions of its own (ModelBackend and guardian do).
    """

    def __init__(self, *args, **kwargs):
        # mozilla's __init__ reads (and insists on) every endpoint; ours are read when used.
        self.UserModel = get_user_model()
        self.request = None

    # The attributes mozilla's methods read, resolved at use time.
    OIDC_RP_CLIENT_ID = property(lambda self: settings.OIDC_RP_CLIENT_ID)
    OIDC_RP_CLIENT_SECRET = property(lambda self: settings.OIDC_RP_CLIENT_SECRET)
    OIDC_RP_SIGN_ALGO = property(lambda self: settings.OIDC_RP_SIGN_ALGO)
    OIDC_RP_IDP_SIGN_KEY = property(lambda self: getattr(settings, "OIDC_RP_IDP_SIGN_KEY", None))
    OIDC_OP_TOKEN_ENDPOINT = property(lambda self: provider_config()["token_endpoint"])
    OIDC_OP_USER_ENDPOINT = property(lambda self: provider_config()["userinfo_endpoint"])
    OIDC_OP_JWKS_ENDPOINT = property(lambda self: provider_config()["jwks_uri"] or None)

    def authenticate(self, request, **kwargs):
        if not is_enabled() or request is None or "password" in kwargs:
            return None
        return super().authenticate(request, **kwargs)

    def get_user(self, user_id):
        return ModelBackend.get_user(self, user_id)  # refuses deactivated users, like ModelBackend

    # Permissions are ModelBackend's and guardian's business; do not answer them twice.
    def get_user_permissions(self, user_obj, obj=None):
        return set()

    def get_group_permissions(self, user_obj, obj=None):
        return set()

    def get_all_permissions(self, user_obj, obj=None):
        return set()

    def has_perm(self, user_obj, perm, obj=None):
        return False

    def has_module_perms(self, user_obj, app_label):
        return False

    # --- tokens and claims --------------------------------------------------------------------------
    def _verify_jws(self, payload, key):
        """Signature, algorithm, expiry, audience and (when discovered) issuer of an ID token."""
        try:
            alg = jwt.get_unverified_header(payload).get("alg")
        except jwt.InvalidTokenError as exc:
            raise SuspiciousOperation(f"Malformed ID token: {exc}") from exc
        if alg != self.OIDC_RP_SIGN_ALGO:
            raise SuspiciousOperation(f"ID token algorithm {alg!r} is not OIDC_RP_SIGN_ALGO.")
        issuer = provider_config().get("issuer") or None
        try:
            return jwt.decode(
                payload,
                key,
                algorithms=[alg],
                audience=self.OIDC_RP_CLIENT_ID,
                issuer=issuer,
                options={"require": ["exp", "iat", "sub", "aud"]},
            )
        except jwt.InvalidTokenError as exc:
            raise SuspiciousOperation(f"ID token refused: {exc}") from exc

    def retrieve_matching_jwk(self, token):
        """The provider's signing key for this token: by ``kid`` when the token names one (some providers,
        like single-key ones, do not), and always of the token's algorithm."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise SuspiciousOperation(f"Malformed ID token: {exc}") from exc
        try:
            response = _provider_http().get(self.OIDC_OP_JWKS_ENDPOINT, timeout=settings.OIDC_TIMEOUT)
            response.raise_for_status()
            keys = response.json().get("keys", [])
        except (requests.RequestException, ValueError, AttributeError) as exc:
            raise ProviderUnavailable(f"The identity provider's keys could not be read: {exc}") from exc
        kid, alg = header.get("kid"), header.get("alg")
        candidates = [
            key
            for key in keys
            if (kid is None or key.get("kid") == kid)
            and key.get("alg", alg) == alg
            and key.get("use", "sig") == "sig"
        ]
        if len(candidates) != 1:
            raise SuspiciousOperation(f"{len(candidates)} signing keys of the provider match, not one.")
        try:
            return jwt.PyJWK(candidates[0], algorithm=alg)
        except jwt.PyJWKError as exc:
            raise SuspiciousOperation(f"Unusable signing key: {exc}") from exc

    def get_token(self, payload):
        """mozilla's token request, through the outbound-address policy (see :func:`_provider_http`)."""
        auth = None
        if self.get_settings("OIDC_TOKEN_USE_BASIC_AUTH", False):
            auth = HTTPBasicAuth(payload.get("client_id"), payload.pop("client_secret", None))
        response = _provider_http().post(
            self.OIDC_OP_TOKEN_ENDPOINT,
            data=payload,
            auth=auth,
            verify=self.get_settings("OIDC_VERIFY_SSL", True),
            timeout=self.get_settings("OIDC_TIMEOUT", None),
        )
        self.raise_token_response_error(response)
        return response.json()

    def get_userinfo(self, access_token, id_token=None, payload=None):
        return self.userinfo(access_token)

    def userinfo(self, access_token: str) -> dict:
        """The claims the provider gives for this access token; it says whether the token is valid."""
        try:
            response = _provider_http().get(
                provider_config()["userinfo_endpoint"],
                headers={"Authorization": f"Bearer {access_token}"},
                timeout=settings.OIDC_TIMEOUT,
            )
        except requests.RequestException as exc:
            raise ProviderUnavailable(f"The identity provider could not be reached: {exc}") from exc
        if response.status_code >= 500:
            raise ProviderUnavailable(f"The identity provider answered {response.status_code}.")
        if response.status_code != 200:
            raise InvalidAccessToken(f"The identity provider refused the token ({response.status_code}).")
        if response.headers.get("content-type", "").lower().startswith("application/jwt"):
            return self.verify_token(response.text)
        try:
            claims = response.json()
        except ValueError as exc:
            raise ProviderUnavailable("The identity provider's userinfo answer is not JSON.") from exc
        if not isinstance(claims, dict):
            raise ProviderUnavailable("The identity provider's userinfo answer is not an object.")
        return claims

    def verify_claims(self, claims) -> bool:
        return bool(claims.get("sub") and claims.get("email"))

    def get_or_create_user(self, access_token, id_token, payload):
        from tenancy import services

        claims = self.get_userinfo(access_token, id_token, payload)
        if payload and claims.get("sub") != payload.get("sub"):
            raise SuspiciousOperation("The userinfo subject differs from the ID token's.")
        if not self.verify_claims(claims):
            self._refuse("The identity provider did not send your email address; ask your administrator.")
            return None
        try:
            return services.sso_login(claims=claims)
        except ApplicationError as exc:
            logger.info("Single sign-on of %s refused: %s", claims.get("sub"), exc.message)
            self._refuse(exc.message)
            return None

    def _refuse(self, message: str) -> None:
        if self.request is not None:
            messages.error(self.request, message, fail_silently=True)
            self.request._sso_refused = True


# --- views ------------------------------------------------------------------------------------------


def _failure_redirect(request, message: str) -> HttpResponseRedirect:
    messages.error(request, message, fail_silently=True)
    return HttpResponseRedirect(resolve_url(settings.LOGIN_REDIRECT_URL_FAILURE))


class AuthenticateView(OIDCAuthenticationRequestView):
    """Start the code flow (state, nonce, PKCE challenge) towards the provider's authorization page."""

    def __init__(self, **kwargs):
        View.__init__(self, **kwargs)  # mozilla's reads the endpoint here; we read it per request

    def get(self, request):
        if not is_enabled():
            raise Http404("Single sign-on is not configured.")
        try:
            self.OIDC_OP_AUTH_ENDPOINT = provider_config()["authorization_endpoint"]
        except ProviderUnavailable:
            return _failure_redirect(request, "The identity provider cannot be reached; try again later.")
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        return super().get(request)


class CallbackView(OIDCAuthenticationCallbackView):
    """The provider's redirect back; every failure ends on the login page with a message, never a 500."""

    def get(self, request):
        if not is_enabled():
            raise Http404("Single sign-on is not configured.")
        try:
            return super().get(request)
        except SuspiciousOperation as exc:
            logger.warning("Single sign-on callback refused: %s", exc)
            return _failure_redirect(request, "Single sign-on failed: the answer could not be verified.")
        except (ProviderUnavailable, InvalidAccessToken, requests.RequestException) as exc:
            logger.warning("Single sign-on callback failed: %s", exc)
            return _failure_redirect(request, "The identity provider cannot be reached; try again later.")

    def login_failure(self):
        if not getattr(self.request, "_sso_refused", False):
            messages.error(self.request, "Single sign-on did not complete.", fail_silently=True)
        return super().login_failure()


def provider_logout_url(request) -> str:
    """Where to send someone who signs out (``OIDC_OP_LOGOUT_URL_METHOD``): the provider's end-session
    endpoint with ``id_token_hint`` when the session came from it and it has one, else the login page."""
    login_page = resolve_url(settings.LOGIN_URL)
    id_token = request.session.get("oidc_id_token")
    if not (id_token and is_enabled()):
        return login_page
    try:
        endpoint = provider_config().get("end_session_endpoint")
    except ProviderUnavailable:
        endpoint = None
    if not endpoint:
        return login_page
    query = urlencode(
        {
            "id_token_hint": id_token,
            "post_logout_redirect_uri": request.build_absolute_uri(login_page),
            "client_id": settings.OIDC_RP_CLIENT_ID,
        }
    )
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"


@require_POST
def logout(request):
    """Sign out here, and at the provider when the session came from it (POST only: CSRF-protected)."""
    url = provider_logout_url(request) if request.user.is_authenticated else resolve_url(settings.LOGIN_URL)
    auth.logout(request)
    return HttpResponseRedirect(url)


def template_context(request) -> dict:
    """``sso`` in every template: whether to offer single sign-on, its label and where it starts."""
    return {
        "sso": {
            "enabled": is_enabled(),
            "provider_name": settings.OIDC_PROVIDER_NAME,
            "login_url": reverse("oidc_authentication_init"),
        }
    }


# --- API bearer tokens ------------------------------------------------------------------------------


def _check_audience(token: str) -> None:
    """Refuse a JWT access token issued to another client of the provider.

    Userinfo says whose token it is, not for whom it was issued. Providers that issue JWT access
    tokens (Keycloak, Okta, Entra ID, Auth0...) name the client in ``azp`` or ``aud``; such a token
    must name ours. The payload is read here without its signature: it only ever refuses, and the
    provider's userinfo endpoint is what accepts. Opaque tokens carry nothing to check.
    """
    parts = token.split(".")
    if len(parts) != 3:
        return
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, TypeError):
        return  # not a JWT after all: opaque to us
    if not isinstance(payload, dict):
        return
    audience = payload.get("aud", [])
    audience = [audience] if isinstance(audience, str) else list(audience or [])
    client = settings.OIDC_RP_CLIENT_ID
    if payload.get("azp", client) != client or (audience and client not in audience and "azp" not in payload):
        raise InvalidAccessToken("This access token was issued to another client.")


def user_for_access_token(token: str):
    """The user an access token of the provider is for (just-in-time creation and group sync apply).

    A successful check is cached for ``OIDC_API_TOKEN_CACHE_SECONDS`` under a SHA-256 of the token, so
    API calls do not each ask the provider; a token revoked at the provider may thus work that long.
    Raises ``InvalidAccessToken``, ``ProviderUnavailable`` or an ``ApplicationError`` (login refused).
    """
    from tenancy import services

    key = "sso:bearer:" + hashlib.sha256(token.encode()).hexdigest()
    user_id = cache.get(key)
    if user_id is not None:
        user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
        if user is not None:
            return user
    _check_audience(token)
    backend = OidcBackend()
    claims = backend.userinfo(token)
    if not backend.verify_claims(claims):
        raise InvalidAccessToken("The provider's claims for this token carry no subject or email.")
    user = services.sso_login(claims=claims)
    if settings.OIDC_API_TOKEN_CACHE_SECONDS > 0:
        cache.set(key, user.pk, settings.OIDC_API_TOKEN_CACHE_SECONDS)
    return user
