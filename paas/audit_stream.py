"""Audit streaming: deliver each sink's chain (paas.AuditSink) to a SIEM, in order, at least once.

Delivery runs in a worker, never in a request: the ``audit stream`` schedule (every minute) calls
:func:`run` which passes over the sinks every ``PAAS_AUDIT_STREAM_POLL_SECONDS`` for up to
``PAAS_AUDIT_STREAM_LOOP_SECONDS`` (so new events leave within seconds, and a worker that dies is
replaced by the next minute's run).

One pass (:func:`deliver_due`) takes each enabled sink whose retry time has come and whose chain has
events past its ``cursor``, and :func:`deliver_sink` sends them in batches of ``batch_size`` in ``seq``
order, starting after the cursor. Only sealed events have a ``seq`` (paas/audit.py): an event is
streamed once it is chained, and the sealers of a chain commit one after another, so a reader never
sees seq n+1 before seq n. The cursor moves to a batch's last ``seq`` only once the receiver
accepted the whole batch; so a failure anywhere means the batch (and everything after it) is sent
again later: at least once, in order, nothing skipped. One sink is delivered by one process at a time
(a PostgreSQL advisory lock per sink; a second runner skips it), which is what keeps the order.

A failed batch counts a failure, records the error (``last_error``) and sets the next attempt after a
backoff doubling from ``backoff_initial_seconds`` up to ``backoff_max_seconds``. After
``unhealthy_after`` failures in a row the sink shows ``unhealthy``; it is still retried at the longest
interval and catches up from its cursor when the receiver returns (nothing is dropped: the trail is
append-only and the cursor only moves on success).

What "accepted" means per kind:

* ``https`` / ``splunk_hec``: a 2xx answer to the POST of the batch (anything else, a redirect
  included, is a failure).
* ``syslog`` (RFC 5425: RFC 5424 messages over TLS, octet-counted): syslog has no acknowledgement,
  and a completed ``sendall`` only means the bytes reached our kernel's buffer; a receiver that dies
  then loses them silently. So each batch is sent on its own TLS connection closed with TLS
  ``close_notify`` and the cursor moves only when the receiver's own ``close_notify`` (or its orderly
  close) has come back: TLS records arrive in order, so the receiver has then read every byte of the
  batch. It may still lose what it read but had not written (its own queue); that is the receiver's
  durability, beyond what the protocol can tell us.

Every connection goes through the outbound-address policy (``paas.outbound``) at connect time, as the
address did when it was saved; TLS is always verified (the sink's pinned CA, else the system's), host
name included.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import urllib3
from django.conf import settings
from django.db import connection
from django.db.models import BigIntegerField, F, Max, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from paas import outbound
from paas.models import AuditEvent, AuditSink, SinkKind

log = logging.getLogger(__name__)

_LOCK_CLASS = 0x53494E4B  # "SINK": advisory-lock namespace, one lock per sink
PURPOSE = "audit sink"
SYSLOG_DEFAULT_PORT = 6514  # RFC 5425
SD_ID = "gpupaas@32473"  # structured-data id: 32473 is the example enterprise number of RFC 5612
APP_NAME = "gpupaas"
FACILITY_LOG_AUDIT, SEVERITY_INFO = 13, 6
TIMEOUT_SECONDS = 15


class DeliveryFailed(Exception):
    """A batch the receiver did not accept (the message is what the studio shows as the last error)."""


# --- the event as the SIEM sees it -----------------------------------------------------------------


def event_dict(event: AuditEvent) -> dict:
    """One event, with its chain position and hashes (a SIEM can verify the chain it receives)."""
    return {
        "id": event.pk,
        "chain": event.chain,
        "seq": event.seq,
        "time": event.created_at.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor_id": event.actor_id,
        "actor": event.actor_repr,
        "org_id": event.org_id,
        "project_id": event.project_id,
        "client": event.client,
        "action": event.action,
        "target": {"type": event.target_type, "id": event.target_id, "repr": event.target_repr},
        "details": event.details,
        "request_id": event.request_id,
        "cluster_id": event.cluster_id,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


def _compact(value) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False, default=str)


# --- syslog (RFC 5424 message, RFC 5425 / RFC 6587 octet-counting framing) --------------------------


def _header_field(value: str, limit: int) -> str:
    """A header field of RFC 5424: printable US-ASCII without spaces, at most ``limit``; "-" if empty."""
    text = "".join(ch for ch in value if 33 <= ord(ch) <= 126)[:limit]
    return text or "-"


def _sd_value(value) -> str:
    """A PARAM-VALUE: UTF-8 with ``"``, ``\\`` and ``]`` escaped (RFC 5424 6.3.3)."""
    text = "" if value is None else str(value)
    text = text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")
    return "".join(ch if ch >= " " else " " for ch in text)


