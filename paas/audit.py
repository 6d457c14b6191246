"""The audit trail: write an event inside the service's transaction; chain it after commit; verify.

Every service that changes state calls :func:`audit_log` before it returns, inside its own
``transaction.atomic`` block, so the change and its event commit or roll back together. The event is
written unsealed and takes no lock; right after the commit a short transaction of its own gives it its
place in the org's hash chain (seq, prev_hash, hash: :func:`audit_seal_pending`), so the writers of one
org never wait for each other's transactions, only for each other's sealing (a few statements).
"""

import dataclasses
import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from django.apps import apps
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Count, Max, Min, Model
from django.utils import timezone

from paas import authz, context
from paas.models import AuditEvent

logger = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64
PLATFORM_CHAIN = 0
_LOCK_CLASS = 0x41554454  # "AUDT": advisory-lock namespace for the audit chains


def _canonical(event: AuditEvent) -> bytes:
    payload = {
        "chain": event.chain,
        "seq": event.seq,
        "created_at": event.created_at.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor_id": event.actor_id,
        "actor_repr": event.actor_repr,
        "org_id": event.org_id,
        "project_id": event.project_id,
        "client": event.client,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "target_repr": event.target_repr,
        "details": event.details,
        "request_id": event.request_id,
        "prev_hash": event.prev_hash,
    }
    if event.cluster_id is not None:  # only when set: the chains written before the column still verify
        payload["cluster_id"] = event.cluster_id
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()


def compute_hash(event: AuditEvent) -> str:
    return hashlib.sha256(_canonical(event)).hexdigest()


def _lock_chain(chain: int) -> None:
    """Serialise the sealers (and bulk importers) of one chain until their transaction ends."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_LOCK_CLASS, chain])


def _json_safe(details: dict) -> dict:
    # Round-trip so the hash covers exactly what the JSON column will give back.
    return json.loads(json.dumps(details, default=str))


def audit_log(
    *,
    actor,
    action: str,
    target: Model | None = None,
    target_type: str = "",
    target_id: str | int = "",
    target_repr: str = "",
    org=None,
    project=None,
    details: dict | None = None,
) -> AuditEvent:
    """Append one event for a state change. Must be called inside the change's transaction.

    ``org`` and ``project`` scope the event (and choose its chain); when only ``project`` is given its
    org is used. ``target`` fills the target fields from a model instance.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("audit_log must run inside the transaction of the change it records")
    if project is not None and org is None:
        org = project.org
    if target is not None:
        target_type = target_type or target._meta.label_lower
        target_id = target_id or target.pk
        target_repr = target_repr or str(target)
    is_user = actor is not None and getattr(actor, "is_authenticated", False)
    entry = Entry(
        action=action,
        actor_id=actor.pk if is_user else None,
        actor_repr=(actor.email or actor.get_username()) if is_user else "system",
        target_type=target_type,
        target_id=target_id,
        target_repr=target_repr,
        details=details or {},
        project_id=project.pk if project is not None else None,
    )
    return audit_append_batch(org_id=org.pk if org is not None else None, entries=[entry])[0]


@dataclass(frozen=True)
class Entry:
    """One event of a batch (:func:`audit_append_batch`): the fields ``audit_log`` would fill from model
    instances, given as plain values (the writer may not import the models they name)."""

    action: str
    actor_id: int | None
    actor_repr: str
    target_type: str
    target_id: str | int = ""
    target_repr: str = ""
    details: dict = dataclasses.field(default_factory=dict)
    project_id: int | None = None
    created_at: datetime | None = None
    client: str = ""
    request_id: str = ""
    cluster_id: int | None = None


def audit_append_batch(*, org_id: int | None, entries: Sequence[Entry]) -> list[AuditEvent]:
    """Append ``entries`` to one chain (``org_id``'s, or the platform's) in one insert: the one writer
    of the chains (``audit_log`` appends its one event here). Must be called inside the transaction that
    also records why they are written (e.g. the deletion of the rows they were made from).

    The rows are written *unsealed* (no seq, prev_hash or hash), so they commit or roll back with the
    change and no chain lock is taken here: writers of one chain do not wait for each other's commits.
    When the transaction commits, :func:`audit_seal_pending` chains them in a short transaction of its
    own (and checkpoints the chain); the ``audit seal`` schedule seals what a process left behind. The
    returned events are therefore not sealed yet (``seq`` is None)."""
    if not connection.in_atomic_block:
        raise RuntimeError("audit_append_batch must run inside the transaction of what it records")
    if not entries:
        return []
    chain = org_id if org_id is not None else PLATFORM_CHAIN
    ctx = context.current()
    now = timezone.now()
    support = _support_accesses(org_id, {entry.actor_id for entry in entries if entry.actor_id}, now)
    events = []
    for entry in entries:
        details = entry.details
        if entry.actor_id in support:
            details = {**details, "support_access": support[entry.actor_id]}
        events.append(_event(entry, chain=chain, org_id=org_id, ctx=ctx, now=now, details=details))
    AuditEvent.objects.bulk_create(events)
    seal_on_commit(chain)
    return events


