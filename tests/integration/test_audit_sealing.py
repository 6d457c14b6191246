"""Audit events chained after commit (paas/audit.py): written in the change's transaction, sealed
(seq, prev_hash, hash) by a short transaction of their own on commit or by the periodic sealer; and
the bulk import of already-chained trails."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from paas import audit
from paas.models import AuditEvent, AuditSink
from tests.support.audit import committed

pytestmark = pytest.mark.django_db


def _entries(n: int, *, project_id=None):
    start = timezone.now() - timedelta(days=30)
    for i in range(n):
        yield audit.Entry(
            action="instance.launch",
            actor_id=None,
            actor_repr="generator",
            target_type="instances.computeinstance",
            target_id=i,
            target_repr=f"instance-{i}",
            details={"i": i, "gpus": [1, 2]},
            project_id=project_id,
            created_at=start + timedelta(seconds=i),
            client="cli",
        )


def test_imported_events_continue_the_chain_and_verify(world, django_capture_on_commit_callbacks):
    org = world.a.org
    before = list(AuditEvent.objects.filter(chain=org.pk).order_by("seq").values_list("seq", flat=True))
    with django_capture_on_commit_callbacks(execute=True):
        written = audit.audit_import_sealed(
            chain=org.pk, entries=_entries(2500, project_id=world.a.project.pk), batch_size=1000
        )
    assert written == 2500
    seqs = list(AuditEvent.objects.filter(chain=org.pk).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(before) + 2501))
    imported = AuditEvent.objects.get(chain=org.pk, seq=len(before) + 7)
    assert (imported.org_id, imported.project_id, imported.details) == (
        org.pk,
        world.a.project.pk,
        {"i": 6, "gpus": [1, 2]},
    )
    result = audit.audit_verify()
    assert result.ok, result.broken
    assert org.pk not in result.unanchored  # checkpointed on commit


def test_import_into_the_platform_chain_and_an_empty_chain(db, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        assert audit.audit_import_sealed(chain=audit.PLATFORM_CHAIN, entries=_entries(3)) == 3
        assert audit.audit_import_sealed(chain=987654, entries=_entries(2)) == 2
        assert audit.audit_import_sealed(chain=987654, entries=[]) == 0
    assert set(AuditEvent.objects.filter(chain=987654).values_list("seq", "org_id")) == {
        (1, 987654),
        (2, 987654),
    }
    assert set(AuditEvent.objects.filter(chain=0).values_list("org_id", flat=True)) == {None}
    assert audit.audit_verify().ok


# --- sealing after commit --------------------------------------------------------------------------------


def _write(org_id: int, n: int = 1, *, action: str = "test.event") -> list[AuditEvent]:
    entries = [
        audit.Entry(action=action, actor_id=None, actor_repr="", target_type="test", target_id=i)
        for i in range(n)
    ]
    return audit.audit_append_batch(org_id=org_id, entries=entries)


def _chain(chain: int) -> list[tuple[int | None, int]]:
    return list(AuditEvent.objects.filter(chain=chain).order_by("seq", "pk").values_list("seq", "pk"))


def test_events_are_written_unsealed_and_sealed_on_commit(world):
    org = world.a.org
    with committed():
        events = _write(org.pk, 3)
        assert [e.seq for e in events] == [None] * 3  # inside the transaction: written, not chained
        row = AuditEvent.objects.get(pk=events[0].pk)
        assert (row.seq, row.prev_hash, row.hash) == (None, "", None)
    sealed = list(AuditEvent.objects.filter(pk__in=[e.pk for e in events]).order_by("pk"))
    head = AuditEvent.objects.filter(chain=org.pk).order_by("-seq").values_list("seq", flat=True).first()
    assert [e.seq for e in sealed] == [head - 2, head - 1, head]  # in the order they were written
    assert sealed[1].prev_hash == sealed[0].hash and sealed[2].prev_hash == sealed[1].hash
    assert all(audit.compute_hash(e) == e.hash for e in sealed)
    assert audit.audit_verify().ok


def test_a_rolled_back_transaction_leaves_no_event(world):
    mark = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first()

    class Refused(Exception):
        pass

    with pytest.raises(Refused), committed():
        _write(world.a.org.pk, 2)
        raise Refused
    assert not AuditEvent.objects.filter(pk__gt=mark).exists()
    assert audit.audit_seal_pending() == 0


def test_events_left_unsealed_by_a_dead_process_are_sealed_by_the_schedule(world, client):
    """A process that died between its commit and its sealing: its events are committed, unsealed (here:
    written in the test's transaction, whose on-commit callbacks never run). audit_verify calls them
    pending, not broken; sinks do not see them; the pages show them; the ``audit seal`` schedule seals
    them and advances the checkpoint."""
    from django_q.models import Schedule

    from paas import audit_stream, tasks
    from paas.checkpoints import CheckpointStore, checkpoint_chain

    org = world.a.org
    sealed_head = AuditEvent.objects.filter(chain=org.pk).order_by("-seq").values_list("seq", "hash").first()
    checkpoint_chain(org.pk)
    lost = _write(org.pk, 2, action="test.lost")
    result = audit.audit_verify()
    assert result.ok and result.pending == {org.pk: 2} and result.oldest_pending == lost[0].created_at
    assert checkpoint_chain(org.pk).seq == sealed_head[0]  # checkpoints stay on the sealed head
    # Sinks stream sealed events only: a sink at the sealed head has nothing due.
    assert audit_stream.chain_head(org.pk) == sealed_head[0]
    sink = AuditSink.objects.create(org=org, name="s", kind="https", url="https://x/", cursor=sealed_head[0])
    assert audit_stream.with_head(AuditSink.objects.filter(pk=sink.pk)).get().head == sealed_head[0]
    assert sink.pk not in audit_stream.due_sinks()
    # The org's audit page shows them (newest first), before they are chained.
    client.force_login(world.a.users["org_admin"])
    listed = client.get("/api/v1/audit-events/?action=test.lost").json()["results"]
    assert [(e["id"], e["seq"], e["hash"]) for e in listed] == [
        (lost[1].pk, None, None),
        (lost[0].pk, None, None),
    ]

    schedule = Schedule.objects.get(name="audit seal")
    assert (schedule.func, schedule.schedule_type, schedule.minutes) == ("paas.tasks.audit_seal", "I", 1)
    tasks.audit_seal()

    rows = list(AuditEvent.objects.filter(pk__in=[e.pk for e in lost]).order_by("seq"))
    assert [r.seq for r in rows] == [sealed_head[0] + 1, sealed_head[0] + 2] and rows[
        0
    ].prev_hash == sealed_head[1]
    result = audit.audit_verify()
    assert result.ok and result.pending == {} and org.pk not in result.unanchored
    assert CheckpointStore().read(org.pk).seq == sealed_head[0] + 2
    assert sink.pk in audit_stream.due_sinks()


def test_audit_verify_command_reports_pending_events(world, capsys):
    from django.core.management import call_command

    _write(world.b.org.pk, 1)
    call_command("audit_verify")
    out = capsys.readouterr().out
    assert f"chain {world.b.org.pk} has 1 event(s) pending sealing" in out and "OK:" in out


@pytest.mark.parametrize(
    ("statement", "sealed"),
    [
        ("UPDATE paas_auditevent SET details = '{\"forged\": 1}' WHERE id = {pk}", False),  # content
        (  # sealing, and content with it
            "UPDATE paas_auditevent SET seq = 99, prev_hash = repeat('0', 64), hash = repeat('a', 64), "
            "action = 'forged' WHERE id = {pk}",
            False,
        ),
        ("UPDATE paas_auditevent SET seq = 99 WHERE id = {pk}", False),  # half a seal
        ("UPDATE paas_auditevent SET seq = seq + 1000 WHERE id = {pk}", True),  # re-sealing
        (
            "UPDATE paas_auditevent SET seq = NULL, prev_hash = '', hash = NULL WHERE id = {pk}",
            True,
        ),  # unsealing
    ],
)
def test_the_database_lets_through_only_the_sealing_of_an_unsealed_event(world, statement, sealed):
    event = _write(world.a.org.pk, 1)[0]
    if sealed:
        audit.audit_seal_pending(chain=world.a.org.pk)
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement.replace("{pk}", str(event.pk)))
    with transaction.atomic(), connection.cursor() as cursor:  # what the sealer does is allowed
        cursor.execute(
            "UPDATE paas_auditevent SET seq = 99, prev_hash = repeat('0', 64), hash = repeat('b', 64) "
            "WHERE id = %s AND seq IS NULL",
            [event.pk],
        )
        assert cursor.rowcount == (0 if sealed else 1)


@pytest.mark.django_db(transaction=True)
def test_writers_of_one_chain_do_not_wait_for_each_others_commit_and_all_are_sealed_gap_free():
    """One writer holds its transaction open after its audit write; another writer of the same chain
    commits (and is sealed) meanwhile: with a chain lock held until commit it would wait for the first.
    Then many threads write concurrently: every event sealed, seq 1..n without a gap, in commit order
    where commits are ordered, and audit_verify passes."""
    chain = 424242
    written, second_done = threading.Event(), threading.Event()
    outcome = {}

    def holder():
        try:
            with transaction.atomic():
                outcome["held"] = _write(chain, 1, action="test.held")[0].pk
                written.set()
                outcome["saw_second_commit"] = second_done.wait(timeout=10)
        finally:
            connection.close()

    thread = threading.Thread(target=holder)
    thread.start()
    assert written.wait(timeout=10)
    started = time.monotonic()
    with transaction.atomic():
        second = _write(chain, 1, action="test.second")[0].pk
    second_done.set()
    waited = time.monotonic() - started
    thread.join(timeout=20)
    assert outcome["saw_second_commit"] and waited < 5, f"the second writer waited {waited:.1f} s"
    # Sealed in commit order: the later-written but earlier-committed event comes first.
    assert _chain(chain) == [(1, second), (2, outcome["held"])]

    def writer(i: int):
        try:
            for _ in range(5):
                with transaction.atomic():
                    _write(chain, 1 + i % 3)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    rows = _chain(chain)
    assert len(rows) == 2 + 5 * sum(1 + i % 3 for i in range(8))
    assert [seq for seq, _ in rows] == list(range(1, len(rows) + 1))
    result = audit.audit_verify()
    assert result.ok and result.pending == {} and chain not in result.unanchored
