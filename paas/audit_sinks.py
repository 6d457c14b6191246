"""Audit sinks (paas.AuditSink): who sets them, what is valid, and the reads of the studio and the API.

Operators set the platform's sinks (``org`` empty: chain 0); an org's admins set their org's (chain =
the org). Whoever sees an org's audit trail sees its sinks (their health and lag, never their secret).
The address goes through the outbound-address policy here, when saved, and again at every connection
(paas/audit_stream.py). A CA certificate, when given, must parse. Every change is audited in the chain
the sink streams.
"""

from __future__ import annotations

import ssl
from urllib.parse import urlsplit

from django.apps import apps
from django.db import IntegrityError, transaction
from django.db.models import QuerySet

from paas import authz, outbound
from paas.audit import apply_changes, audit_log
from paas.audit_stream import PURPOSE, chain_head, with_head
from paas.errors import Conflict, NotFound, ValidationFailed
from paas.models import AuditSink, SinkKind

LIMITS = {
    "batch_size": (1, 1000),
    "backoff_initial_seconds": (1, 3600),
    "backoff_max_seconds": (1, 86400),
    "unhealthy_after": (1, 1000),
}
SECRET_MIN_LENGTH = 16
SETTINGS = ("name", "url", "ca_pem", "sourcetype", "enabled", *LIMITS)


# --- reads -------------------------------------------------------------------------------------------


def audit_sink_list_for(user) -> QuerySet[AuditSink]:
    """The sinks ``user`` may see (operators: the platform's, and those of orgs their support access
    reaches; members holding ``view_audit``: their org's), each annotated with ``head``: the last seq of
    its chain (lag = head - cursor)."""
    queryset = authz.filter_for(user, "view_auditsink", AuditSink.objects.all())
    return with_head(queryset.select_related("org"))


def lag(sink: AuditSink) -> int:
    """Events of the chain not yet accepted by the receiver."""
    head = getattr(sink, "head", None)
    if head is None:
        head = chain_head(sink.chain)
    return max(0, head - sink.cursor)


def can_add_for(user, org) -> bool:
    """May ``user`` add a sink to ``org`` (None: the platform's)?"""
    if org is None:
        return authz.is_operator(user)
    return authz.has_perm(user, "administer_organization", org)


def orgs_for(user) -> QuerySet:
    """The orgs whose sinks ``user`` may set."""
    organizations = apps.get_model(authz.TENANT_MODEL).objects.all()
    return authz.filter_for(user, "administer_organization", organizations)


# --- validation ------------------------------------------------------------------------------------


def check_address(kind: str, url: str) -> str:
    """The address, checked by the outbound-address policy for the sink's kind."""
    schemes = ("tls",) if kind == SinkKind.SYSLOG else ("https",)
    checked = outbound.check_url(url, purpose=PURPOSE, field="url", schemes=schemes)
    parts = urlsplit(checked.url)
    if parts.username or parts.password:  # the address is shown to whoever sees the sink
        message = "Put no credentials in the address: the secret field holds them, write-only."
        raise ValidationFailed(message, fields={"url": message})
    if kind == SinkKind.SYSLOG and (parts.path not in ("", "/") or parts.query):
        message = "A syslog address is tls://host:port, nothing after the port."
        raise ValidationFailed(message, fields={"url": message})
    return checked.url


def check_ca_pem(ca_pem: str) -> str:
    """A PEM bundle of one or more CA certificates (an empty one: the system's trusted CAs)."""
    text = (ca_pem or "").strip()
    if not text:
        return ""
    from cryptography import x509

    try:
        certificates = x509.load_pem_x509_certificates(text.encode())
        ssl.create_default_context(cadata=text)
    except (ValueError, ssl.SSLError) as exc:
        message = f"Not a PEM certificate (-----BEGIN CERTIFICATE-----): {exc}."
        raise ValidationFailed(message, fields={"ca_pem": message}) from exc
    if not certificates:
        raise ValidationFailed("No certificate found.", fields={"ca_pem": "No certificate found."})
    return text + "\n"


def _validate(values: dict, *, secret: str | None, has_secret: bool) -> dict:
    errors: dict[str, str] = {}
    name = (values.get("name") or "").strip()
    if not name:
        errors["name"] = "Give the sink a name."
    elif len(name) > 100:
        errors["name"] = "At most 100 characters."
    values["name"] = name
    kind = values.get("kind")
    if kind not in SinkKind.values:
        errors["kind"] = f"Choose one of: {', '.join(SinkKind.values)}."
    for field, (low, high) in LIMITS.items():
        try:
            number = int(values[field])
        except (TypeError, ValueError):
            number = None
        if number is None or not low <= number <= high:
            errors[field] = f"A whole number from {low} to {high}."
        else:
            values[field] = number
    backoff_ok = not {"backoff_max_seconds", "backoff_initial_seconds"} & set(errors)
    if backoff_ok and values["backoff_max_seconds"] < values["backoff_initial_seconds"]:
        errors["backoff_max_seconds"] = "At least the first retry interval."
    values["sourcetype"] = (values.get("sourcetype") or "").strip()[:100] or "gpupaas:audit"
    if kind in (SinkKind.HTTPS, SinkKind.SPLUNK_HEC):
        what = "HMAC key" if kind == SinkKind.HTTPS else "HEC token"
        if secret:
            if len(secret) < SECRET_MIN_LENGTH and kind == SinkKind.HTTPS:
                errors["secret"] = f"The HMAC key must be at least {SECRET_MIN_LENGTH} characters."
        elif not has_secret:
            errors["secret"] = f"This kind of sink needs its {what}."
    try:
        values["ca_pem"] = check_ca_pem(values.get("ca_pem", ""))
    except ValidationFailed as exc:
        errors.update({k: v[0] for k, v in exc.fields.items()})
    if kind in SinkKind.values:
        try:
            values["url"] = check_address(kind, values.get("url", ""))
        except ValidationFailed as exc:
            errors.update({k: v[0] for k, v in exc.fields.items()})
    if errors:
        raise ValidationFailed("The audit sink is not valid.", fields=errors)
    return values


