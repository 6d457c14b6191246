"""The warm-pool quota as a counter (``instances.pool_quota``), on PostgreSQL with real transactions:
the loop's provisioning takes the pool's usage row with one conditional UPDATE against ``max_gpus``
and rolls its batch back when refused (a concurrent raise of the row, in a thread, forces it); two
takes at once never pass the quota; a pool without a row starts from the re-sum of its standbys (an
upgrade, a bulk import), as the migration's backfill does; and the drift check reports a row that
differs from its standbys and repairs it. The claim's and the deletion's give-back are checked where
those paths are tested (``test_warm_pool_claims``, ``test_warm_pool_deployer``)."""

import importlib
import threading
import uuid

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.utils import timezone
from django_q.models import OrmQ

from instances import capacity, pool_loop, pool_quota, pools
from instances.counter_models import WarmPoolUsage
from instances.counters import counters_check
from instances.models import StandbyInstance, WarmPool
from instances.quota import profile_totals
from instances.selectors import reservations
from paas.models import AuditEvent
from tests.factories import make_synced_cluster
from tests.integration.test_warm_pool_loop import default_pool, gpus, make_ready, standing, system_profile
from tests.support.wait import lock_waiters, wait_for

S = StandbyInstance.State
ONE_GPU = 28  # GPU units


def held(pool) -> int | None:
    row = WarmPoolUsage.objects.filter(pool=pool).first()
    return row.gpu_units if row else None


def deploys() -> int:
    return sum(1 for row in OrmQ.objects.all() if row.task.get("func") == "instances.tasks.standby_deploy")


def _release_once_waiting(release: threading.Event, threads: list[threading.Thread], *, what: str) -> None:
    """Once a statement is seen waiting on a pool's usage row, let the holder go and join everyone."""
    try:
        wait_for(lambda: lock_waiters("%instances_warmpoolusage%") >= 1, timeout=30, what=what)
    finally:
        release.set()
        for thread in threads:
            thread.join(60)


def _holding(
    sql: str, params: list, *, locked: threading.Event, release: threading.Event
) -> threading.Thread:
    """A transaction in a thread that runs ``sql`` and stays open until ``release``."""

    def run():
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(sql, params)
                locked.set()
                release.wait(30)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_the_loop_counts_what_it_provisions_against_the_pool_quota(world, django_capture_on_commit_callbacks):
    make_synced_cluster(name="gpu-a", nodes=2)
    profile = system_profile(world.operator, size=9, groups=gpus(2))
    pool_loop.ensure_default_pools()
    pool = default_pool(profile)
    pools.pool_update(actor=world.operator, pool=pool, max_gpus=5)
    with django_capture_on_commit_callbacks(execute=True):
        pool_loop.converge()
    pool.refresh_from_db()
    assert len(standing(pool)) == 2 and held(pool) == 4 * ONE_GPU  # two pairs; a third would be 6 > 5
    assert pool.status_reason == "pool quota 5 GPUs allows 2 of 9"
    assert counters_check() == []
    # Retiring standbys still hold their GPUs until their namespace is gone: nothing new is made.
    StandbyInstance.objects.filter(pool=pool).update(state=S.RETIRING)
    with django_capture_on_commit_callbacks(execute=True):
        pool_loop.converge()
    assert standing(pool) == [] and held(pool) == 4 * ONE_GPU
    assert WarmPool.objects.get(pk=pool.pk).status_reason == (
        "pool quota 5 GPUs allows 2 of 9 (retiring standby instances still hold their GPUs)"
    )


