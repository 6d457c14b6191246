"""Support access: the services an operator and an org's admins use (tenancy/support_models.py).

An operator asks for access to one org (:func:`support_request`) with a reason, a level and a
duration; the org's admins approve it (maybe at a lower level) or deny it; either side may end an
approved access early, and the operator may withdraw a pending request. An org may pre-approve
requests up to a level and a duration (:func:`support_settings_update`): those are approved at once.
Every step is written to the **tenant's** audit chain, and the org's admins are emailed about each
request. The access ends by the clock (``paas.authz`` honours a grant only inside its window); the
schedule :func:`support_expire_due` records that end as ``support.expire``.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from paas import authz
from paas.audit import apply_changes, audit_log
from paas.errors import Conflict, Forbidden, ValidationFailed
from paas.mail import send_email
from tenancy.models import Organization, SupportAccess, SupportLevel, SupportState, User
from tenancy.support_selectors import active_q, is_org_admin, org_admins

logger = logging.getLogger(__name__)

MIN_MINUTES = 15
MAX_MINUTES = 7 * 24 * 60
PREAPPROVAL_CHOICES = ("none", "read", "admin")
REASON_MAX = 2000
NOTE_MAX = 500
# What a pre-approval setting covers: "admin" covers both levels.
_COVERS = {"none": set(), "read": {SupportLevel.READ}, "admin": {SupportLevel.READ, SupportLevel.ADMIN}}


def _clean_minutes(field: str, value, errors: dict) -> int | None:
    try:
        minutes = int(value)
    except (TypeError, ValueError):
        errors[field] = "A whole number of minutes."
        return None
    if isinstance(value, float | bool) or not MIN_MINUTES <= minutes <= MAX_MINUTES:
        errors[field] = f"Between {MIN_MINUTES} minutes and 7 days ({MAX_MINUTES} minutes)."
        return None
    return minutes


def _details(access: SupportAccess, **more) -> dict:
    return {
        "support_person": access.user.email or access.user.get_username(),
        "level": access.level,
        "duration_minutes": access.duration_minutes,
        **more,
    }


def _approve(access: SupportAccess, *, by: User | None, level: str, note: str) -> None:
    now = timezone.now()
    access.state, access.level = SupportState.APPROVED, level
    access.decided_by, access.decided_at, access.decision_note = by, now, note
    access.starts_at, access.expires_at = now, now + timedelta(minutes=access.duration_minutes)
    access.save()
    authz.forget(access.user)


def _email_admins(access_id: int) -> None:
    access = SupportAccess.objects.select_related("org", "user").filter(pk=access_id).first()
    if access is None:
        return
    recipients = [user.email for user in org_admins(access.org) if user.email and user != access.user]
    if not recipients:
        return
    preapproved = access.state == SupportState.APPROVED
    send_email(
        to=recipients,
        subject=f"Support access to {access.org} "
        + ("granted by your pre-approval" if preapproved else "requested: your approval is needed"),
        template="tenancy/support_request_email.txt",
        context={
            "access": access,
            "preapproved": preapproved,
            "url": f"{settings.PAAS_BASE_URL.rstrip('/')}/studio/tenancy/supportaccess/{access.pk}/change/",
        },
        org=access.org,
    )


def _email_admins_safely(access_id: int) -> None:
    """After the commit: the request stands (the studio lists it) even if the mail server is down."""
    try:
        _email_admins(access_id)
    except Exception:  # any mail backend error: logged, the request is kept
        logger.exception("support access %s: the org admins could not be emailed", access_id)


@transaction.atomic
def support_request(
    *, actor: User, org: Organization, reason: str, level: str, duration_minutes
) -> SupportAccess:
    """An operator asks for support access to ``org``. Approved at once when the org pre-approves the
    level and the duration; otherwise it waits for an org admin. The org's admins are emailed."""
    authz.require_operator(actor, message="Only platform operators may request support access.")
    errors = {}
    reason = (reason or "").strip()
    if not reason:
        errors["reason"] = "Say why the access is needed (e.g. the customer's ticket)."
    elif len(reason) > REASON_MAX:
        errors["reason"] = f"At most {REASON_MAX} characters."
    if level not in SupportLevel.values:
        errors["level"] = "Read-only (read) or administrative (admin)."
    minutes = _clean_minutes("duration_minutes", duration_minutes, errors)
    if org is None or not org.is_active:
        errors["org"] = "An active organization."
    if errors:
        raise ValidationFailed("The support access could not be requested.", fields=errors)
    org = Organization.objects.select_for_update().get(pk=org.pk)  # one open request at a time
    open_one = SupportAccess.objects.filter(org=org, user=actor).filter(
        active_q() | Q(state=SupportState.PENDING)
    )
    if open_one.exists():
        raise Conflict(
            "You already have a pending or active support access to this organization; end or withdraw "
            "it first."
        )
    access = SupportAccess.objects.create(
        org=org, user=actor, reason=reason, level=level, duration_minutes=minutes
    )
    audit_log(
        actor=actor, action="support.request", target=access, org=org, details=_details(access, reason=reason)
    )
    if level in _COVERS.get(org.support_preapproval, set()) and minutes <= org.support_max_minutes:
        _approve(access, by=None, level=level, note="Pre-approved by the organization's settings.")
        audit_log(
            actor=None,
            action="support.approve",
            target=access,
            org=org,
            details=_details(access, preapproved=True, expires_at=access.expires_at.isoformat()),
        )
    transaction.on_commit(lambda: _email_admins_safely(access.pk))
    return access


def _require_org_admin(actor: User, access: SupportAccess) -> None:
    if not is_org_admin(actor, access.org):
        raise Forbidden("Only the organization's admins decide on its support access.")
    if actor.pk == access.user_id:
        raise Forbidden("You cannot decide on your own support request.")


