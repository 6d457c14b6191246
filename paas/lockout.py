"""Login throttling and lockout (django-axes underneath), for the password pages and API tokens.

The password pages (portal ``/login/``, studio ``/studio/login/``) are guarded by axes' backend and
middleware: after ``AXES_FAILURE_LIMIT`` failed sign-ins for one username from one address, that
username is locked out from that address for ``AXES_COOLOFF_TIME``; during the lockout even the right
password is refused (the page says so). Failed API token authentications count the same way under one
pseudo-username per address (``API_TOKEN_CREDENTIAL``), so guessing tokens from an address stops there;
the API then answers 429 in its usual error shape. Operators lift a lockout with ``manage.py axes_reset``.
"""

from axes.handlers.proxy import AxesProxyHandler
from axes.middleware import AxesMiddleware
from django.contrib.auth.signals import user_login_failed
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from paas.errors import ApplicationError

# Not a valid username (the validator allows no parentheses or spaces): it never collides with a person.
API_TOKEN_CREDENTIAL = "(api token)"  # noqa: S105 - a label, not a secret


class TooManyAttempts(ApplicationError):
    status = 429
    code = "locked_out"


def _minutes(request: HttpRequest) -> int:
    from axes.helpers import get_cool_off

    cool_off = get_cool_off(request)
    return max(1, round(cool_off.total_seconds() / 60)) if cool_off else 0


def lockout_message(request: HttpRequest) -> str:
    minutes = _minutes(request)
    wait = f"try again in {minutes} minute{'s' if minutes != 1 else ''}" if minutes else "ask an operator"
    return f"Too many failed attempts from your address: sign-in is paused; {wait}."


def _probe(request: HttpRequest) -> HttpRequest:
    """What axes may see of an API request: address, agent, path; never its body or query string
    (axes stores the GET and POST data of failures, and an API request may carry secrets)."""
    probe = getattr(request, "_lockout_probe", None)
    if probe is None:
        probe = HttpRequest()
        probe.method, probe.path, probe.path_info = request.method, request.path, request.path_info
        probe.META = {
            key: request.META[key]
            for key in ("REMOTE_ADDR", "HTTP_USER_AGENT", "HTTP_ACCEPT")
            if key in request.META
        }
        request._lockout_probe = probe
    return probe


def token_check_allowed(request: HttpRequest) -> None:
    """Raise ``TooManyAttempts`` while token authentication from this address is locked out."""
    probe = _probe(request)
    if not AxesProxyHandler.is_allowed(probe, {"username": API_TOKEN_CREDENTIAL}):
        raise TooManyAttempts(lockout_message(probe))


def token_failed(request: HttpRequest) -> None:
    """Count one failed token authentication from this address (axes' failure signal). The probe, not
    the request, goes to axes, so the page middleware never turns the API's answer into a page."""
    probe = _probe(request)
    user_login_failed.send(sender=__name__, credentials={"username": API_TOKEN_CREDENTIAL}, request=probe)


def lockout_response(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    """``AXES_LOCKOUT_CALLABLE``: the sign-in page again, saying why and for how long (HTTP 429)."""
    studio = request.path.startswith("/studio/")
    return render(
        request,
        "lockout.html",
        {
            "message": lockout_message(request),
            "login_url": "/studio/login/" if studio else "/login/",
            "username": (credentials or {}).get("username", ""),
        },
        status=429,
    )


class LockoutMiddleware(AxesMiddleware):
    """axes' middleware for the pages only; API lockouts are answered by the API's own error handler."""

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/api/"):
            return self.get_response(request)
        return super().__call__(request)
