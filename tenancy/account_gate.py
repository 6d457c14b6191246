"""The one gate in front of every page and the session-authenticated API for signed-in local users.

In order: a session that has not passed the one-time-code step while the user has a confirmed device
goes to ``/account/mfa/verify/``; a user whose address is not verified to ``/account/email/``; a user who
must use MFA (``paas.mfa_policy.mfa_required_for``) and has no device to ``/account/security/`` to enrol.
Only the pages of that step (and signing out, static files, the health check) stay open. The API
answers the same with a 403 in its error shape, code ``mfa_required`` or ``email_unverified``.

Requests with an ``Authorization`` header are the API token's or the identity provider's: a held-back
session never stands in for them (the session's user is dropped, so DRF's session authentication cannot
fall back to it). Users of the identity provider pass: their provider authenticated them.
"""

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.utils.http import urlencode

from paas import context, mfa_policy

VERIFY_URL = "/account/mfa/verify/"
SECURITY_URL = "/account/security/"
EMAIL_URL = "/account/email/"

_ALWAYS_OPEN = ("/logout/", "/login/", "/oidc/", "/healthz", "/readyz", "/account/email/verify/")


class Hold:
    """Why a signed-in user is held back, where to go, and which paths that step may use."""

    def __init__(self, code: str, message: str, url: str, open_paths: tuple[str, ...]):
        self.code, self.message, self.url, self.open_paths = code, message, url, open_paths


def hold_for(user) -> Hold | None:
    """What stops ``user`` (this request's, with its session's verification) now; None: nothing."""
    if not user.is_authenticated or getattr(user, "source", "local") != "local":
        return None
    if mfa_policy.has_device(user) and not mfa_policy.session_verified(user):
        return Hold(
            "mfa_required",
            "Enter a code from your authenticator app (or a recovery code) to finish signing in: "
            f"{VERIFY_URL}",
            VERIFY_URL,
            (VERIFY_URL, "/api/v1/mfa/verify/", "/webauthn/authentication/", "/webauthn/jsi18n/"),
        )
    if not user.email_verified:
        return Hold(
            "email_unverified",
            f"Verify your email address first: open the link we emailed to you ({EMAIL_URL}).",
            EMAIL_URL,
            (EMAIL_URL, "/api/v1/account/email/"),
        )
    if mfa_policy.mfa_required_for(user) and not mfa_policy.has_device(user):
        return Hold(
            "mfa_required",
            f"Multi-factor authentication is required for your account: set up an authenticator app at "
            f"{SECURITY_URL}.",
            SECURITY_URL,
            (SECURITY_URL, "/api/v1/mfa/", "/webauthn/registration/", "/webauthn/jsi18n/"),
        )
    return None


def hold_for_session(user, session) -> Hold | None:
    """:func:`hold_for` for a connection that carries the session but no ``OTPMiddleware`` (the web
    shell's WebSocket): the session's verification is read from django-otp's session key."""
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.models import Device

    if not user.is_authenticated:
        return None
    persistent_id = session.get(DEVICE_ID_SESSION_KEY) if session is not None else None
    device = Device.from_persistent_id(persistent_id) if persistent_id else None
    mine = device is not None and device.user_id == user.pk and device.confirmed
    user.otp_device = device if mine else None
    user.is_verified = lambda: user.otp_device is not None
    return hold_for(user)


class AccountGateMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path
        if path.startswith(_ALWAYS_OPEN) or path.startswith("/" + settings.STATIC_URL.lstrip("/")):
            return self.get_response(request)
        hold = hold_for(request.user)
        if hold is None or path.startswith(hold.open_paths):
            return self.get_response(request)
        if path.startswith("/api/"):
            if request.headers.get("Authorization"):
                request.user = AnonymousUser()  # the token decides; never the held-back session
                return self.get_response(request)
            return JsonResponse(
                {
                    "error": {
                        "status": 403,
                        "code": hold.code,
                        "message": hold.message,
                        "request_id": context.current().request_id,
                    }
                },
                status=403,
            )
        if request.method in ("GET", "HEAD"):
            return redirect(f"{hold.url}?{urlencode({'next': request.get_full_path()})}")
        return redirect(hold.url)
