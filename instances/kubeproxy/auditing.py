"""Every request the kubectl proxy forwards, in the tenant's audit trail, without the chain lock.

The proxy writes a :class:`~instances.models.ProxyRequestLog` row with a plain insert: a write (any
verb but get, list and watch) before it is forwarded, its response code after; a read after its
response (or not at all when the operators sample reads and this one is not in the sample:
``paas.models.AuditSettings``). :func:`flush` moves the pending rows into each org's audit trail in
batches (one transaction per org and batch, never per request; the events are chained on commit like
every event, paas/audit.py), so kubectl calls never queue behind launches, and deletes them.

When: each server process runs a background flush on its event loop, started by the first request
that leaves a row and woken by every later one (a batch every ``PAAS_KUBECTL_AUDIT_FLUSH_SECONDS``
while rows come in), flushed a last time at shutdown (``PAAS_ASGI_SHUTDOWN``); the django-q schedule
``kubectl audit flush`` (:func:`flush_task`, every minute) is the safety net for rows a dead process
left. A write whose process died before its response was recorded is chained after
``PAAS_KUBECTL_AUDIT_GRACE_SECONDS`` with no status, and its event says so.
"""

import asyncio
import contextlib
import functools
import logging
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from instances.kubeproxy.credentials import Grant
from instances.kubeproxy.db import in_thread
from instances.kubeproxy.requestinfo import RequestInfo, is_read
from instances.models import ProxyRequestLog
from paas import audit_settings
from paas.audit import Entry, audit_append_batch
from paas.context import Client, client_context
from paas.models import KubectlReads

logger = logging.getLogger(__name__)

ACTION = "kubectl.request"
SUMMARY_ACTION = "kubectl.reads"
TARGET_TYPE = "instances.computeinstance"
BATCH = 500  # rows per org and transaction
POLICY_SECONDS = 5.0  # how long a process keeps the operators' read setting before reading it again
UNKNOWN_STATUS = (
    "The proxy recorded this write before forwarding it; its response code was never recorded "
    "(the server process ended first)."
)


def flush_seconds() -> float:
    return float(getattr(settings, "PAAS_KUBECTL_AUDIT_FLUSH_SECONDS", 1.0))


def grace_seconds() -> float:
    return float(getattr(settings, "PAAS_KUBECTL_AUDIT_GRACE_SECONDS", 600))


# --- the proxy's side: one plain insert per recorded request ------------------------------------------


@dataclass
class Record:
    grant: Grant
    info: RequestInfo
    command: str
    request_id: str
    started_at: object = field(default_factory=timezone.now)
    row_id: int | None = None


def _row(record: Record, status: int | None) -> ProxyRequestLog:
    grant, info = record.grant, record.info
    return ProxyRequestLog(
        created_at=record.started_at,
        org_id=grant.org_id,
        project_id=grant.project_id,
        instance_id=grant.instance_id,
        instance_name=grant.instance_name,
        cluster_id=grant.cluster_id,
        cluster_name=grant.cluster_name,
        user_id=grant.user_id,
        user_repr=grant.user_repr,
        client=grant.via,
        method=info.method,
        verb=info.verb,
        api_group=info.api_group[:255],
        resource=info.resource[:255],
        subresource=info.subresource[:64],
        namespace=info.namespace[:255],
        name=info.name[:255],
        path=info.path[:2048],
        command=record.command[:1024],
        status=status,
        request_id=record.request_id[:64],
    )


@functools.cache
def _insert_sql() -> tuple[str, tuple[str, ...]]:
    """The row's INSERT, built once from the model (the proxy writes one per request: the ORM would
    compile it afresh each time). Column names from metadata; every value a parameter."""
    meta = ProxyRequestLog._meta
    fields = tuple(f for f in meta.concrete_fields if not f.primary_key)
    columns = ", ".join(f.column for f in fields)
    marks = ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO {meta.db_table} ({columns}) VALUES ({marks}) RETURNING {meta.pk.column}"
    return sql, tuple(f.attname for f in fields)


def _insert(record: Record, status: int | None) -> int:
    row = _row(record, status)
    sql, names = _insert_sql()
    with connection.cursor() as cursor:
        cursor.execute(sql, [getattr(row, name) for name in names])
        return cursor.fetchone()[0]


def _set_status(row_id: int, status: int) -> None:
    ProxyRequestLog.objects.filter(pk=row_id).update(status=status)