def _locked(access: SupportAccess) -> SupportAccess:
    return SupportAccess.objects.select_for_update().select_related("org", "user").get(pk=access.pk)


@transaction.atomic
def support_approve(
    *, actor: User, access: SupportAccess, level: str | None = None, note: str = ""
) -> SupportAccess:
    """An org admin approves a pending request, at its level or a lower one; the access starts now
    and lasts the requested duration."""
    access = _locked(access)
    _require_org_admin(actor, access)
    if access.state != SupportState.PENDING:
        raise Conflict(f"This request is {access.get_state_display().lower()}, not waiting for approval.")
    level = level or access.level
    note = (note or "").strip()
    errors = {}
    if level not in SupportLevel.values:
        errors["level"] = "Read-only (read) or administrative (admin)."
    elif level == SupportLevel.ADMIN and access.level == SupportLevel.READ:
        errors["level"] = "An approval may lower the level asked for, not raise it."
    if len(note) > NOTE_MAX:
        errors["note"] = f"At most {NOTE_MAX} characters."
    if errors:
        raise ValidationFailed("The support access could not be approved.", fields=errors)
    requested = access.level
    _approve(access, by=actor, level=level, note=note)
    audit_log(
        actor=actor,
        action="support.approve",
        target=access,
        org=access.org,
        details=_details(
            access, requested_level=requested, note=note, expires_at=access.expires_at.isoformat()
        ),
    )
    return access


@transaction.atomic
def support_deny(*, actor: User, access: SupportAccess, note: str = "") -> SupportAccess:
    """An org admin denies a pending request."""
    access = _locked(access)
    _require_org_admin(actor, access)
    if access.state != SupportState.PENDING:
        raise Conflict(f"This request is {access.get_state_display().lower()}, not waiting for approval.")
    note = (note or "").strip()
    if len(note) > NOTE_MAX:
        raise ValidationFailed(
            "The request could not be denied.", fields={"note": f"At most {NOTE_MAX} characters."}
        )
    access.state, access.decided_by, access.decided_at, access.decision_note = (
        SupportState.DENIED,
        actor,
        timezone.now(),
        note,
    )
    access.save()
    audit_log(
        actor=actor, action="support.deny", target=access, org=access.org, details=_details(access, note=note)
    )
    return access


@transaction.atomic
def support_end(*, actor: User, access: SupportAccess) -> SupportAccess:
    """End an active access early: the support person or one of the org's admins."""
    access = _locked(access)
    if actor.pk != access.user_id:
        _require_org_admin(actor, access)
    now = timezone.now()
    if access.state != SupportState.APPROVED or access.expires_at <= now:
        raise Conflict("This support access is not active.")
    access.state, access.ended_at = SupportState.REVOKED, now
    access.save()
    authz.forget(access.user)
    audit_log(
        actor=actor,
        action="support.end",
        target=access,
        org=access.org,
        details=_details(access, by_support_person=actor.pk == access.user_id),
    )
    return access


@transaction.atomic
def support_withdraw(*, actor: User, access: SupportAccess) -> SupportAccess:
    """The operator withdraws their pending request."""
    access = _locked(access)
    if actor.pk != access.user_id:
        raise Forbidden("Only the operator who asked may withdraw a request.")
    if access.state != SupportState.PENDING:
        raise Conflict(f"This request is {access.get_state_display().lower()}, not pending.")
    access.state = SupportState.WITHDRAWN
    access.save()
    audit_log(actor=actor, action="support.withdraw", target=access, org=access.org, details=_details(access))
    return access


@transaction.atomic
def support_settings_update(
    *, actor: User, org: Organization, preapproval: str | None = None, max_minutes=None
) -> Organization:
    """An org admin sets what support access the org pre-approves (level and longest duration)."""
    org = Organization.objects.select_for_update().get(pk=org.pk)
    if not is_org_admin(actor, org):
        raise Forbidden("Only the organization's admins set its support access.")
    errors, data = {}, {}
    if preapproval is not None:
        if preapproval not in PREAPPROVAL_CHOICES:
            errors["support_preapproval"] = "none, read or admin."
        else:
            data["support_preapproval"] = preapproval
    if max_minutes is not None:
        minutes = _clean_minutes("support_max_minutes", max_minutes, errors)
        if minutes is not None:
            data["support_max_minutes"] = minutes
    if errors:
        raise ValidationFailed("The support settings could not be saved.", fields=errors)
    changes = apply_changes(org, data)
    if changes:
        org.save(update_fields=list(changes))
        audit_log(actor=actor, action="support.settings", target=org, org=org, details={"changes": changes})
    return org


def support_expire_due() -> int:
    """The schedule (every minute): write ``support.expire`` in the tenant's trail for each approved
    access whose window has passed, once. Returns how many it recorded."""
    from paas.context import Client, client_context

    recorded = 0
    with client_context(client=Client.TASK):
        while True:
            with transaction.atomic():
                batch = list(
                    SupportAccess.objects.select_for_update(skip_locked=True)
                    .select_related("org", "user")
                    .filter(
                        state=SupportState.APPROVED,
                        expires_at__lte=timezone.now(),
                        expiry_recorded_at__isnull=True,
                    )
                    .order_by("expires_at")[:100]
                )
                for access in batch:
                    access.expiry_recorded_at = timezone.now()
                    access.save(update_fields=["expiry_recorded_at"])
                    audit_log(
                        actor=None,
                        action="support.expire",
                        target=access,
                        org=access.org,
                        details=_details(access, expires_at=access.expires_at.isoformat()),
                    )
            recorded += len(batch)
            if len(batch) < 100:
                return recorded
