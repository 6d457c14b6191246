"""Signed checkpoints of each audit chain's head, kept outside the database.

The threat: whoever holds the database role's rights (or more) can disable the audit table's triggers,
cut the newest events off a chain, or rewrite a chain and recompute every hash so that it verifies.
The chain alone cannot show either. So after each audited transaction commits, the chain's head
(``seq``, ``hash``) is written to a checkpoint that role cannot reach: a file in
``PAAS_AUDIT_CHECKPOINT_DIR`` (a volume of its own in production), signed with HMAC-SHA256 under
``PAAS_AUDIT_CHECKPOINT_KEY``, which only the application holds. ``audit_verify`` then compares each
chain with its checkpoint: a chain that ends before the checkpointed sequence lost its tail; a row at
that sequence with another hash means the chain was rewritten; a checkpoint whose signature does not
verify was forged.

Several replicas write the same store. Each chain has one file, replaced atomically (``os.replace`` of
a fully written and fsynced temporary file in the same directory), under an exclusive ``flock`` of the
chain's lock file, and a checkpoint only ever moves forward: the writer re-reads the current one under
the lock and keeps it when it is as new or newer. It moves forward only along the checkpointed chain
(the rows from the checkpointed sequence to the new head must link to the checkpointed hash), so a
rewritten or cut chain is never laundered into a fresh checkpoint; until someone looks, the
checkpoint stays where the honest chain was and ``audit_verify`` fails. Only the store directory is
written: the application runs on a read-only root file system.

The window: a transaction's events are sealed (chained) and checkpointed in its ``on_commit`` callback
(paas/audit.py), before the request returns; only sealed events are checkpointed. Events a process
committed and could not seal or checkpoint (it died in between, or the store was unwritable, which is
logged as an error) are covered by the ``audit seal`` schedule (every minute, paas.tasks.audit_seal) and
the ``audit checkpoint`` schedule (every five minutes, paas.tasks.audit_checkpoint); only those can be
cut undetected, and only until they run.
"""

import contextlib
import fcntl
import hashlib
import hmac
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from paas.audit import BrokenLink, compute_hash
from paas.models import AuditEvent

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1


class CheckpointError(Exception):
    """The checkpoint store cannot be used (not configured, not writable, unreadable)."""


class ForgedCheckpoint(CheckpointError):
    """A checkpoint file whose signature does not verify under the application's key."""


class ChainDiverged(CheckpointError):
    """The chain in the database does not extend its checkpoint (cut or rewritten): not advanced."""


@dataclass(frozen=True)
class Checkpoint:
    chain: int
    seq: int
    hash: str
    at: str

    def payload(self) -> bytes:
        body = {"version": FORMAT_VERSION, **asdict(self)}
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def _key() -> bytes:
    key = settings.PAAS_AUDIT_CHECKPOINT_KEY or ""
    if len(key) < 32:
        raise CheckpointError("PAAS_AUDIT_CHECKPOINT_KEY is not set (at least 32 characters).")
    return key.encode()


def key_id(key: bytes) -> str:
    return hashlib.sha256(b"paas-audit-checkpoint-key:" + key).hexdigest()[:12]


def sign(checkpoint: Checkpoint, key: bytes) -> str:
    return hmac.new(key, checkpoint.payload(), hashlib.sha256).hexdigest()


