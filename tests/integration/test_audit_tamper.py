"""The audit trail cannot be cut short: TRUNCATE refused; a cut tail, a recomputed chain and a forged
checkpoint are found by audit_verify against the signed chain-head checkpoints kept outside the
database (paas/checkpoints.py)."""

import json
import multiprocessing
import os
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.db.utils import DatabaseError

from paas import audit, checkpoints
from paas.models import AuditEvent
from tenancy import services

pytestmark = pytest.mark.django_db


def _as_table_owner(*statements: str) -> None:
    """What someone with the database role's rights (or a superuser) can do: bypass the triggers."""
    with connection.cursor() as cur:
        cur.execute("ALTER TABLE paas_auditevent DISABLE TRIGGER USER")
        for statement in statements:
            cur.execute(statement)
        cur.execute("ALTER TABLE paas_auditevent ENABLE TRIGGER USER")


def _edit(world, n: int, django_capture_on_commit_callbacks) -> None:
    """``n`` audited studio-style edits of org A, each its own committed transaction (checkpointed)."""
    admin = world.a.users["org_admin"]
    for i in range(n):
        with django_capture_on_commit_callbacks(execute=True):
            services.project_update(actor=admin, project=world.a.project, description=f"edit {i}")


def _chain(world) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(chain=world.a.org.pk).order_by("seq"))


def _broken(world) -> list[audit.BrokenLink]:
    return [b for b in audit.audit_verify().broken if b.chain == world.a.org.pk]


def test_truncate_is_refused_and_only_a_superuser_can_step_around_it(world):
    with (
        pytest.raises(DatabaseError, match="append-only: TRUNCATE"),
        transaction.atomic(),
        connection.cursor() as cur,
    ):
        cur.execute("TRUNCATE paas_auditevent")
    # The application's role (not a superuser, with every right on the table) can neither truncate
    # nor switch the triggers off with the session setting the suite's own flush uses.
    with (
        pytest.raises(DatabaseError, match="append-only: TRUNCATE"),
        transaction.atomic(),
        connection.cursor() as cur,
    ):
        cur.execute("CREATE ROLE paas_app_probe NOLOGIN")
        cur.execute("GRANT ALL ON paas_auditevent TO paas_app_probe")
        cur.execute("SET LOCAL ROLE paas_app_probe")
        cur.execute("TRUNCATE paas_auditevent")
    with (
        pytest.raises(DatabaseError, match="permission denied"),
        transaction.atomic(),
        connection.cursor() as cur,
    ):
        cur.execute("CREATE ROLE paas_app_probe NOLOGIN")
        cur.execute("SET LOCAL ROLE paas_app_probe")
        cur.execute("SET LOCAL session_replication_role = replica")
    assert AuditEvent.objects.filter(chain=world.a.org.pk).exists()


def test_each_audited_transaction_checkpoints_its_chain(world, django_capture_on_commit_callbacks):
    _edit(world, 2, django_capture_on_commit_callbacks)
    head = _chain(world)[-1]
    checkpoint = checkpoints.CheckpointStore().read(world.a.org.pk)
    assert (checkpoint.seq, checkpoint.hash) == (head.seq, head.hash)
    # The store directory is the only place written: one file and one lock per chain, no leftovers.
    names = sorted(p.name for p in Path(settings.PAAS_AUDIT_CHECKPOINT_DIR).iterdir())
    assert names == [f"chain-{world.a.org.pk}.json", f"chain-{world.a.org.pk}.lock"]
    assert audit.audit_verify().ok
    call_command("audit_verify")


def test_a_removed_tail_is_found(world, django_capture_on_commit_callbacks, capsys):
    _edit(world, 3, django_capture_on_commit_callbacks)
    events = _chain(world)
    _as_table_owner(f"DELETE FROM paas_auditevent WHERE id IN ({events[-1].pk}, {events[-2].pk})")
    # The shortened chain still verifies on its own; only the checkpoint shows the cut.
    assert audit.audit_verify(checkpoints=False).ok
    broken = _broken(world)
    assert len(broken) == 1 and "tail removed" in broken[0].reason
    assert f"ends at seq {events[-3].seq}" in broken[0].reason and f"seq {events[-1].seq}" in broken[0].reason
    with pytest.raises(CommandError, match="broken in 1 chain"):
        call_command("audit_verify")
    assert "tail removed" in capsys.readouterr().err


def test_a_whole_chain_removed_is_found(world, django_capture_on_commit_callbacks):
    _edit(world, 1, django_capture_on_commit_callbacks)
    _as_table_owner(f"DELETE FROM paas_auditevent WHERE chain = {world.a.org.pk}")
    broken = _broken(world)
    assert len(broken) == 1 and "ends at seq 0" in broken[0].reason