# --- sealing: chaining committed events, one short transaction per chain and batch ---------------------

SEAL_BATCH = 1000


def audit_seal_pending(*, chain: int | None = None, checkpoint: bool = True) -> int:
    """Seal every committed unsealed event (of ``chain``, or of every chain), oldest row first, and
    advance the sealed chains' checkpoints; returns how many were sealed.

    Each batch is one short transaction holding the chain's advisory lock only for its own few
    statements (the head read, the pending rows, one UPDATE): events are given seq, prev_hash and hash
    in the order their rows were written, among those committed when the batch reads them. Called on
    commit of every audited transaction (:func:`seal_on_commit`) and by the ``audit seal`` schedule
    (``paas.tasks.audit_seal``) for events whose process ended between its commit and its sealing.
    Inside a transaction of the caller's (a test), the lock is held until that one ends."""
    if chain is None:
        chains = sorted(
            AuditEvent.objects.filter(seq__isnull=True).order_by().values_list("chain", flat=True).distinct()
        )
    else:
        chains = [chain]
    sealed = 0
    for one in chains:
        count = _seal_chain(one)
        sealed += count
        if count and checkpoint:
            _checkpoint(one)
    return sealed


def _seal_chain(chain: int) -> int:
    sealed = 0
    while True:
        with transaction.atomic():
            _lock_chain(chain)
            pending = list(
                AuditEvent.objects.filter(chain=chain, seq__isnull=True).order_by("pk")[:SEAL_BATCH]
            )
            if not pending:
                return sealed
            last = _sealed_head(chain)
            seq, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
            for event in pending:
                event.seq, event.prev_hash = seq, prev_hash
                event.hash = compute_hash(event)
                seq, prev_hash = seq + 1, event.hash
            _write_seals(pending)
        sealed += len(pending)
        if len(pending) < SEAL_BATCH:
            return sealed


def _write_seals(events: Sequence[AuditEvent]) -> None:
    """One UPDATE setting seq, prev_hash and hash of still-unsealed rows (the one UPDATE the table's
    trigger allows: paas/migrations/0013_audit_sealed_after_commit.py)."""
    values = ", ".join(["(%s::bigint, %s::bigint, %s, %s)"] * len(events))
    params = [value for event in events for value in (event.pk, event.seq, event.prev_hash, event.hash)]
    # Fixed fragments (the table, one placeholder row per event); every value is a parameter.
    table = AuditEvent._meta.db_table
    sql = f"""UPDATE {table} AS e SET seq = v.seq, prev_hash = v.prev_hash, hash = v.hash
        FROM (VALUES {values}) AS v(id, seq, prev_hash, hash) WHERE e.id = v.id AND e.seq IS NULL"""  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if cursor.rowcount != len(events):  # only a sealer holding the chain's lock writes these
            raise RuntimeError(
                f"audit chain {events[0].chain}: sealed {cursor.rowcount} of {len(events)} rows"
            )


def _checkpoint(chain: int) -> None:
    from paas.checkpoints import CheckpointError, checkpoint_chain

    if not settings.PAAS_AUDIT_CHECKPOINT_KEY:
        return
    try:
        checkpoint_chain(chain)
    except CheckpointError as exc:
        # The events are sealed; the ``audit checkpoint`` schedule retries, audit_verify reports.
        logger.error("audit checkpoint of chain %s not written: %s", chain, exc)


class _SealAfterCommit:
    """The on_commit callback for one chain; equal per chain so a transaction registers it once."""

    def __init__(self, chain: int):
        self.chain = chain
        self.done = False

    def __eq__(self, other) -> bool:
        return isinstance(other, _SealAfterCommit) and other.chain == self.chain

    def __hash__(self) -> int:
        return hash((type(self), self.chain))

    def __call__(self) -> None:
        self.done = True
        try:
            audit_seal_pending(chain=self.chain)
        except DatabaseError:
            # The change is committed; refusing now would only lose the response. The schedule seals.
            logger.exception("audit chain %s: sealing after commit failed (the schedule retries)", self.chain)


