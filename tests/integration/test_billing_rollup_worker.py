"""The roll-up in real worker processes (``manage.py billing_rollup``) on committed data: a worker killed
mid-roll-up loses and doubles nothing, and a second roll-up while one runs does nothing at all.

The worker is stopped deterministically inside the transaction of a chosen hour (after writing that
hour's records, before committing them) by the roll-up's test-only gate (``billing.rollup.GATE_ENV``):
it writes a file there and waits for another, which the test polls for; never a fixed sleep.
"""

import datetime as dt
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.utils import timezone

from billing import rollup
from billing.models import Meter, RollupState, UsageRecord
from billing.selectors import existing_seconds, seconds_by_meter
from tests.support.billing import launch_at, move, priced_setup, usage_rows
from tests.support.wait import wait_for

ROOT = Path(__file__).resolve().parents[2]


def _history() -> tuple[dt.datetime, list[Meter]]:
    """Six instances started, stopped and deleted at ragged instants over the 20 hours from 30 hours
    ago, all gone 10 hours ago: (the first metered hour, their meters)."""
    first = rollup.hour_start(timezone.now()) - dt.timedelta(hours=30)
    _op, _admin, project, owner, profile, _c = priced_setup("killed", nodes=2)
    rng = random.Random(16)
    meters = []
    for n in range(6):
        moment = first + dt.timedelta(seconds=rng.randrange(0, 3600 * 4) + rng.random())
        instance = launch_at(owner=owner, project=project, profile=profile, name=f"i{n}", at=moment)
        for state in (
            "provisioning",
            "ready",
            "provisioning",
            "stopped",
            "provisioning",
            "ready",
            "deleting",
        ):
            moment += dt.timedelta(seconds=rng.randrange(60, 2 * 3600) + rng.random())
            move(instance, state, at=moment)
        move(instance, "deleted", at=moment + dt.timedelta(seconds=rng.randrange(1, 600)))
        meters.append(Meter.objects.get(instance_key=f"compute:{instance.pk}"))
    return rollup.hour_start(min(m.created_at for m in meters)), meters


def _worker(gate: str = "") -> subprocess.Popen:
    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "DJANGO_SETTINGS_MODULE": "paas.settings.test",
    }
    env.pop(rollup.GATE_ENV, None)
    if gate:
        env[rollup.GATE_ENV] = gate
    return subprocess.Popen(
        [sys.executable, "manage.py", "billing_rollup"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _blocked(worker: subprocess.Popen, gate_dir: Path) -> None:
    """Wait until ``worker`` is held at its gate (failing early if it died)."""

    def alive():
        if worker.poll() is not None:
            raise AssertionError(f"the worker ended early: {worker.communicate()}")

    wait_for((gate_dir / "blocked").exists, 120, 0.05, "the worker at its gate", check=alive)


def _roll_when_free() -> dict:
    """Roll up in this process once the killed worker's session is gone (PostgreSQL ends it on its own)."""

    def attempt():
        summary = rollup.rollup_pending()
        return None if summary["busy"] else summary

    return wait_for(attempt, 30, 0.05, "the killed worker's lock released")


def _clean_run() -> list[dict]:
    """The records one uninterrupted roll-up from scratch writes."""
    UsageRecord.objects.all().delete()
    RollupState.objects.all().delete()
    assert not rollup.rollup_pending()["busy"]
    return usage_rows()


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_rollup_loses_and_doubles_nothing(tmp_path):
    first, meters = _history()
    worker = _worker(f"{tmp_path}:10")  # held inside the transaction of its 11th hour
    try:
        _blocked(worker, tmp_path)
        # ten hours committed, the eleventh written but not committed
        assert RollupState.objects.get(name="hourly").complete_until == first + dt.timedelta(hours=10)
        assert {r["hour"] for r in usage_rows()} <= {first + dt.timedelta(hours=n) for n in range(10)}
        assert usage_rows(hour__gte=first + dt.timedelta(hours=10)) == []
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=30)
    assert worker.returncode == -signal.SIGKILL
    resumed = _roll_when_free()
    assert resumed["hours"] > 0
    state = RollupState.objects.get(name="hourly")
    # only the unfinished hours were rolled up again: from the eleventh on
    assert state.complete_until == first + dt.timedelta(hours=10 + resumed["hours"])
    after = usage_rows()
    # nothing lost: the records add up to the intervals' figures over the whole history
    start, end = first, state.complete_until
    figures = seconds_by_meter([m.pk for m in meters], start=start, end=end)
    for meter in meters:
        rows = [r for r in after if r["meter_id"] == meter.pk]
        for kind in ("running", "stopped", "deleting"):
            assert sum(r[f"{kind}_seconds"] for r in rows) == figures[meter.pk][kind] > 0
        assert sum(r["existing_seconds"] for r in rows) == existing_seconds(
            meter, start=start, end=end, now=end
        )
    # nothing doubled or different: the same rows as one uninterrupted run
    assert after == _clean_run()


@pytest.mark.django_db(transaction=True)
def test_a_second_rollup_while_one_runs_does_nothing(tmp_path):
    first, _meters = _history()
    worker = _worker(f"{tmp_path}:3")
    try:
        _blocked(worker, tmp_path)
        assert rollup.rollup_pending()["busy"] is True
        assert rollup.rollup_range(first, first + dt.timedelta(hours=5))["busy"] is True
        with pytest.raises(CommandError, match="Another usage roll-up is running"):
            call_command("billing_rollup")
        assert RollupState.objects.get(name="hourly").complete_until == first + dt.timedelta(hours=3)
        (tmp_path / "release").touch()
        out, err = worker.communicate(timeout=120)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=30)
    assert worker.returncode == 0, err
    assert '"hours": ' in out
    after = usage_rows()
    assert after and after == _clean_run()