# --- writes ----------------------------------------------------------------------------------------


def _name_taken() -> Conflict:
    return Conflict("A sink with this name exists already.", fields={"name": "Already used."})


def _require_manage(actor, org) -> None:
    if org is None:
        authz.require_operator(actor, message="Only platform operators set the platform's audit sinks.")
        return
    if not authz.has_perm(actor, "view_organization", org):
        raise NotFound("No such organization.")
    authz.require(actor, "administer_organization", org, message="Only the org's admins set its audit sinks.")


def audit_sink_create(
    *,
    actor,
    org,
    name: str,
    kind: str,
    url: str,
    secret: str = "",
    ca_pem: str = "",
    sourcetype: str = "",
    enabled: bool = True,
    batch_size: int = 100,
    backoff_initial_seconds: int = 5,
    backoff_max_seconds: int = 300,
    unhealthy_after: int = 5,
    from_beginning: bool = True,
) -> AuditSink:
    """Add a sink to ``org``'s chain (None: the platform's). It streams the chain from its first event
    (``from_beginning``) or only what comes after now."""
    _require_manage(actor, org)
    values = _validate(
        {
            "name": name,
            "kind": kind,
            "url": url,
            "ca_pem": ca_pem,
            "sourcetype": sourcetype,
            "batch_size": batch_size,
            "backoff_initial_seconds": backoff_initial_seconds,
            "backoff_max_seconds": backoff_max_seconds,
            "unhealthy_after": unhealthy_after,
        },
        secret=secret,
        has_secret=False,
    )
    with transaction.atomic():
        sink = AuditSink(org=org, enabled=bool(enabled), secret=secret or "", **values)
        sink.cursor = 0 if from_beginning else chain_head(sink.chain)
        try:
            with transaction.atomic():
                sink.save()
        except IntegrityError as exc:
            raise _name_taken() from exc
        audit_log(
            actor=actor,
            action="audit_sink.create",
            target=sink,
            org=org,
            details={"kind": sink.kind, "url": sink.url, "cursor": sink.cursor, "secret_set": bool(secret)},
        )
    return sink


def audit_sink_update(*, actor, sink: AuditSink, secret: str | None = None, **changes) -> AuditSink:
    """Change a sink's settings (``secret`` None or empty: kept). The kind is fixed at creation."""
    _require_manage(actor, sink.org)
    unknown = set(changes) - set(SETTINGS)
    if unknown:
        raise ValidationFailed(f"Unknown settings: {', '.join(sorted(unknown))}.")
    values = {field: getattr(sink, field) for field in SETTINGS}
    values.update(changes)
    values["kind"] = sink.kind
    enabled = bool(values.pop("enabled"))
    values = _validate(values, secret=secret, has_secret=bool(sink.secret))
    values.pop("kind")
    values["enabled"] = enabled
    with transaction.atomic():
        row = AuditSink.objects.select_for_update().get(pk=sink.pk)
        changed = apply_changes(row, values)
        if "ca_pem" in changed:
            changed["ca_pem"] = "changed"  # (a certificate is public, but long)
        if secret:
            row.secret = secret
            changed["secret"] = "changed"  # noqa: S105 (a marker, not a secret)
        if changed:
            if "url" in changed or "enabled" in changed or "ca_pem" in changed or secret:
                row.next_attempt_at = None  # try the new settings at the next pass
            try:
                with transaction.atomic():
                    row.save()
            except IntegrityError as exc:
                raise Conflict(
                    "A sink with this name exists already.", fields={"name": "Already used."}
                ) from exc
            audit_log(
                actor=actor, action="audit_sink.update", target=row, org=row.org, details={"changes": changed}
            )
    return row


def audit_sink_delete(*, actor, sink: AuditSink) -> None:
    _require_manage(actor, sink.org)
    with transaction.atomic():
        audit_log(
            actor=actor,
            action="audit_sink.delete",
            target=sink,
            org=sink.org,
            details={"kind": sink.kind, "url": sink.url, "cursor": sink.cursor},
        )
        sink.delete()


def audit_sink_retry(*, actor, sink: AuditSink) -> AuditSink:
    """Try a failing sink at the next pass instead of waiting for its backoff."""
    _require_manage(actor, sink.org)
    with transaction.atomic():
        AuditSink.objects.filter(pk=sink.pk).update(next_attempt_at=None)
        audit_log(actor=actor, action="audit_sink.retry", target=sink, org=sink.org)
    sink.refresh_from_db()
    return sink