def seal_on_commit(chain: int) -> None:
    """Seal ``chain``'s pending events when the current transaction commits: once per chain and
    savepoint level (a second sealer of a chain would find nothing left, so the dedup only saves the
    work; it is per level so that a test capturing one savepoint's callbacks runs its own sealer)."""
    callback = _SealAfterCommit(chain)
    db = transaction.get_connection()
    level = set(db.savepoint_ids)
    if any(sids == level and func == callback and not func.done for sids, func, _ in db.run_on_commit):
        return
    transaction.on_commit(callback, robust=True)


def _event(entry: Entry, *, chain: int, org_id: int | None, ctx, now, details: dict) -> AuditEvent:
    """The row for ``entry`` (not chained: no seq, prev_hash or hash yet)."""
    return AuditEvent(
        chain=chain,
        created_at=entry.created_at or now,
        actor_id=entry.actor_id,
        actor_repr=(entry.actor_repr or ("system" if entry.actor_id is None else ""))[:254],
        org_id=org_id,
        project_id=entry.project_id,
        client=entry.client or ctx.client,
        action=entry.action,
        target_type=entry.target_type,
        target_id=str(entry.target_id),
        target_repr=entry.target_repr[:255],
        details=_json_safe(details),
        request_id=(entry.request_id or ctx.request_id)[:64],
        cluster_id=entry.cluster_id,
    )


def audit_import_sealed(*, chain: int, entries: Iterable[Entry], batch_size: int = 5000) -> int:
    """Bulk-append ``entries`` to ``chain`` (an org's id, or ``PLATFORM_CHAIN``) already chained: seq,
    prev_hash and hash are computed here, continuing the chain's sealed head, and the rows are written
    with COPY in batches of ``batch_size``. Returns how many were written.

    For loading large trails (generated data sets, migrations of an older trail), not for recording a
    change: no support-access tagging, and each entry should carry its ``created_at`` (``now``
    otherwise) and its ``client`` (the current context's otherwise). Runs in one transaction (the
    caller's when there is one) holding the chain's lock until it commits, so no other writer of the
    chain interleaves; the chain's checkpoint advances on commit. ``manage.py audit_verify`` passes on
    the result. ``entries`` may be a generator: it is consumed batch by batch."""
    org_id = None if chain == PLATFORM_CHAIN else chain
    ctx = context.current()
    now = timezone.now()
    written = 0
    with transaction.atomic():
        _lock_chain(chain)
        last = _sealed_head(chain)
        seq, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
        batch: list[AuditEvent] = []
        for entry in entries:
            event = _event(entry, chain=chain, org_id=org_id, ctx=ctx, now=now, details=entry.details)
            event.seq, event.prev_hash = seq, prev_hash
            event.hash = compute_hash(event)
            batch.append(event)
            seq, prev_hash = seq + 1, event.hash
            if len(batch) >= batch_size:
                _copy(batch)
                written += len(batch)
                batch = []
        if batch:
            _copy(batch)
            written += len(batch)
        if written:
            from paas.checkpoints import checkpoint_on_commit

            checkpoint_on_commit(chain)
    return written


_COPY_COLUMNS = (
    "chain",
    "seq",
    "created_at",
    "actor_id",
    "actor_repr",
    "org_id",
    "project_id",
    "client",
    "action",
    "target_type",
    "target_id",
    "target_repr",
    "details",
    "request_id",
    "cluster_id",
    "prev_hash",
    "hash",
)


def _copy(events: Sequence[AuditEvent]) -> None:
    """Write ``events`` (complete rows) with one COPY."""
    from psycopg.types.json import Jsonb

    table = AuditEvent._meta.db_table
    with connection.cursor() as cursor:
        raw = cursor.cursor  # psycopg's own cursor: Django's wrapper has no copy()
        with raw.copy(f"COPY {table} ({', '.join(_COPY_COLUMNS)}) FROM STDIN") as copy:
            for event in events:
                row = [getattr(event, column) for column in _COPY_COLUMNS]
                row[_COPY_COLUMNS.index("details")] = Jsonb(event.details)
                copy.write_row(row)


def _sealed_head(chain: int) -> tuple[int, str] | None:
    """(seq, hash) of the chain's last sealed event, or None for an empty chain."""
    return (
        AuditEvent.objects.filter(chain=chain, seq__isnull=False)
        .order_by("-seq")
        .values_list("seq", "hash")
        .first()
    )