@pytest.mark.django_db(transaction=True)
def test_a_refused_take_rolls_the_loops_batch_back(world):
    """The loop reads the row (no lock), provisions a batch, then takes: a transaction that raised the
    row meanwhile (held open until the loop's take is seen waiting on it) makes the take refuse, and
    the batch (standbys, cluster reservations, enqueued deploys) rolls back with it."""
    cluster = make_synced_cluster(name="gpu-a", nodes=2)
    profile = system_profile(world.operator, size=2, groups=gpus(1))
    pool_loop.ensure_default_pools()
    pool = default_pool(profile)
    pools.pool_update(actor=world.operator, pool=pool, max_gpus=4)
    pool_loop.converge()
    make_ready(pool)
    assert len(standing(pool)) == 2 and held(pool) == 2 * ONE_GPU
    queued, reserved = deploys(), reservations()[cluster.pk].gpus
    assert reserved == {"A100-SXM4-40GB": 2}
    pools.pool_update(actor=world.operator, pool=pool, desired=4)  # room for two more (4 GPUs)

    locked, release = threading.Event(), threading.Event()
    raiser = _holding(
        "UPDATE instances_warmpoolusage SET gpu_units = gpu_units + %s WHERE pool_id = %s",
        [2 * ONE_GPU, pool.pk],
        locked=locked,
        release=release,
    )
    assert locked.wait(30)
    statuses, errors = {}, []

    def loop():
        try:
            statuses.update(pool_loop.converge(pool_id=pool.pk))
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    looper = threading.Thread(target=loop)
    looper.start()
    _release_once_waiting(release, [raiser, looper], what="the loop's take waiting on the row")
    assert errors == [] and statuses[pool.pk] == "short"
    pool.refresh_from_db()
    assert pool.status_reason == (
        "pool quota 4 GPUs refused 2 more standby instances: the pool's usage row disagrees with its "
        "standbys (the drift check reports it)"
    )
    assert len(standing(pool)) == 2 and StandbyInstance.objects.filter(pool=pool).count() == 2
    assert deploys() == queued and reservations()[cluster.pk].gpus == reserved
    assert capacity.capacity_drift() == []
    assert held(pool) == 4 * ONE_GPU  # the raise, not the refused batch
    # The drift check says so and repairs it; the next pass makes the two.
    lines = counters_check(fix=True)
    assert lines == [f"pool quota: Warm pool {pool}: usage row says 4 GPUs, its standby instances hold 2."]
    assert held(pool) == 2 * ONE_GPU
    pool_loop.converge(pool_id=pool.pk)
    assert len(standing(pool)) == 4 and held(pool) == 4 * ONE_GPU and counters_check() == []


@pytest.mark.django_db(transaction=True)
def test_two_takes_at_once_never_pass_the_pool_quota(world):
    """The second take waits for the first's row lock, then re-checks the quota against the row as
    the first left it (READ COMMITTED re-evaluation): refused."""
    make_synced_cluster(name="gpu-a", nodes=1)
    profile = system_profile(world.operator, size=1, groups=gpus(1))
    pool_loop.ensure_default_pools()
    pool = default_pool(profile)
    pools.pool_update(actor=world.operator, pool=pool, max_gpus=1)
    assert pool_quota.pool_held(pool.pk) == 0  # (no standby yet: the row starts at zero)
    first_in, release, results = threading.Event(), threading.Event(), {}

    def take(name: str, hold: bool):
        try:
            with transaction.atomic():
                results[name] = pool_quota.pool_take(pool_id=pool.pk, units=ONE_GPU)
                if hold:
                    first_in.set()
                    release.wait(30)
        finally:
            connection.close()

    first = threading.Thread(target=take, args=("first", True))
    first.start()
    assert first_in.wait(30)
    second = threading.Thread(target=take, args=("second", False))
    second.start()
    _release_once_waiting(release, [first, second], what="the second take waiting on the row")
    assert results == {"first": True, "second": False} and held(pool) == ONE_GPU
    assert pool_quota.pool_take(pool_id=pool.pk, units=0)  # nothing asked: always
    WarmPool.objects.filter(pk=pool.pk).update(max_gpus=None)  # no quota: only the clusters limit it
    with transaction.atomic():
        assert pool_quota.pool_take(pool_id=pool.pk, units=10 * ONE_GPU)
    assert held(pool) == 11 * ONE_GPU


def _written_directly(pool, profile, cluster, states) -> list[StandbyInstance]:
    totals = profile_totals(profile, cluster_id=cluster.pk)
    return [
        StandbyInstance.objects.create(
            pool=pool,
            profile=profile,
            snapshot={},
            snapshot_digest="old",
            cluster=cluster,
            namespace=f"w-direct-{uuid.uuid4().hex[:12]}",
            placement={},
            state=state,
            ready_at=timezone.now(),
            **totals,
        )
        for i, state in enumerate(states)
    ]