class _ReadPolicy:
    """The operators' read setting as this process last read it (at most ``POLICY_SECONDS`` old;
    forgotten at once when changed in this process), and the sampling counters."""

    def __init__(self) -> None:
        self.mode, self.every, self.until = KubectlReads.ALL, 1, 0.0
        self.counters: OrderedDict[tuple[int, int], int] = OrderedDict()

    def forget(self) -> None:
        self.until = 0.0

    async def current(self) -> tuple[str, int]:
        if time.monotonic() >= self.until:
            settings_row = await in_thread(audit_settings.audit_settings_get)()
            self.mode, self.every = settings_row.kubectl_reads, settings_row.kubectl_sample_every
            self.until = time.monotonic() + POLICY_SECONDS
        return self.mode, self.every

    def sampled(self, key: tuple[int, int], every: int) -> bool:
        """1 read in ``every`` per user and instance (the first one, then every ``every``-th), so a busy
        user cannot push a quiet one's reads out of the sample."""
        count = self.counters.pop(key, 0)
        self.counters[key] = count + 1
        while len(self.counters) > 10_000:
            self.counters.popitem(last=False)
        return count % every == 0


_policy = _ReadPolicy()
audit_settings.on_change(_policy.forget)


async def start(grant: Grant, info: RequestInfo, *, command: str, request_id: str) -> Record:
    """Called before the request is forwarded: a write is recorded now (so a crash after forwarding it
    cannot lose it)."""
    record = Record(grant=grant, info=info, command=command, request_id=request_id)
    if not info.is_read:
        record.row_id = await asyncio.shield(in_thread(_insert)(record, None))
    return record


async def done(record: Record, status: int) -> None:
    """Called once the response code is known (or the stream was refused or failed: 502). Writes are
    always recorded; a read unless it is sampled out."""
    if record.row_id is not None:
        await asyncio.shield(in_thread(_set_status)(record.row_id, status))
    else:
        mode, every = await _policy.current()
        if mode == KubectlReads.SAMPLE and not _policy.sampled(
            (record.grant.user_id, record.grant.instance_id), every
        ):
            return
        await asyncio.shield(in_thread(_insert)(record, status))
    _wake()


# --- flush: pending rows into the orgs' chains --------------------------------------------------------


def _details(row: ProxyRequestLog) -> dict:
    details = {
        "verb": row.verb,
        "api_group": row.api_group,
        "resource": row.resource,
        "subresource": row.subresource,
        "namespace": row.namespace,
        "name": row.name,
        "path": row.path,
        "command": row.command,
        "status": row.status,
        "client": row.client,
        "instance": row.instance_name,
        "cluster": row.cluster_name,
    }
    if row.status is None:
        details["status_unknown"] = UNKNOWN_STATUS
    return details


def _entry(row: ProxyRequestLog, action: str, details: dict, created_at) -> Entry:
    return Entry(
        action=action,
        actor_id=row.user_id,
        actor_repr=row.user_repr,
        target_type=TARGET_TYPE,
        target_id=row.instance_id,
        target_repr=row.instance_name,
        details=details,
        project_id=row.project_id,
        created_at=created_at,
        client=Client.KUBECTL,
        request_id=row.request_id,
        cluster_id=row.cluster_id,
    )


def _summary(rows: list[ProxyRequestLog]) -> Entry:
    first, last = rows[0], rows[-1]
    statuses: dict[str, int] = {}
    for row in rows:
        statuses[str(row.status)] = statuses.get(str(row.status), 0) + 1
    details = {
        "verb": first.verb,
        "api_group": first.api_group,
        "resource": first.resource,
        "namespace": first.namespace,
        "count": len(rows),
        "first": first.created_at.isoformat(),
        "last": last.created_at.isoformat(),
        "statuses": statuses,
        "client": last.client,
        "instance": last.instance_name,
        "cluster": last.cluster_name,
    }
    return _entry(last, SUMMARY_ACTION, details, last.created_at)