def _support_accesses(org_id: int | None, actor_ids: set[int], now) -> dict[int, int]:
    """The active support access (``authz.SUPPORT_MODEL``) each of ``actor_ids`` holds on the org, by
    user id: whatever a support person does in an org carries ``details["support_access"] = <its id>``,
    so the tenant's trail tells their actions apart from its own people's."""
    if org_id is None or not actor_ids:
        return {}
    rows = (
        apps.get_model(authz.SUPPORT_MODEL)
        .objects.filter(
            org_id=org_id, user_id__in=actor_ids, state="approved", starts_at__lte=now, expires_at__gt=now
        )
        .order_by("starts_at")
        .values_list("user_id", "pk")
    )
    return dict(rows)  # the latest grant wins


@dataclass(frozen=True)
class BrokenLink:
    chain: int
    seq: int
    event_id: int | None
    reason: str

    def __str__(self) -> str:
        where = f"chain {self.chain}, seq {self.seq}" + (
            f" (event id {self.event_id})" if self.event_id else ""
        )
        return f"{where}: {self.reason}"


@dataclass(frozen=True)
class VerifyResult:
    chains: int
    events: int
    broken: list[BrokenLink]
    checkpoints: int = 0  # chains whose head matched their signed checkpoint
    unanchored: list[int] = dataclasses.field(default_factory=list)  # chains with no checkpoint yet
    store_error: str = ""  # the checkpoint store could not be used
    # Committed events not chained yet, by chain (sealed right after their commit, or by the ``audit
    # seal`` schedule): pending, not broken; ``oldest_pending`` is the time of the oldest.
    pending: dict[int, int] = dataclasses.field(default_factory=dict)
    oldest_pending: datetime | None = None

    @property
    def ok(self) -> bool:
        return not self.broken


def audit_verify(*, chunk_size: int = 2000, checkpoints: bool = True) -> VerifyResult:
    """Walk every chain's sealed events in order; report the first broken link of each chain, and the
    events still waiting to be sealed (pending, not broken).

    Then compare each chain's sealed head with its signed checkpoint (paas/checkpoints.py): a chain cut
    short or rewritten (and re-hashed) is found there, though it verifies on its own."""
    pending_rows = list(
        AuditEvent.objects.filter(seq__isnull=True)
        .order_by()
        .values("chain")
        .annotate(count=Count("pk"), oldest=Min("created_at"))
        .values_list("chain", "count", "oldest")
    )
    pending = {chain: count for chain, count, _ in pending_rows}
    oldest = min((at for _, _, at in pending_rows), default=None)
    sealed = AuditEvent.objects.filter(seq__isnull=False)
    chains = sorted(set(sealed.order_by().values_list("chain", flat=True).distinct()) | set(pending))
    broken: list[BrokenLink] = []
    total = 0
    for chain in chains:
        expected_seq, prev_hash = 1, GENESIS_HASH
        for event in sealed.filter(chain=chain).order_by("seq").iterator(chunk_size=chunk_size):
            total += 1
            if event.seq != expected_seq:
                broken.append(
                    BrokenLink(chain, expected_seq, None, f"event missing (next present is seq {event.seq})")
                )
                break
            if event.prev_hash != prev_hash:
                broken.append(BrokenLink(chain, event.seq, event.pk, "previous-hash link does not match"))
                break
            if compute_hash(event) != event.hash:
                broken.append(BrokenLink(chain, event.seq, event.pk, "content does not match its hash"))
                break
            expected_seq, prev_hash = expected_seq + 1, event.hash
    base = {"chains": len(chains), "events": total, "pending": pending, "oldest_pending": oldest}
    if not checkpoints:
        return VerifyResult(broken=broken, **base)
    from paas.checkpoints import CheckpointError, verify_against_checkpoints

    heads = dict(sealed.order_by().values("chain").annotate(head=Max("seq")).values_list("chain", "head"))
    try:
        report = verify_against_checkpoints(heads)
    except CheckpointError as exc:
        return VerifyResult(broken=broken, store_error=str(exc), **base)
    return VerifyResult(
        broken=sorted(broken + report.broken, key=lambda link: (link.chain, link.seq)),
        checkpoints=report.checked,
        unanchored=report.unanchored,
        **base,
    )


def apply_changes(obj: Model, data: dict) -> dict:
    """Set ``data`` on ``obj``; return the changes as ``{field: [before, after]}`` for an audit event.

    Related objects are recorded by their string form; only fields whose value differs are set.
    """
    changes = {}
    for field, value in data.items():
        before = getattr(obj, field)
        if before != value:
            changes[field] = [_plain(before), _plain(value)]
            setattr(obj, field, value)
    return changes


def _plain(value):
    if value is None or isinstance(value, bool | int | float | str | list | dict):
        return value
    return str(value)
