"""MFA for local accounts (django-otp): an authenticator app (TOTP) and one-time recovery codes.

Who must have it and whether a session passed it: ``paas.mfa_policy``. The sign-in step
(:func:`mfa_verify`) runs after the password: the account gate (``tenancy.account_gate``) sends a
signed-in user with a confirmed device to it until the session is verified, and one whose org requires
MFA but who has no device to the enrolment page. A code is checked against one device at a time
(django-otp's ``verify_token``: throttled per device, a TOTP code never accepted twice, a recovery code
used up). Recovery codes are shown once, when made; only django-otp's rows keep them. Passkeys
(WebAuthn, django-otp-webauthn) are registered and used through that library's ceremonies (``/webauthn/``,
its scripts on the security and verify pages), as a second factor only (no password-less sign-in); they
count as devices here (listed, removed, reset, audited when registered: :func:`passkey_registered`).

Writes: :func:`mfa_totp_begin` (an unconfirmed device whose key the user scans), :func:`mfa_totp_confirm`
(a code from the app confirms it; the first app brings recovery codes), :func:`mfa_recovery_codes_create`,
:func:`mfa_device_delete` (one's own) and :func:`mfa_reset` (an org admin clears a member's devices:
they enrol again at next sign-in). Every one audited.
"""

from base64 import b32encode

import django_otp
import segno
from django.db import transaction
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_otp_webauthn.models import WebAuthnCredential

from paas import authz, mfa_policy
from paas.audit import audit_log
from paas.errors import Conflict, Forbidden, NotFound, ValidationFailed
from tenancy.models import Organization, RoleAssignment, User
from tenancy.selectors import user_list_for

RECOVERY_CODES = 10
RECOVERY_NAME = "Recovery codes"


def _local(user: User) -> None:
    if user.source != User.Source.LOCAL:
        raise ValidationFailed(
            "You sign in with your identity provider, which handles your second factor; "
            "there is nothing to set up here."
        )


def totp_devices(user: User, *, confirmed: bool | None = True):
    queryset = TOTPDevice.objects.filter(user=user).order_by("created_at", "pk")
    return queryset if confirmed is None else queryset.filter(confirmed=confirmed)


def passkeys(user: User):
    """The user's passkeys (WebAuthn credentials, registered through django-otp-webauthn's ceremony on
    ``/account/security/``; confirmed when registered)."""
    return WebAuthnCredential.objects.filter(user=user, confirmed=True).order_by("created_at", "pk")


def passkey_for(user: User, pk) -> WebAuthnCredential:
    credential = WebAuthnCredential.objects.filter(user=user, pk=pk).first() if str(pk).isdigit() else None
    if credential is None:
        raise NotFound("No such passkey.")
    return credential


def _has_second_factor(user: User) -> bool:
    """An app or a passkey (recovery codes only stand in for one)."""
    return totp_devices(user).exists() or passkeys(user).exists()


def recovery_codes_left(user: User) -> int | None:
    """How many recovery codes remain (None: the user has none made)."""
    device = StaticDevice.objects.filter(user=user, confirmed=True).first()
    return None if device is None else device.token_set.count()


def totp_device_for(user: User, pk) -> TOTPDevice:
    device = TOTPDevice.objects.filter(user=user, pk=pk).first() if str(pk).isdigit() else None
    if device is None:
        raise NotFound("No such authenticator app.")
    return device


def secret_of(device: TOTPDevice) -> str:
    """The key as authenticator apps take it typed in (base32)."""
    return b32encode(device.bin_key).decode()


def qr_svg(device: TOTPDevice) -> str:
    """The ``otpauth://`` address of the device as an inline SVG QR code (segno)."""
    return segno.make(device.config_url, error="m").svg_inline(
        scale=4, title="QR code of your authenticator key", svgclass="qr", lineclass="qr-line"
    )


def _clean_name(name: str) -> str:
    name = (name or "").strip() or "Authenticator app"
    if len(name) > 64:
        raise ValidationFailed("The device could not be added.", fields={"name": "At most 64 characters."})
    return name


@transaction.atomic
def mfa_totp_begin(*, actor: User, name: str = "") -> TOTPDevice:
    """A new, unconfirmed authenticator device for ``actor`` (any earlier unconfirmed one goes)."""
    _local(actor)
    name = _clean_name(name)
    totp_devices(actor, confirmed=False).delete()
    return TOTPDevice.objects.create(user=actor, name=name, confirmed=False)


def _new_recovery_codes(user: User) -> list[str]:
    device, _ = StaticDevice.objects.get_or_create(user=user, defaults={"name": RECOVERY_NAME})
    device.confirmed = True
    device.throttle_reset(commit=False)
    device.save()
    device.token_set.all().delete()
    codes = [StaticToken.random_token() for _ in range(RECOVERY_CODES)]
    StaticToken.objects.bulk_create(StaticToken(device=device, token=code) for code in codes)
    return codes


