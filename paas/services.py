"""Writes of the platform core: personal API tokens and the worker heartbeat."""

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from paas import authz, mfa_policy
from paas.audit import audit_log
from paas.errors import Conflict, Forbidden, ValidationFailed
from paas.models import ApiToken, TokenScope, WorkerHeartbeat

TOKEN_PREFIX = "gpaas_"  # noqa: S105 - a public marker, not a secret


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@transaction.atomic
def api_token_create(
    *,
    actor,
    name: str,
    expires_in_days: int = 90,
    scope: str = TokenScope.READ_WRITE,
    via_token: bool = False,
    mfa_verified: bool = False,
) -> tuple[ApiToken, str]:
    """Create a personal token for ``actor``; the clear token is returned here and never again.

    ``via_token``: the request was authenticated by a token (ours or the identity provider's). Tokens
    never mint tokens: a leaked read-only or short-lived token must not become a lasting read-write one.
    ``mfa_verified``: the session passed the one-time-code step; required where MFA applies to the actor
    (``paas.mfa_policy``), so a stolen password alone never yields a token.
    """
    if via_token:
        raise Forbidden(
            "API tokens are created from a signed-in session (the developer hub or the studio), "
            "not with another token."
        )
    if mfa_policy.mfa_applies(actor) and not mfa_verified:
        raise Forbidden(
            "API tokens are created only from a session verified with your second factor (MFA).",
            code="mfa_required",
        )
    errors = {}
    if scope not in TokenScope.values:
        errors["scope"] = f"Choose one of: {', '.join(TokenScope.values)}."
    name = (name or "").strip()
    if not name:
        errors["name"] = "This field is required."
    elif len(name) > 100:
        errors["name"] = "At most 100 characters."
    try:
        days = int(expires_in_days)
    except (TypeError, ValueError):
        days = 0
    if not 1 <= days <= settings.API_TOKEN_MAX_DAYS:
        errors["expires_in_days"] = f"Choose between 1 and {settings.API_TOKEN_MAX_DAYS} days."
    if not errors and ApiToken.objects.filter(user=actor, name=name).exists():
        errors["name"] = "You already have a token with this name."
    if errors:
        raise ValidationFailed("The token could not be created.", fields=errors)
    prefix = secrets.token_hex(6)
    token = f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    try:
        with transaction.atomic():
            api_token = ApiToken.objects.create(
                user=actor,
                name=name,
                prefix=prefix,
                digest=_digest(token),
                scope=scope,
                expires_at=timezone.now() + timedelta(days=days),
            )
    except IntegrityError as exc:
        raise Conflict("The token could not be created; try again.") from exc
    audit_log(
        actor=actor,
        action="api_token.create",
        target=api_token,
        details={"name": name, "scope": scope, "expires_at": api_token.expires_at.isoformat()},
    )
    return api_token, token


@transaction.atomic
def api_token_revoke(*, actor, api_token: ApiToken) -> ApiToken:
    if api_token.user_id != actor.pk and not authz.is_operator(actor):
        raise Forbidden("You may revoke only your own tokens.")
    if api_token.revoked_at is None:
        api_token.revoked_at = timezone.now()
        api_token.save(update_fields=["revoked_at"])
        audit_log(actor=actor, action="api_token.revoke", target=api_token, details={"name": api_token.name})
    return api_token


def api_token_authenticate(token: str) -> ApiToken | None:
    """The active token presented (with its active user), or ``None``. Records its last use (not audited)."""
    try:
        _, prefix, _secret = token.split("_", 2)
    except ValueError:
        return None
    api_token = ApiToken.objects.select_related("user").filter(prefix=prefix).first()
    if api_token is None or not hmac.compare_digest(api_token.digest, _digest(token)):
        return None
    if not api_token.is_active or not api_token.user.is_active:
        return None
    now = timezone.now()
    if api_token.last_used_at is None or now - api_token.last_used_at > timedelta(minutes=1):
        ApiToken.objects.filter(pk=api_token.pk).update(last_used_at=now)
    return api_token


def worker_heartbeat_record(*, cluster: str) -> WorkerHeartbeat:
    """Telemetry, not a state change of the platform: no audit event."""
    heartbeat, _ = WorkerHeartbeat.objects.update_or_create(
        cluster=cluster, defaults={"seen_at": timezone.now()}
    )
    return heartbeat


@transaction.atomic
def secrets_rotate(*, actor=None) -> dict[str, int]:
    """After a new platform key was put first in ``PAAS_ENCRYPTION_KEYS``: re-encrypt every stored
    platform-key secret (each ``EncryptedTextField`` column and sealed JSON value) with it and re-wrap
    every organization's data key under it (``paas.keyring``); values under an org's data key stay as
    they are. Works on the stored tokens directly, so clear values never pass through Python objects
    that could be logged. Returns the number of values re-encrypted per ``app.model.field``."""
    from paas import keyring

    counts = keyring.rotate_platform()
    audit_log(actor=actor, action="secrets.rotate", target_type="platform", details={"rotated": counts})
    return counts


@transaction.atomic
def task_resubmit(*, actor, task) -> None:
    """An operator puts a finished worker task (django-q2) back on its queue; a failure's record goes."""
    from django_q.tasks import async_task

    authz.require_operator(actor)
    audit_log(
        actor=actor,
        action="task.resubmit",
        target_type="django_q.task",
        target_id=task.pk,
        target_repr=task.name,
        details={"func": task.func, "group": task.group or "", "success": bool(task.success)},
    )
    func, args, kwargs = task.func, task.args or (), task.kwargs or {}
    options = {"hook": task.hook, "group": task.group, "cluster": task.cluster}
    transaction.on_commit(lambda: async_task(func, *args, **options, **kwargs))
    if not task.success:
        type(task).objects.filter(pk=task.pk).delete()
