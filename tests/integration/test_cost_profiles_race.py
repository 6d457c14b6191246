"""Cost profiles under concurrency (real transactions, threads): rates for the same instant added at
once give one row; a roll-up closing hours while rates for them are being added wins, and the rates
are refused (closed hours keep the rates they were charged at)."""

import datetime as dt
import threading

import pytest
from django.db import connection, transaction
from django.utils import timezone

from billing import cost_profiles
from billing.models import CostProfile, RollupState
from paas.errors import ApplicationError
from tests.factories import make_operator, make_synced_cluster
from tests.support.wait import lock_waiters, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def _run(call, results: dict, key: str, barrier: threading.Barrier | None = None):
    try:
        if barrier is not None:
            barrier.wait()
        results[key] = call()
    except ApplicationError as exc:
        results[key] = exc
    except Exception as exc:  # any other failure fails the test below
        results[key] = repr(exc)
    finally:
        connection.close()


def test_rates_for_the_same_instant_added_at_once_give_one_row():
    operator = make_operator(username="race-op")
    cluster = make_synced_cluster(name="race-rated")
    start = timezone.now().replace(microsecond=0) + dt.timedelta(hours=1)
    results, barrier = {}, threading.Barrier(6)

    def add(i: int):
        return cost_profiles.cost_profile_set(
            actor=operator, cluster=cluster, effective_from=start, currency="USD", cpu_hour=f"0.0{i}"
        )

    threads = [
        threading.Thread(target=_run, args=(lambda i=i: add(i), results, i, barrier)) for i in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    made = [r for r in results.values() if isinstance(r, CostProfile)]
    refused = [r for r in results.values() if isinstance(r, ApplicationError)]
    assert len(made) == 1 and len(refused) == 5, results
    assert all("effective_from" in r.fields or r.status == 409 for r in refused), results
    assert CostProfile.objects.filter(cluster=cluster).count() == 1


def test_a_rollup_closing_the_hours_first_wins():
    operator = make_operator(username="race-op2")
    cluster = make_synced_cluster(name="race-rated2")
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    RollupState.objects.create(name="hourly", complete_until=hour - dt.timedelta(hours=3))
    locked, release, results = threading.Event(), threading.Event(), {}

    def rollup_advances():
        # as a roll-up does: the state row locked while the hours are written, then moved on
        with transaction.atomic():
            state = RollupState.objects.select_for_update().get(name="hourly")
            locked.set()
            release.wait(timeout=30)
            state.complete_until = hour
            state.save(update_fields=["complete_until"])
        return "advanced"

    def add_rates():
        return cost_profiles.cost_profile_set(
            actor=operator,
            cluster=cluster,
            effective_from=hour - dt.timedelta(hours=2),  # open when asked, closed when the roll-up commits
            currency="USD",
            cpu_hour="0.05",
        )

    rollup = threading.Thread(target=_run, args=(rollup_advances, results, "rollup"))
    rollup.start()
    assert locked.wait(timeout=30)
    adder = threading.Thread(target=_run, args=(add_rates, results, "rates"))
    adder.start()

    wait_for(lambda: lock_waiters() > 0, what="the rates to wait for the roll-up's lock")
    release.set()
    rollup.join()
    adder.join()
    assert results["rollup"] == "advanced", results
    refused = results["rates"]
    assert isinstance(refused, ApplicationError) and "rolled up" in str(refused.fields), results
    assert not CostProfile.objects.filter(cluster=cluster).exists()