class CheckpointStore:
    """One signed JSON file per chain in a directory; see the module's docstring."""

    def __init__(self, directory: str | os.PathLike | None = None, key: bytes | None = None):
        self.directory = Path(directory or settings.PAAS_AUDIT_CHECKPOINT_DIR)
        self.key = key if key is not None else _key()

    def path(self, chain: int) -> Path:
        return self.directory / f"chain-{int(chain)}.json"

    def chains(self) -> list[int]:
        if not self.directory.is_dir():
            return []
        found = []
        for path in self.directory.glob("chain-*.json"):
            with contextlib.suppress(ValueError):
                found.append(int(path.stem.removeprefix("chain-")))
        return sorted(found)

    def read(self, chain: int) -> Checkpoint | None:
        """The chain's checkpoint, or None; ``ForgedCheckpoint`` when it is not ours."""
        path = self.path(chain)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CheckpointError(f"cannot read the audit checkpoint {path}: {exc.strerror}") from exc
        try:
            data = json.loads(raw)
            checkpoint = Checkpoint(
                chain=int(data["chain"]), seq=int(data["seq"]), hash=str(data["hash"]), at=str(data["at"])
            )
            signature = str(data["signature"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ForgedCheckpoint(f"checkpoint file {path.name} is malformed") from exc
        if checkpoint.chain != chain or not hmac.compare_digest(signature, sign(checkpoint, self.key)):
            raise ForgedCheckpoint(
                f"checkpoint file {path.name} has a bad signature (forged, or signed with another key)"
            )
        return checkpoint

    @contextlib.contextmanager
    def locked(self, chain: int) -> Iterator[None]:
        """Hold the chain's exclusive lock (every replica sharing the directory honours it)."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.directory / f"chain-{int(chain)}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise CheckpointError(
                f"the audit checkpoint store {self.directory} is not writable ({exc.strerror}); "
                "set PAAS_AUDIT_CHECKPOINT_DIR to a writable volume"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def write(self, checkpoint: Checkpoint) -> None:
        """Replace the chain's file atomically. Call under ``locked``; prefer ``advance``."""
        body = {
            "version": FORMAT_VERSION,
            **asdict(checkpoint),
            "key_id": key_id(self.key),
            "signature": sign(checkpoint, self.key),
        }
        try:
            fd, tmp = tempfile.mkstemp(
                dir=self.directory, prefix=f".chain-{checkpoint.chain}-", suffix=".tmp"
            )
            try:
                with os.fdopen(fd, "w") as handle:
                    json.dump(body, handle, sort_keys=True)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, self.path(checkpoint.chain))
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            raise CheckpointError(
                f"cannot write the audit checkpoint in {self.directory} ({exc.strerror})"
            ) from exc

    def advance(self, chain: int, seq: int, hash_: str) -> Checkpoint:
        """Write (seq, hash) unless the stored checkpoint is as new or newer; return what is stored.

        For callers that have already checked that (seq, hash) extends the stored checkpoint; the
        database-aware path is :func:`checkpoint_chain`."""
        with self.locked(chain):
            current = self.read(chain)
            if current is not None and current.seq >= seq:
                return current
            checkpoint = Checkpoint(chain=chain, seq=seq, hash=hash_, at=timezone.now().isoformat())
            self.write(checkpoint)
            return checkpoint


def _new_head(chain: int, current: Checkpoint | None) -> AuditEvent | None:
    """The chain's head if it extends ``current`` (contiguous, linked, each row matching its hash)."""
    if current is None:
        # First checkpoint of this chain: anchored on the head as it is (``audit_verify --checkpoint``
        # verifies the whole chain before anchoring, for chains older than their checkpoints).
        head = AuditEvent.objects.filter(chain=chain, seq__isnull=False).order_by("-seq").first()
        if head is not None and compute_hash(head) != head.hash:
            raise ChainDiverged(f"chain {chain}: head seq {head.seq} does not match its hash")
        return head
    rows = list(AuditEvent.objects.filter(chain=chain, seq__gte=current.seq).order_by("seq"))
    if not rows or rows[0].seq != current.seq or rows[0].hash != current.hash:
        raise ChainDiverged(
            f"chain {chain} no longer holds its checkpointed event seq {current.seq}: not advancing"
        )
    previous = rows[0]
    for row in rows[1:]:
        if row.seq != previous.seq + 1 or row.prev_hash != previous.hash or compute_hash(row) != row.hash:
            raise ChainDiverged(
                f"chain {chain} does not extend its checkpoint at seq {row.seq}: not advancing"
            )
        previous = row
    return previous


def checkpoint_chain(chain: int, *, store: CheckpointStore | None = None) -> Checkpoint | None:
    """Advance the chain's checkpoint to its current head in the database (never backwards)."""
    store = store or CheckpointStore()
    with store.locked(chain):
        current = store.read(chain)
        head = _new_head(chain, current)
        if head is None or (current is not None and head.seq <= current.seq):
            return current
        checkpoint = Checkpoint(chain=chain, seq=head.seq, hash=head.hash, at=timezone.now().isoformat())
        store.write(checkpoint)
        return checkpoint


def checkpoint_all(*, store: CheckpointStore | None = None) -> dict[int, Checkpoint | None]:
    """Advance every chain's checkpoint (the schedule's catch-up for commits never checkpointed)."""
    store = store or CheckpointStore()
    chains = AuditEvent.objects.order_by().values_list("chain", flat=True).distinct()
    return {chain: checkpoint_chain(chain, store=store) for chain in sorted(chains)}


class _CheckpointAfterCommit:
    """The on_commit callback for one chain; equal per chain so a transaction registers it once."""

    def __init__(self, chain: int):
        self.chain = chain
        self.done = False

    def __eq__(self, other) -> bool:
        return isinstance(other, _CheckpointAfterCommit) and other.chain == self.chain

    def __hash__(self) -> int:
        return hash((type(self), self.chain))

    def __call__(self) -> None:
        self.done = True
        try:
            checkpoint_chain(self.chain)
        except CheckpointError as exc:
            # The change is committed; refusing now would only lose the response. Loud, and the
            # schedule retries; audit_verify reports what the checkpoint shows.
            logger.error("audit checkpoint of chain %s not written: %s", self.chain, exc)


def checkpoint_on_commit(chain: int) -> None:
    """Checkpoint ``chain`` when the current transaction commits (once per chain and transaction)."""
    if not settings.PAAS_AUDIT_CHECKPOINT_KEY:
        return
    callback = _CheckpointAfterCommit(chain)
    pending = transaction.get_connection().run_on_commit
    if any(entry[1] == callback and not entry[1].done for entry in pending):
        return
    transaction.on_commit(callback, robust=True)


def check_store(app_configs=None, **kwargs):
    """System check (``manage.py check``, ``migrate``, server start): the store can be written."""
    from django.core import checks

    if not settings.PAAS_AUDIT_CHECKPOINT_KEY:
        return [
            checks.Warning(
                "PAAS_AUDIT_CHECKPOINT_KEY is not set: audit chain heads are not checkpointed.",
                id="paas.W001",
            )
        ]
    try:
        store = CheckpointStore()
        with store.locked(0):
            pass
    except CheckpointError as exc:
        return [checks.Error(str(exc), id="paas.E001")]
    return []


@dataclass(frozen=True)
class CheckpointReport:
    checked: int
    unanchored: list[int]
    broken: list[BrokenLink]


def verify_against_checkpoints(
    heads: dict[int, int], *, store: CheckpointStore | None = None
) -> CheckpointReport:
    """Compare each chain (``heads``: chain -> last seq in the database) with its checkpoint."""
    store = store or CheckpointStore()
    broken: list[BrokenLink] = []
    checked = 0
    unanchored = []
    for chain in sorted(set(heads) | set(store.chains())):
        try:
            checkpoint = store.read(chain)
        except ForgedCheckpoint as exc:
            broken.append(BrokenLink(chain, 0, None, f"{exc}"))
            continue
        if checkpoint is None:
            unanchored.append(chain)
            continue
        checked += 1
        head = heads.get(chain, 0)
        if head < checkpoint.seq:
            broken.append(
                BrokenLink(
                    chain,
                    head + 1,
                    None,
                    f"events missing at the end: the chain ends at seq {head} but its checkpoint "
                    f"(signed {checkpoint.at}) is at seq {checkpoint.seq} (tail removed)",
                )
            )
            continue
        row = AuditEvent.objects.filter(chain=chain, seq=checkpoint.seq).values_list("pk", "hash").first()
        if row is None or row[1] != checkpoint.hash:
            broken.append(
                BrokenLink(
                    chain,
                    checkpoint.seq,
                    row[0] if row else None,
                    "chain rewritten: the event at this seq does not match its signed checkpoint",
                )
            )
    return CheckpointReport(checked=checked, unanchored=unanchored, broken=broken)
