"""Two ``manage.py qcluster`` processes on one database, as two worker replicas run in production:
schedules run exactly once however many clusters run them, and SIGTERM lets the running task finish.

django-q2's scheduler (in each cluster's sentinel, every ~30 s) takes the due schedules with ``SELECT
... FOR UPDATE`` and enqueues their tasks in the same transaction as it moves ``next_run`` on; on
PostgreSQL a second cluster blocked on those rows re-reads them once the first commits and finds them
no longer due. The test makes the two meet there: it holds the rows itself until both clusters wait.
"""

from __future__ import annotations

import signal
from collections import Counter
from datetime import timedelta

import psycopg
import pytest
from django.utils import timezone
from django_q.models import OrmQ, Schedule, Success
from django_q.tasks import async_task

from tests.support import processes
from tests.support.wait import wait_for

ONCE, EVERY_MINUTE = 40, 5


@pytest.fixture(scope="module")
def clusters(django_db_setup, tmp_path_factory):
    """Two clusters (one worker process each), started together; killed with their groups at the end."""
    logs = tmp_path_factory.mktemp("workers")
    started = [processes.qcluster(name, logs, PAAS_WORKERS="1") for name in ("q-one", "q-two")]
    try:
        yield started
    finally:
        for cluster in started:
            cluster.kill()


def _waiting_on_schedules(dsn: str) -> set[str]:
    """The clusters (by ``application_name``) whose scheduler waits for a lock on the schedules."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT application_name FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query ILIKE '%django_q_schedule%FOR UPDATE%'"
        ).fetchall()
    return {name for (name,) in rows}


def test_schedules_run_exactly_once_with_two_clusters(transactional_db, clusters, tmp_path):
    runs = tmp_path / "runs.txt"
    due = timezone.now() - timedelta(seconds=1)
    for n in range(ONCE):
        Schedule.objects.create(
            name=f"once-{n}",
            func="tests.support.tasks.record_run",
            args=repr((str(runs), f"once-{n}")),
            schedule_type=Schedule.ONCE,
            repeats=-1,
            next_run=due,
        )
    for n in range(EVERY_MINUTE):
        Schedule.objects.create(
            name=f"minutely-{n}",
            func="tests.support.tasks.record_run",
            args=repr((str(runs), f"minutely-{n}")),
            schedule_type=Schedule.MINUTES,
            minutes=1,
            repeats=-1,
            next_run=due,
            intended_date_kwarg="intended",
        )
    dsn = processes.database_url()
    # Hold every due schedule's row until both clusters' schedulers wait for them, then let them race.
    with psycopg.connect(dsn) as holder:
        holder.execute("SELECT id FROM django_q_schedule FOR UPDATE").fetchall()
        wait_for(
            lambda: _waiting_on_schedules(dsn) >= {"q-one", "q-two"},
            timeout=120,
            interval=0.2,
            what="both clusters' schedulers waiting on the schedules",
            check=lambda: [c.alive() or pytest.fail(f"{c.name} died:\n{c.output()}") for c in clusters],
        )
        holder.rollback()

    def recorded() -> Counter:
        return Counter(runs.read_text().splitlines()) if runs.exists() else Counter()

    wait_for(
        lambda: len(recorded()) >= ONCE + EVERY_MINUTE,
        timeout=90,
        what="every due schedule's task run",
    )
    wait_for(lambda: not OrmQ.objects.exists(), timeout=30, what="the queue drained")
    counts = recorded()
    assert [line for line, count in counts.items() if count > 1] == [], "a schedule ran twice"
    assert {line.split()[0] for line in counts} == {f"once-{n}" for n in range(ONCE)} | {
        f"minutely-{n}" for n in range(EVERY_MINUTE)
    }
    assert not Schedule.objects.filter(name__startswith="once-").exists()  # done, and deleted
    for schedule in Schedule.objects.filter(name__startswith="minutely-"):
        assert schedule.next_run > timezone.now(), "moved on to its next minute"
    assert Success.objects.filter(func="tests.support.tasks.record_run").count() == ONCE + EVERY_MINUTE


def test_sigterm_lets_the_running_task_finish(transactional_db, clusters, tmp_path):
    """A stopped worker replica (a rolling update, a drained node): the task it runs ends normally, is
    saved as a success and taken off the queue; it is not run again by the other cluster."""
    record = tmp_path / "slow.txt"
    task_id = async_task("tests.support.tasks.record_slowly", str(record), "slow", 5)
    started = wait_for(
        lambda: record.exists() and record.read_text().split(),
        timeout=90,
        what="the slow task started",
    )
    worker_pid = int(started[2])
    (running,) = [c for c in clusters if c.member(worker_pid)]
    running.process.send_signal(signal.SIGTERM)  # to the cluster's main process, as Kubernetes does
    assert running.process.wait(timeout=60) == 0, running.output()
    assert record.read_text().splitlines() == [f"start slow {worker_pid}", f"end slow {worker_pid}"]
    assert Success.objects.filter(id=task_id).exists()
    assert not OrmQ.objects.exists(), "acknowledged: off the queue, nothing to deliver again"
    assert "has stopped" in running.output()
