"""Verified email for local accounts: a signed, expiring link proves the address is the user's.

A local user with ``email_verified`` false is held at the email page by the account gate
(``tenancy.account_gate``) until they open the link sent there. Accepting an invitation proves the
address already (the invitation link went to it), and the demo's and the suite's users start verified.
Changing the address keeps the old one (still verified, still the one invitations and grants match)
until the new one's link is opened: the new address waits in ``User.pending_email``.

Links are ``django.core.signing`` tokens over the user's id and the address they were sent to, valid
``PAAS_EMAIL_VERIFICATION_HOURS``; a link for an address no longer pending verifies nothing. Sending is
limited to one email a minute per user. Every step is audited.
"""

from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.db import transaction

from paas import authz
from paas.audit import audit_log
from paas.errors import Conflict, RateLimited, ValidationFailed
from paas.mail import send_email
from tenancy.models import RoleAssignment, User
from tenancy.services.common import _normalise_email

SALT = "tenancy.email-verification"
RESEND_SECONDS = 60


def _max_age() -> int:
    return settings.PAAS_EMAIL_VERIFICATION_HOURS * 3600


def address_to_verify(user: User) -> str:
    """The address waiting for its link: a pending new one, else an unverified current one, else ''."""
    if user.pending_email:
        return user.pending_email
    return "" if user.email_verified else user.email


def verification_token(user: User, address: str) -> str:
    return signing.dumps({"u": user.pk, "e": address.lower()}, salt=SALT, compress=True)


def verification_url(token: str) -> str:
    return f"{settings.PAAS_BASE_URL.rstrip('/')}/account/email/verify/{token}/"


def _org_of(user: User):
    assignment = RoleAssignment.objects.filter(user=user, org__isnull=False).select_related("org").first()
    return assignment.org if assignment else None


@transaction.atomic
def email_verification_send(*, user: User) -> str:
    """Email ``user`` a link for the address waiting to be verified; returns that address."""
    if user.source != User.Source.LOCAL:
        raise ValidationFailed("Your identity provider manages your email address.")
    address = address_to_verify(user)
    if not address:
        raise Conflict("Your email address is verified already.")
    if not cache.add(f"email-verification:{user.pk}", 1, RESEND_SECONDS):
        raise RateLimited("A verification email was sent less than a minute ago; check your inbox.")
    token = verification_token(user, address)
    send_email(
        to=[address],
        subject="Verify your email address",
        template="tenancy/account/email_verification.txt",
        context={
            "user": user,
            "address": address,
            "url": verification_url(token),
            "hours": settings.PAAS_EMAIL_VERIFICATION_HOURS,
            "change": bool(user.pending_email),
        },
        org=_org_of(user),
    )
    audit_log(
        actor=user,
        action="email.verification_sent",
        target=user,
        details={"address": address, "change": bool(user.pending_email)},
    )
    return address


@transaction.atomic
def email_change_request(*, actor: User, email: str) -> str:
    """Ask to change ``actor``'s address to ``email``: the current one stays until the link sent to the
    new one is opened. Returns the new address."""
    if actor.source != User.Source.LOCAL:
        raise ValidationFailed("Your identity provider manages your email address.")
    email = _normalise_email("email", email)
    if email.lower() == actor.email.lower():
        if actor.pending_email:
            actor.pending_email = ""
            actor.save(update_fields=["pending_email"])
            audit_log(actor=actor, action="email.change_cancel", target=actor, details={})
            return email
        raise ValidationFailed("This is your address already.", fields={"email": "This is your address."})
    if User.objects.filter(email__iexact=email).exclude(pk=actor.pk).exists():
        raise ValidationFailed(
            "This address cannot be used.", fields={"email": "This address belongs to another account."}
        )
    actor.pending_email = email
    actor.save(update_fields=["pending_email"])
    audit_log(actor=actor, action="email.change_request", target=actor, details={"new": email})
    cache.delete(f"email-verification:{actor.pk}")  # a new address gets its link at once
    email_verification_send(user=actor)
    return email


@transaction.atomic
def email_verify(*, token: str) -> User:
    """Apply a verification link: the pending address becomes the user's, or the current one is marked
    verified. A link already used for a verified address changes nothing."""
    try:
        data = signing.loads(token, salt=SALT, max_age=_max_age())
    except signing.SignatureExpired as exc:
        raise ValidationFailed("This link has expired; ask for a new one.", code="link_expired") from exc
    except signing.BadSignature as exc:
        raise ValidationFailed("This link is not valid.", code="link_invalid") from exc
    if not isinstance(data, dict):
        raise ValidationFailed("This link is not valid.", code="link_invalid")
    user = User.objects.select_for_update().filter(pk=data.get("u"), is_active=True).first()
    address = str(data.get("e", ""))
    if user is None or not address:
        raise ValidationFailed("This link is not valid.", code="link_invalid")
    if user.pending_email and user.pending_email.lower() == address:
        if User.objects.filter(email__iexact=address).exclude(pk=user.pk).exists():
            raise ValidationFailed("This address now belongs to another account.", code="email_taken")
        old, user.email, user.pending_email = user.email, user.pending_email, ""
        user.email_verified = True
        user.save(update_fields=["email", "pending_email", "email_verified"])
        audit_log(actor=user, action="email.change", target=user, details={"old": old, "new": user.email})
    elif user.email.lower() == address:
        if not user.email_verified:
            user.email_verified = True
            user.save(update_fields=["email_verified"])
            audit_log(actor=user, action="email.verify", target=user, details={"address": user.email})
    else:
        raise ValidationFailed(
            "This link is for an address that is no longer waiting to be verified.", code="link_stale"
        )
    return user


@transaction.atomic
def email_verification_require(*, actor: User, user: User) -> None:
    """Mark ``user``'s address unverified and send them a link (an operator made the account: the address
    is only claimed). Operators only."""
    authz.require_operator(actor, message="Only operators may ask a user to verify their address.")
    if user.source != User.Source.LOCAL:
        raise ValidationFailed("Single sign-on users' addresses are verified by their provider.")
    user.email_verified = False
    user.save(update_fields=["email_verified"])
    audit_log(actor=actor, action="email.verification_required", target=user, details={"address": user.email})
    cache.delete(f"email-verification:{user.pk}")
    email_verification_send(user=user)