def _entries(rows: list[ProxyRequestLog], mode: str, every: int) -> list[Entry]:
    """One event per request; with the summary setting one per user, instance, verb, resource and
    namespace for the batch's reads. Writes are never summarised."""
    entries: list[Entry] = []
    groups: dict[tuple, list[ProxyRequestLog]] = {}
    for row in rows:
        if mode == KubectlReads.SUMMARY and is_read(row.verb, row.subresource):
            key = (row.user_id, row.instance_id, row.verb, row.api_group, row.resource, row.namespace)
            groups.setdefault(key, []).append(row)
            continue
        details = _details(row)
        if mode == KubectlReads.SAMPLE and is_read(row.verb, row.subresource):
            details["sampled"] = f"1 in {every}"
        entries.append(_entry(row, ACTION, details, row.created_at))
    entries.extend(_summary(group) for group in groups.values())
    entries.sort(key=lambda entry: entry.created_at)
    return entries


def _ready(now) -> Q:
    """Rows whose request has its response code, and writes whose process died (older than the grace)."""
    return Q(status__isnull=False) | Q(created_at__lt=now - timedelta(seconds=grace_seconds()))


def _flush_org(org_id: int, ready: Q, mode: str, every: int, batch: int) -> int:
    with transaction.atomic():
        rows = list(
            ProxyRequestLog.objects.filter(ready, org_id=org_id)
            .order_by("pk")
            .select_for_update(skip_locked=True)[:batch]
        )
        if not rows:
            return 0
        audit_append_batch(org_id=org_id, entries=_entries(rows, mode, every))
        ProxyRequestLog.objects.filter(pk__in=[row.pk for row in rows]).delete()
    return len(rows)


def flush(*, limit: int = 500) -> int:
    """Chain up to ``limit`` pending proxied requests into their orgs' audit trails; returns how many
    were chained (and deleted). Safe to run in several processes at once: rows another flush holds are
    skipped. Waits for an org's chain lock while the org's launches hold it, the proxy never does."""
    ready = _ready(timezone.now())
    orgs = list(
        ProxyRequestLog.objects.filter(ready).order_by("org_id").values_list("org_id", flat=True).distinct()
    )
    if not orgs:
        return 0
    policy = audit_settings.audit_settings_get()
    mode, every = policy.kubectl_reads, policy.kubectl_sample_every
    done_count = 0
    for org_id in orgs:
        while done_count < limit:
            size = min(BATCH, limit - done_count)
            flushed = _flush_org(org_id, ready, mode, every, size)
            done_count += flushed
            if flushed < size:
                break
    return done_count


def flush_task() -> int:
    """The django-q schedule (instances/migrations/0010): whatever the web processes left."""
    total = 0
    with client_context(client=Client.TASK):
        while (flushed := flush(limit=5000)) > 0:
            total += flushed
            if flushed < 5000:
                break
    return total


# --- the background flush of each server process ------------------------------------------------------


@dataclass
class _Flusher:
    wake: asyncio.Event
    task: asyncio.Task | None = None
    dirty: bool = False  # rows recorded since the last flush that went through


_flushers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Flusher]" = weakref.WeakKeyDictionary()


def _background_flush() -> int:
    if connection.allow_thread_sharing:
        # The suite lends a test's connection (and transaction) to the in-process server: a flush on
        # it would run beside the test's own queries. Those tests call flush() themselves.
        return 0
    return flush(limit=BATCH)


def _wake() -> None:
    if flush_seconds() <= 0:
        return
    loop = asyncio.get_running_loop()
    flusher = _flushers.get(loop)
    if flusher is None:
        flusher = _flushers[loop] = _Flusher(wake=asyncio.Event())
    flusher.dirty = True
    flusher.wake.set()
    if flusher.task is None or flusher.task.done():
        flusher.task = loop.create_task(_run(flusher), name="kubectl-audit-flush")


async def _run(flusher: _Flusher) -> None:
    while True:
        await flusher.wake.wait()
        flusher.wake.clear()
        await asyncio.sleep(flush_seconds())  # the batching window: requests meanwhile share a batch
        try:
            while await in_thread(_background_flush)() >= BATCH:
                pass
        except Exception:
            logger.exception("kubectl audit: the background flush failed (the schedule will retry)")
        else:
            flusher.dirty = flusher.wake.is_set()


async def shutdown() -> None:
    """``PAAS_ASGI_SHUTDOWN``: stop this loop's background flush and flush what this process left."""
    flusher = _flushers.pop(asyncio.get_running_loop(), None)
    if flusher is None:
        return
    if flusher.task is not None:
        flusher.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flusher.task
    if not flusher.dirty:
        return
    try:
        while await in_thread(_background_flush)() >= BATCH:
            pass
    except Exception:
        logger.exception("kubectl audit: the last flush at shutdown failed (the schedule will retry)")