def test_a_recomputed_chain_is_found_and_never_checkpointed(
    world, django_capture_on_commit_callbacks, caplog
):
    _edit(world, 3, django_capture_on_commit_callbacks)
    events = _chain(world)
    checkpointed = checkpoints.CheckpointStore().read(world.a.org.pk)
    # Rewrite an event, then recompute every hash after it, as an attacker with table rights would.
    victim = events[-3]
    victim.details = {"forged": True}
    statements, prev_hash = [], victim.prev_hash
    for event in events[events.index(victim) :]:
        event.prev_hash = prev_hash
        event.hash = audit.compute_hash(event)
        prev_hash = event.hash
        statements.append(
            f"UPDATE paas_auditevent SET details = '{json.dumps(event.details)}', "
            f"prev_hash = '{event.prev_hash}', hash = '{event.hash}' WHERE id = {event.pk}"
        )
    _as_table_owner(*statements)
    assert audit.audit_verify(checkpoints=False).ok  # the rewritten chain is self-consistent
    broken = _broken(world)
    assert len(broken) == 1 and broken[0].seq == checkpointed.seq and "chain rewritten" in broken[0].reason
    # The next audited transaction does not launder the rewrite into a fresh checkpoint.
    _edit(world, 1, django_capture_on_commit_callbacks)
    assert checkpoints.CheckpointStore().read(world.a.org.pk) == checkpointed
    assert "no longer holds its checkpointed event" in caplog.text
    assert "chain rewritten" in _broken(world)[0].reason


def test_a_forged_checkpoint_is_found(world, django_capture_on_commit_callbacks):
    _edit(world, 1, django_capture_on_commit_callbacks)
    path = checkpoints.CheckpointStore().path(world.a.org.pk)
    # Moving the checkpoint back (to hide a later cut) without the key:
    body = json.loads(path.read_text())
    body["seq"] -= 1
    path.write_text(json.dumps(body))
    broken = _broken(world)
    assert len(broken) == 1 and "bad signature" in broken[0].reason
    # Signed with another key: the same.
    other = checkpoints.CheckpointStore(key=b"k" * 40)
    other.write(checkpoints.Checkpoint(chain=world.a.org.pk, seq=1, hash="0" * 64, at="x"))
    assert "bad signature" in _broken(world)[0].reason


def _racer(directory: str, key: bytes, chain: int, seqs: list[int]) -> None:
    store = checkpoints.CheckpointStore(directory, key)
    for seq in seqs:
        store.advance(chain, seq, f"{seq:064x}")


def test_racing_replicas_never_move_a_checkpoint_backwards(tmp_path):
    """Four processes (replicas) advance one chain's checkpoint in interleaved orders while it is read."""
    key = settings.PAAS_AUDIT_CHECKPOINT_KEY.encode()
    store = checkpoints.CheckpointStore(tmp_path, key)
    seqs = list(range(1, 201))
    context = multiprocessing.get_context("fork")
    racers = [
        context.Process(target=_racer, args=(str(tmp_path), key, 7, seqs[i::4][:: 1 if i % 2 else -1]))
        for i in range(4)
    ]
    for racer in racers:
        racer.start()
    seen = 0
    while any(racer.is_alive() for racer in racers):
        current = store.read(7)  # always a whole, correctly signed file, never older than before
        if current is not None:
            assert current.seq >= seen
            seen = current.seq
    for racer in racers:
        racer.join()
        assert racer.exitcode == 0
    final = store.read(7)
    assert (final.seq, final.hash) == (200, f"{200:064x}")
    assert store.advance(7, 150, "f" * 64).seq == 200  # a late, older writer changes nothing
    assert sorted(os.listdir(tmp_path)) == ["chain-7.json", "chain-7.lock"]


def test_an_unwritable_store_is_a_clear_error_not_a_crash(
    world, settings, django_capture_on_commit_callbacks, caplog
):
    # sysfs refuses new directories even to root, like a read-only file system (EROFS) or a volume
    # the application's user may not write (EACCES).
    settings.PAAS_AUDIT_CHECKPOINT_DIR = "/sys/gpupaas-audit-checkpoints"
    _edit(world, 1, django_capture_on_commit_callbacks)  # the change itself commits and returns
    assert "audit checkpoint of chain" in caplog.text and "is not writable" in caplog.text
    assert "PAAS_AUDIT_CHECKPOINT_DIR" in caplog.text
    with pytest.raises(CommandError, match="is not writable"):
        call_command("audit_verify", "--checkpoint")
    result = audit.audit_verify()
    assert result.ok and world.a.org.pk in result.unanchored
    # `manage.py check` (and migrate, and the server's start) says so before anything is written.
    [error] = checkpoints.check_store()
    assert error.id == "paas.E001" and "is not writable" in error.msg