def hostname() -> str:
    return getattr(settings, "PAAS_AUDIT_STREAM_HOSTNAME", "") or socket.gethostname()


def syslog_message(event: AuditEvent, *, host: str | None = None) -> bytes:
    """The RFC 5424 message of an event: facility "log audit", severity info; MSGID = the action;
    structured data ``[gpupaas@32473 chain= seq= actor= org= ...]``; MSG = the event as JSON (UTF-8
    with its BOM, as RFC 5424 asks)."""
    pri = FACILITY_LOG_AUDIT * 8 + SEVERITY_INFO
    timestamp = event.created_at.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    params = {
        "chain": event.chain,
        "seq": event.seq,
        "actor": event.actor_repr,
        "org": event.org_id if event.org_id is not None else "",
        "project": event.project_id if event.project_id is not None else "",
        "client": event.client,
        "target": f"{event.target_type}:{event.target_id}",
        "request": event.request_id,
        "hash": event.hash,
    }
    sd = "[" + SD_ID + "".join(f' {name}="{_sd_value(value)}"' for name, value in params.items()) + "]"
    header = (
        f"<{pri}>1 {timestamp} {_header_field(host or hostname(), 255)} {APP_NAME} - "
        f"{_header_field(event.action, 32)} {sd} "
    )
    return header.encode() + b"\xef\xbb\xbf" + _compact(event_dict(event)).encode()


def octet_counted(message: bytes) -> bytes:
    """RFC 5425 framing: ``MSG-LEN SP SYSLOG-MSG``."""
    return str(len(message)).encode() + b" " + message


# --- HTTPS webhook and Splunk HEC -------------------------------------------------------------------


def webhook_request(events: Sequence[AuditEvent], *, secret: str, now: float | None = None):
    """(body, headers) of a webhook POST: ``{"events": [...]}``; ``X-Timestamp`` (Unix seconds) and
    ``X-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>." + body under the sink's secret>``: the
    receiver recomputes it and refuses an old timestamp (a replayed request)."""
    body = _compact({"events": [event_dict(e) for e in events]}).encode()
    timestamp = str(int(now if now is not None else time.time()))
    signature = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "X-Timestamp": timestamp,
        "X-Signature": f"sha256={signature}",
    }
    return body, headers


def splunk_request(events: Sequence[AuditEvent], *, token: str, sourcetype: str, host: str | None = None):
    """(body, headers) of a Splunk HEC POST: one ``{"time", "host", "source", "sourcetype", "event"}``
    object per event, concatenated (HEC's batch form), ``Authorization: Splunk <token>``."""
    host = host or hostname()
    body = "\n".join(
        _compact(
            {
                "time": round(e.created_at.timestamp(), 6),
                "host": host,
                "source": APP_NAME,
                "sourcetype": sourcetype or "gpupaas:audit",
                "event": event_dict(e),
            }
        )
        for e in events
    ).encode()
    return body, {"Content-Type": "application/json", "Authorization": f"Splunk {token}"}


# --- transport --------------------------------------------------------------------------------------


def tls_context(ca_pem: str) -> ssl.SSLContext:
    """Verification always on (certificate and host name); the sink's CA when pinned."""
    context = ssl.create_default_context(cadata=ca_pem) if ca_pem.strip() else ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def syslog_address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or SYSLOG_DEFAULT_PORT