def mfa_totp_confirm(*, actor: User, device: TOTPDevice, token: str) -> list[str]:
    """Confirm ``device`` with a code from the app. Returns new recovery codes (to show once) when the
    user had none, else an empty list."""
    _local(actor)
    if device.user_id != actor.pk:
        raise NotFound("No such authenticator app.")
    if device.confirmed:
        raise Conflict("This authenticator app is confirmed already.")
    # verify_token saves the device (its last code, or a failure for the throttle) in its own
    # transaction: a wrong code still counts.
    if not django_otp.verify_token(actor, device.persistent_id, _digits(token)):
        raise ValidationFailed(
            "That code does not match: enter the current 6-digit code from your app.",
            fields={"token": "The code does not match."},
        )
    with transaction.atomic():
        device = TOTPDevice.objects.select_for_update().get(pk=device.pk)
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        codes = [] if recovery_codes_left(actor) is not None else _new_recovery_codes(actor)
        audit_log(
            actor=actor,
            action="mfa.enrol",
            target=actor,
            details={"device": device.name, "kind": "totp", "recovery_codes": bool(codes)},
        )
    mfa_policy.forget(actor)
    return codes


@transaction.atomic
def mfa_recovery_codes_create(*, actor: User) -> list[str]:
    """New recovery codes for ``actor`` (the old ones stop working); shown once."""
    _local(actor)
    if not _has_second_factor(actor):
        raise ValidationFailed("Add an authenticator app or a passkey first; recovery codes stand in for it.")
    codes = _new_recovery_codes(actor)
    audit_log(actor=actor, action="mfa.recovery_codes", target=actor, details={"count": len(codes)})
    return codes


@transaction.atomic
def mfa_device_delete(*, actor: User, device: TOTPDevice | WebAuthnCredential) -> None:
    """Remove one of ``actor``'s authenticator apps or passkeys; with the last one, the recovery codes go
    too."""
    if device.user_id != actor.pk:
        raise NotFound("No such authenticator app.")
    name, confirmed = device.name, device.confirmed
    kind = "passkey" if isinstance(device, WebAuthnCredential) else "totp"
    device.delete()
    if not _has_second_factor(actor):
        StaticDevice.objects.filter(user=actor).delete()
    if confirmed:
        audit_log(
            actor=actor, action="mfa.device_delete", target=actor, details={"device": name, "kind": kind}
        )
    mfa_policy.forget(actor)


def _reset_org(actor: User, user: User) -> Organization | None:
    """An org of ``user``'s that ``actor`` administers (None: none)."""
    orgs = RoleAssignment.objects.filter(user=user, org__isnull=False).values("org_id")
    administered = authz.filter_for(
        actor, "administer_organization", Organization.objects.filter(pk__in=orgs)
    )
    return administered.order_by("name").first()


@transaction.atomic
def mfa_reset(*, actor: User, user: User) -> int:
    """An org admin clears the devices of a member of their org (a lost phone): the member enrols again
    at next sign-in. Operators may reset another operator's. Returns how many devices went."""
    org = _reset_org(actor, user)
    if org is None and not (authz.is_operator(actor) and authz.is_operator(user)):
        if not authz.is_active_user(actor) or not _visible(actor, user):
            raise NotFound("No such user.")
        raise Forbidden("Only an admin of one of this user's organizations may reset their MFA.")
    if user.source != User.Source.LOCAL:
        raise ValidationFailed("This user signs in with the identity provider, which handles their MFA.")
    removed = TOTPDevice.objects.filter(user=user).delete()[1].get(TOTPDevice._meta.label, 0)
    removed += WebAuthnCredential.objects.filter(user=user).delete()[1].get(WebAuthnCredential._meta.label, 0)
    StaticDevice.objects.filter(user=user).delete()
    audit_log(
        actor=actor,
        action="mfa.reset",
        target=user,
        org=org,
        details={"user": user.email, "devices": removed},
    )
    return removed


def _visible(actor: User, user: User) -> bool:
    return user_list_for(actor).filter(pk=user.pk).exists()


def _digits(token: str) -> str:
    return "".join((token or "").split())


def mfa_verify(*, request, token: str) -> str | None:
    """The sign-in step: check ``token`` (an app's code or a recovery code) against the signed-in user's
    devices, one at a time; on a match the session is verified (django-otp's ``login``). Returns the
    kind of device that matched (``totp``/``recovery``) or None."""
    user = request.user
    token = _digits(token).lower()
    if not token or len(token) > 16:
        return None
    devices = [*totp_devices(user), *StaticDevice.objects.filter(user=user, confirmed=True)]
    for device in devices:
        matched = django_otp.verify_token(user, device.persistent_id, token)
        if matched is not None:
            django_otp.login(request, matched)
            if isinstance(matched, StaticDevice):
                audit_log(
                    actor=user,
                    action="mfa.recovery_code_used",
                    target=user,
                    details={"left": matched.token_set.count()},
                )
                return "recovery"
            return "totp"
    return None


def passkey_registered(sender, instance, created, **kwargs) -> None:
    """``post_save`` of a passkey: django-otp-webauthn's view registers it; the audit trail says so."""
    if created and not kwargs.get("raw"):
        with transaction.atomic():
            audit_log(
                actor=instance.user,
                action="mfa.enrol",
                target=instance.user,
                details={"device": instance.name, "kind": "passkey"},
            )