def test_a_pool_without_a_row_starts_from_its_standbys(world, django_capture_on_commit_callbacks):
    cluster = make_synced_cluster(name="gpu-a", nodes=2)
    profile = system_profile(world.operator, size=5, groups=gpus(1))
    pool_loop.ensure_default_pools()
    pool = default_pool(profile)
    pools.pool_update(actor=world.operator, pool=pool, max_gpus=3)
    # Written directly (a bulk import): two holding, one claimed and one deleted holding nothing.
    _written_directly(pool, profile, cluster, [S.RETIRING, S.FAILED, S.CLAIMED, S.DELETED])
    capacity.capacity_rebuild()
    assert held(pool) is None
    assert counters_check() == [
        f"pool quota: Warm pool {pool}: no usage row, its standby instances hold 2 GPUs (made on the "
        "loop's next pass, or by the rebuild)."
    ]
    with django_capture_on_commit_callbacks(execute=True):
        pool_loop.converge()
    pool.refresh_from_db()
    assert held(pool) == 3 * ONE_GPU and len(standing(pool)) == 1  # the third GPU, no more
    assert pool.status_reason.startswith("pool quota 3 GPUs allows 3 of 5")
    assert counters_check() == []


def test_the_migration_fills_each_pools_row_from_its_standbys(world):
    cluster = make_synced_cluster(name="gpu-a", nodes=2)
    profile = system_profile(world.operator, size=1, groups=gpus(2))
    pool_loop.ensure_default_pools()
    pool = default_pool(profile)
    empty = pools.pool_create(actor=world.operator, profile=profile, cluster=cluster, desired=0)
    _written_directly(pool, profile, cluster, [S.PROVISIONING, S.READY, S.CLAIMED, S.DELETED])
    _written_directly(None, profile, cluster, [S.RETIRING])  # a deleted pool's: nobody's quota
    WarmPoolUsage.objects.all().delete()
    migration = importlib.import_module("instances.migrations.0014_warm_pool_usage")
    migration.backfill(apps, None)
    assert (held(pool), held(empty)) == (4 * ONE_GPU, 0)  # two holding standbys of two GPUs
    assert pool_quota.pool_quota_drift() == []


def test_drift_is_reported_by_the_check_and_the_command_and_repaired(
    world, django_capture_on_commit_callbacks
):
    cluster = make_synced_cluster(name="gpu-a", nodes=1)
    profile = system_profile(world.operator, size=1, groups=gpus(1))
    pool_loop.ensure_default_pools()
    pools.pool_update(actor=world.operator, pool=default_pool(profile), enabled=False)
    pool = pools.pool_create(actor=world.operator, profile=profile, cluster=cluster, desired=2)
    with django_capture_on_commit_callbacks(execute=True):
        pool_loop.converge()
    assert held(pool) == 2 * ONE_GPU and held(default_pool(profile)) is None  # (nothing made there)
    WarmPoolUsage.objects.filter(pool=pool).update(gpu_units=ONE_GPU // 7)  # tampered: 1/7 of a GPU
    line = f"pool quota: Warm pool {pool}: usage row says 0.14 (1/7) GPUs, its standby instances hold 2."
    with pytest.raises(CommandError, match="1 drifting rows"):
        call_command("usage_recount")
    call_command("usage_recount", "--fix")
    assert held(pool) == 2 * ONE_GPU and pool_quota.pool_quota_drift() == []
    event = AuditEvent.objects.get(action="usage_counters.recount")
    assert event.details == {"drift": [line], "rows": 1}
    assert pool_quota.pool_quota_rebuild() == 0  # nothing left to change
    # A deleted pool's row goes with it; its standbys count nowhere.
    with django_capture_on_commit_callbacks(execute=True):
        pools.pool_delete(actor=world.operator, pool=pool)
    assert not WarmPoolUsage.objects.filter(pool_id=pool.pk).exists() and pool_quota.pool_quota_drift() == []