def send_syslog(sink: AuditSink, events: Sequence[AuditEvent]) -> None:
    """One TLS connection per batch; accepted once the receiver's close_notify (or orderly close) comes
    back after ours (see the module's docstring)."""
    host, port = syslog_address(sink.url)
    payload = b"".join(octet_counted(syslog_message(e)) for e in events)
    try:
        raw = outbound.connect_checked(host, port, purpose=PURPOSE, timeout=TIMEOUT_SECONDS)
    except outbound.OutboundConnectionRefused as exc:
        raise DeliveryFailed(exc.reason) from exc
    except OSError as exc:
        raise DeliveryFailed(f"cannot connect to {host}:{port}: {exc.strerror or exc}") from exc
    try:
        tls = tls_context(sink.ca_pem).wrap_socket(raw, server_hostname=host)
    except ssl.SSLCertVerificationError as exc:
        raw.close()
        raise DeliveryFailed(f"TLS: the receiver's certificate is not trusted: {exc.verify_message}") from exc
    except (ssl.SSLError, OSError) as exc:
        raw.close()
        raise DeliveryFailed(f"TLS handshake with {host}:{port} failed: {exc}") from exc
    try:
        tls.sendall(payload)
        # Our close_notify out; returns once the receiver's comes back (an orderly close instead: the
        # receiver closed after reading everything up to our close_notify).
        with contextlib.suppress(ssl.SSLZeroReturnError, ssl.SSLEOFError):
            tls.unwrap()
    except (ssl.SSLError, OSError) as exc:
        raise DeliveryFailed(f"sending to {host}:{port} failed: {exc}") from exc
    finally:
        tls.close()


def _pool(sink: AuditSink) -> urllib3.PoolManager:
    return outbound.checked_pool_manager(
        purpose=PURPOSE,
        ssl_context=tls_context(sink.ca_pem),
        retries=False,
        timeout=urllib3.Timeout(connect=TIMEOUT_SECONDS, read=TIMEOUT_SECONDS),
    )


def send_http(sink: AuditSink, events: Sequence[AuditEvent]) -> None:
    """POST the batch (webhook or Splunk HEC); accepted on a 2xx answer."""
    from paas.keyring import SecretUnreadable

    try:
        secret = sink.secret.reveal()
    except SecretUnreadable as exc:  # the org's keys were destroyed (crypto-shredded)
        raise DeliveryFailed(f"the sink's secret cannot be read: {exc}") from exc
    if sink.kind == SinkKind.SPLUNK_HEC:
        body, headers = splunk_request(events, token=secret, sourcetype=sink.sourcetype)
    else:
        body, headers = webhook_request(events, secret=secret)
    pool = _pool(sink)
    try:
        response = pool.request("POST", sink.url, body=body, headers=headers, redirect=False)
    except outbound.OutboundConnectionRefused as exc:
        raise DeliveryFailed(exc.reason) from exc
    except urllib3.exceptions.SSLError as exc:
        raise DeliveryFailed(f"TLS: {exc}") from exc
    except urllib3.exceptions.HTTPError as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DeliveryFailed(f"cannot reach {sink.url}: {reason}") from exc
    finally:
        pool.clear()
    if not 200 <= response.status < 300:
        text = response.data[:200].decode("utf-8", "replace").strip()
        raise DeliveryFailed(f"the receiver answered HTTP {response.status}" + (f": {text}" if text else ""))


def send(sink: AuditSink, events: Sequence[AuditEvent]) -> None:
    if sink.kind == SinkKind.SYSLOG:
        send_syslog(sink, events)
    else:
        send_http(sink, events)


# --- delivery ---------------------------------------------------------------------------------------


@dataclass
class Outcome:
    delivered: int = 0  # events the receiver accepted in this run
    failed: bool = False
    skipped: bool = False  # another runner holds the sink, or it is not due


def backoff(sink: AuditSink, failures: int) -> timedelta:
    """The wait before the next attempt after ``failures`` failures in a row (doubling, capped)."""
    initial = max(1, sink.backoff_initial_seconds)
    longest = max(initial, sink.backoff_max_seconds)
    return timedelta(seconds=min(longest, initial * 2 ** min(failures - 1, 30)))


def _try_lock(sink_id: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [_LOCK_CLASS, sink_id])
        return bool(cursor.fetchone()[0])


def _unlock(sink_id: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [_LOCK_CLASS, sink_id])


