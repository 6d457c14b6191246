"""The audit trail: write an event inside the service's transaction; verify the hash chains.

Every service that changes state calls :func:`audit_log` before it returns, inside its own
``transaction.atomic`` block, so the change and its event commit or roll back together.
"""

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from django.apps import apps
from django.db import connection, transaction
from django.db.models import Max, Model
from django.utils import timezone

from paas import authz, context
from paas.models import AuditEvent

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
    """Serialise writers of one chain until commit."""
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
    """Append ``entries`` to one chain (``org_id``'s, or the platform's) under ONE chain lock, in one
    insert: the one writer of the chains (``audit_log`` appends its one event here). Must be called
    inside the transaction that also records why they are written (e.g. the deletion of the rows they
    were made from). For many events at once: one ``audit_log`` each costs a lock and a head read."""
    if not connection.in_atomic_block:
        raise RuntimeError("audit_append_batch must run inside the transaction of what it records")
    if not entries:
        return []
    chain = org_id if org_id is not None else PLATFORM_CHAIN
    ctx = context.current()
    _lock_chain(chain)
    last = _sealed_head(chain)
    seq, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
    now = timezone.now()
    support = _support_accesses(org_id, {entry.actor_id for entry in entries if entry.actor_id}, now)
    events = []
    for entry in entries:
        details = entry.details
        if entry.actor_id in support:
            details = {**details, "support_access": support[entry.actor_id]}
        event = _event(entry, chain=chain, org_id=org_id, ctx=ctx, now=now, details=details)
        event.seq, event.prev_hash = seq, prev_hash
        event.hash = compute_hash(event)
        events.append(event)
        seq, prev_hash = seq + 1, event.hash
    AuditEvent.objects.bulk_create(events)
    from paas.checkpoints import checkpoint_on_commit

    checkpoint_on_commit(chain)
    return events


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

    @property
    def ok(self) -> bool:
        return not self.broken


def audit_verify(*, chunk_size: int = 2000, checkpoints: bool = True) -> VerifyResult:
    """Walk every chain in order; report the first broken link of each chain.

    Then compare each chain's head with its signed checkpoint (paas/checkpoints.py): a chain cut short
    or rewritten (and re-hashed) is found there, though it verifies on its own."""
    chains = list(AuditEvent.objects.order_by().values_list("chain", flat=True).distinct())
    broken: list[BrokenLink] = []
    total = 0
    for chain in sorted(chains):
        expected_seq, prev_hash = 1, GENESIS_HASH
        for event in AuditEvent.objects.filter(chain=chain).order_by("seq").iterator(chunk_size=chunk_size):
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
    if not checkpoints:
        return VerifyResult(chains=len(chains), events=total, broken=broken)
    from paas.checkpoints import CheckpointError, verify_against_checkpoints

    heads = dict(
        AuditEvent.objects.order_by().values("chain").annotate(head=Max("seq")).values_list("chain", "head")
    )
    try:
        report = verify_against_checkpoints(heads)
    except CheckpointError as exc:
        return VerifyResult(chains=len(chains), events=total, broken=broken, store_error=str(exc))
    return VerifyResult(
        chains=len(chains),
        events=total,
        broken=sorted(broken + report.broken, key=lambda link: (link.chain, link.seq)),
        checkpoints=report.checked,
        unanchored=report.unanchored,
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
