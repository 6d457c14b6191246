"""Account pages of the developer hub: security (MFA devices), the one-time-code sign-in step and the
email address (verification and change). Writes go through ``tenancy.mfa`` and
``tenancy.email_verification``; the account gate (``tenancy.account_gate``) sends people here."""

import django_otp
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods

from paas import mfa_policy
from paas.errors import ApplicationError
from paas.portal import FORM_ERRORS, portal_page
from tenancy import email_verification, mfa


def _next(request: HttpRequest, default: str = "/") -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    ok = url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure())
    return target if ok and target.startswith("/") else default


def _security_context(request: HttpRequest, **extra) -> dict:
    user = request.user
    return {
        "nav": "account",
        "local": user.source == "local",
        "devices": list(mfa.totp_devices(user)) if user.source == "local" else [],
        "passkeys": list(mfa.passkeys(user)) if user.source == "local" else [],
        "codes_left": mfa.recovery_codes_left(user) if user.source == "local" else None,
        "required": mfa_policy.mfa_required_for(user),
        "verified": mfa_policy.session_verified(user),
        "next": _next(request, ""),
        **extra,
    }


def _enrol_context(device, **extra) -> dict:
    return {"pending": device, "secret": mfa.secret_of(device), "qr": mfa.qr_svg(device), **extra}


@portal_page
@require_http_methods(["GET", "POST"])
def security(request: HttpRequest) -> HttpResponse:
    """``/account/security/``: the user's authenticator apps and recovery codes; add, confirm, remove."""
    user = request.user
    if request.method == "GET":
        return render(request, "tenancy/account/security.html", _security_context(request))
    action = request.POST.get("action", "")
    try:
        if action == "begin":
            device = mfa.mfa_totp_begin(actor=user, name=request.POST.get("name", ""))
            return render(
                request, "tenancy/account/security.html", _security_context(request, **_enrol_context(device))
            )
        if action == "confirm":
            device = mfa.totp_device_for(user, request.POST.get("device", ""))
            try:
                codes = mfa.mfa_totp_confirm(actor=user, device=device, token=request.POST.get("token", ""))
            except FORM_ERRORS as exc:
                context = _enrol_context(device, token_error=exc.fields.get("token", [exc.message])[0])
                return render(
                    request,
                    "tenancy/account/security.html",
                    _security_context(request, **context),
                    status=400,
                )
            device.refresh_from_db()
            django_otp.login(request, device)  # possession just proved: this session is verified
            messages.success(request, f"{device.name} is set up: each sign-in now asks for a code from it.")
            return render(request, "tenancy/account/security.html", _security_context(request, codes=codes))
        if action == "recovery":
            codes = mfa.mfa_recovery_codes_create(actor=user)
            return render(request, "tenancy/account/security.html", _security_context(request, codes=codes))
        if action in ("delete", "delete_passkey"):
            pk = request.POST.get("device", "")
            device = (
                mfa.passkey_for(user, pk) if action == "delete_passkey" else mfa.totp_device_for(user, pk)
            )
            mfa.mfa_device_delete(actor=user, device=device)
            messages.success(request, f"{device.name} was removed.")
            return redirect("tenancy:security")
    except FORM_ERRORS as exc:
        return render(
            request,
            "tenancy/account/security.html",
            _security_context(request, error=exc.message),
            status=400,
        )
    return redirect("tenancy:security")


@login_required
@require_http_methods(["GET", "POST"])
def verify(request: HttpRequest) -> HttpResponse:
    """``/account/mfa/verify/``: the sign-in step after the password, for users with a device."""
    target = _next(request)
    if not mfa_policy.has_device(request.user) or mfa_policy.session_verified(request.user):
        return redirect(target)
    error = ""
    if request.method == "POST":
        kind = mfa.mfa_verify(request=request, token=request.POST.get("token", ""))
        if kind is not None:
            if kind == "recovery":
                messages.warning(
                    request,
                    "You signed in with a recovery code; it is used up. Make new ones if few are left.",
                )
            return redirect(target)
        error = "That code is not right (or too many tries: wait a little and try again)."
    context = {"error": error, "next": target, "passkeys": mfa.passkeys(request.user).exists()}
    return render(request, "tenancy/account/verify.html", context, status=400 if error else 200)


@login_required
@require_http_methods(["GET", "POST"])
def email(request: HttpRequest) -> HttpResponse:
    """``/account/email/``: the address, its verification (resend) and a change of address."""
    user = request.user
    error = field_error = ""
    if request.method == "POST":
        try:
            if request.POST.get("action") == "change":
                address = email_verification.email_change_request(
                    actor=user, email=request.POST.get("email", "")
                )
                if user.pending_email:
                    messages.success(request, f"We sent a link to {address}: open it to use this address.")
                else:
                    messages.success(request, "The change of address is cancelled.")
            else:
                address = email_verification.email_verification_send(user=user)
                messages.success(request, f"We sent a new link to {address}.")
            return redirect("tenancy:email")
        except ApplicationError as exc:
            error = exc.message
            field_error = (exc.fields.get("email") or [""])[0]
    return render(
        request,
        "tenancy/account/email.html",
        {
            "nav": "account",
            "local": user.source == "local",
            "waiting": email_verification.address_to_verify(user) if user.source == "local" else "",
            "error": error,
            "field_error": field_error,
            "value": request.POST.get("email", ""),
        },
        status=400 if error else 200,
    )


@require_http_methods(["GET", "POST"])
def email_verify(request: HttpRequest, token: str) -> HttpResponse:
    """``/account/email/verify/<token>/``: the emailed link; a button confirms (link scanners only GET)."""
    if request.method == "POST":
        try:
            user = email_verification.email_verify(token=token)
        except ApplicationError as exc:
            return render(request, "tenancy/account/email_verify.html", {"error": exc.message}, status=400)
        if request.user.is_authenticated and request.user.pk == user.pk:
            messages.success(request, f"{user.email} is verified.")
            return redirect("/")
        return render(request, "tenancy/account/email_verify.html", {"done": user.email})
    return render(request, "tenancy/account/email_verify.html", {"token": token})