def chain_head(chain: int) -> int:
    return AuditEvent.objects.filter(chain=chain).aggregate(head=Max("seq"))["head"] or 0


def deliver_sink(sink_id: int, *, max_batches: int = 50) -> Outcome:
    """Deliver one sink from its cursor, batch after batch, until caught up, a failure, or
    ``max_batches`` (so one busy sink does not hold a runner for ever)."""
    outcome = Outcome()
    if not _try_lock(sink_id):
        outcome.skipped = True
        return outcome
    try:
        for _ in range(max_batches):
            sink = AuditSink.objects.filter(pk=sink_id, enabled=True).first()
            if sink is None:
                break
            events = list(
                AuditEvent.objects.filter(chain=sink.chain, seq__gt=sink.cursor).order_by("seq")[
                    : max(1, sink.batch_size)
                ]
            )
            if not events:
                break
            try:
                send(sink, events)
            except DeliveryFailed as exc:
                _record_failure(sink, str(exc))
                outcome.failed = True
                break
            except Exception as exc:  # a bug or an odd network error: still a failed batch, retried
                log.exception("audit sink %s: delivery failed", sink_id)
                _record_failure(sink, f"unexpected error: {type(exc).__name__}: {exc}")
                outcome.failed = True
                break
            _record_success(sink, events[-1].seq)
            outcome.delivered += len(events)
    finally:
        _unlock(sink_id)
    return outcome


def _record_success(sink: AuditSink, seq: int) -> None:
    # Only forward: a cursor reset by an admin meanwhile is not undone, a later one is not moved back.
    AuditSink.objects.filter(pk=sink.pk, cursor__lt=seq).update(cursor=seq)
    AuditSink.objects.filter(pk=sink.pk).update(
        consecutive_failures=0, next_attempt_at=None, last_delivery_at=timezone.now()
    )


def _record_failure(sink: AuditSink, message: str) -> None:
    failures = sink.consecutive_failures + 1
    now = timezone.now()
    log.warning(
        "audit sink %s (%s): delivery failed (%s in a row): %s", sink.pk, sink.name, failures, message
    )
    AuditSink.objects.filter(pk=sink.pk).update(
        consecutive_failures=F("consecutive_failures") + 1,
        next_attempt_at=now + backoff(sink, failures),
        last_error=message[:2000],
        last_error_at=now,
    )


def with_head(queryset):
    """``queryset`` of sinks annotated with ``head``: the last seq of each sink's chain (one index
    lookup per sink on (chain, seq), however long the trail)."""
    chain = Coalesce(OuterRef("org_id"), Value(0), output_field=BigIntegerField())
    head = AuditEvent.objects.filter(chain=chain, seq__isnull=False).order_by("-seq").values("seq")[:1]
    return queryset.annotate(
        head=Coalesce(
            Subquery(head, output_field=BigIntegerField()), Value(0), output_field=BigIntegerField()
        )
    )


def due_sinks(now: datetime | None = None) -> list[int]:
    """The enabled sinks whose retry time has come and whose chain has events past their cursor."""
    now = now or timezone.now()
    sinks = with_head(AuditSink.objects.filter(enabled=True)).filter(head__gt=F("cursor"))
    sinks = sinks.filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
    return list(sinks.order_by("pk").values_list("pk", flat=True))


def deliver_due() -> dict[int, Outcome]:
    """One pass over the sinks that are due."""
    return {sink_id: deliver_sink(sink_id) for sink_id in due_sinks()}


def run(*, seconds: float | None = None, poll: float | None = None) -> None:
    """The worker's loop: a pass now, then every ``poll`` seconds for ``seconds`` (settings
    ``PAAS_AUDIT_STREAM_LOOP_SECONDS``, ``PAAS_AUDIT_STREAM_POLL_SECONDS``)."""
    seconds = getattr(settings, "PAAS_AUDIT_STREAM_LOOP_SECONDS", 50) if seconds is None else seconds
    poll = getattr(settings, "PAAS_AUDIT_STREAM_POLL_SECONDS", 2) if poll is None else poll
    ends = time.monotonic() + seconds
    while True:
        deliver_due()
        if time.monotonic() + poll > ends:
            return
        time.sleep(poll)
