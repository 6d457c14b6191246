"""The warm pools' control loop and the operators' pool services, on PostgreSQL: the loop converges
to the capacity in force and back down, schedules change it at their times, the pool quota and a
full cluster stop it with the reason, a profile edit retires the old standbys, the surplus retired
is never a standby a launch is claiming, two loops at once never over-provision, and only operators
manage pools (with field messages for bad input).

The loop's decisions are checked in the rows it writes and the tasks it enqueues (django-q2's ORM
broker); the worker side (standby_deploy/standby_delete) is the pool deployer's and is simulated here
by setting the states it would set."""

import threading
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection, transaction
from django.utils import timezone
from django_q.models import OrmQ

from catalog import services as catalog_services
from catalog.models import ComputeProfile
from instances import capacity, pool_claims, pool_loop, pool_quota, pools
from instances.models import PoolSchedule, StandbyInstance, WarmPool
from instances.selectors import reservations
from inventory.models import Cluster, Datacenter
from paas.errors import Forbidden, ValidationFailed
from paas.models import AuditEvent
from tests.factories import ONE_A100, make_profile, make_synced_cluster
from tests.support.instances import launch

MANIFESTS = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ instance.name }}-info\ndata:\n  a: b\n"
PARIS = ZoneInfo("Europe/Paris")
MONDAY_9 = datetime(2026, 6, 1, 9, 0, tzinfo=PARIS)
S = StandbyInstance.State
CLUSTER_DETAILS = {
    "name": "cluster_details",
    "type": "text",
    "required": False,
    "default": None,
    "options": [],
}


def gpus(count: int) -> list[dict]:
    return [{"gpu_model": "A100-SXM4-40GB", "gpu_count": count, "cpu_cores": "4", "memory_gib": 16}]


def system_profile(
    operator, *, name="pooled", size=3, groups=None, strategy="warm_pool", **data
) -> ComputeProfile:
    """A published system profile with the warm-pool strategy, as launches see it (from the database)."""
    profile = make_profile(
        actor=operator,
        project=None,
        name=name,
        template=f"t-{name}",
        manifests=MANIFESTS,
        inputs=[CLUSTER_DETAILS],
        resource_groups=groups or ONE_A100,
        allocation_strategy=strategy,
        warm_pool_size=size,
        **data,
    )
    return ComputeProfile.objects.get(pk=profile.pk)


def converge(capture, **kwargs) -> dict:
    with capture(execute=True):
        return pool_loop.converge(**kwargs)


def tasks(func: str) -> list[tuple]:
    return sorted(
        (row.task["args"][0], row.key)
        for row in OrmQ.objects.all()
        if row.task.get("func") == f"instances.tasks.{func}"
    )


def standing(pool) -> list[StandbyInstance]:
    return list(pool.standbys.filter(state__in=(S.PROVISIONING, S.READY)).order_by("created_at", "pk"))


def make_ready(pool) -> None:
    """What the worker's standby_deploy leaves behind."""
    pool.standbys.filter(state=S.PROVISIONING).update(state=S.READY, ready_at=timezone.now())


def default_pool(profile) -> WarmPool:
    return WarmPool.objects.get(profile=profile, datacenter__isnull=True, cluster__isnull=True)


@pytest.fixture
def cluster(db):
    return make_synced_cluster(name="gpu-a", nodes=2)  # 16 A100s


def test_loop_converges_up_to_the_target_and_back_down(world, cluster, django_capture_on_commit_callbacks):
    profile = system_profile(world.operator, size=3)
    statuses = converge(django_capture_on_commit_callbacks)
    pool = default_pool(profile)
    assert (pool.desired, pool.max_gpus, statuses[pool.pk]) == (3, None, "converging")
    made = standing(pool)
    assert [s.state for s in made] == ["provisioning"] * 3
    digest = pool_claims.snapshot_digest(pool_claims.launch_snapshot(profile))
    for standby in made:
        assert standby.namespace.startswith("w-pooled-") and len(standby.namespace) == len("w-pooled-") + 6
        assert (standby.cluster, standby.snapshot_digest, standby.profile) == (cluster, digest, profile)
        assert (standby.gpus, standby.gpu_units, standby.gpus_by_model) == (1, 28, {"A100-SXM4-40GB": 1})
        assert standby.placement["cluster"] == "gpu-a"
    assert tasks("standby_deploy") == [(s.pk, "default") for s in made]
    event = AuditEvent.objects.filter(action="warm_pool.provision").latest("pk")
    assert event.org_id is None and event.details["count"] == 3 and event.details["clusters"] == {"gpu-a": 3}

    # The worker made them ready: at target; the next pass changes nothing (idempotent).
    make_ready(pool)
    assert converge(django_capture_on_commit_callbacks)[pool.pk] == "at_target"
    assert converge(django_capture_on_commit_callbacks)[pool.pk] == "at_target"
    assert len(tasks("standby_deploy")) == 3 and pool.standbys.count() == 3

    # Down to 1 through the pool service: the profile's warm_pool_size follows; the oldest two go.
    pools.pool_update(actor=world.operator, pool=pool, desired=1)
    profile.refresh_from_db()
    assert profile.warm_pool_size == 1
    assert converge(django_capture_on_commit_callbacks)[pool.pk] == "at_target"
    assert [s.pk for s in standing(pool)] == [made[2].pk]
    retired = pool.standbys.filter(state=S.RETIRING).order_by("pk")
    assert [s.pk for s in retired] == [made[0].pk, made[1].pk]
    assert {s.state_reason for s in retired} == {"Retired: surplus."}
    assert tasks("standby_delete") == [(made[0].pk, "default"), (made[1].pk, "default")]
    assert AuditEvent.objects.filter(action="warm_pool.retire").latest("pk").details["reasons"] == {
        "surplus": 2
    }

    # And back up: a profile edit of warm_pool_size sets the default pool (and retires nothing).
    catalog_services.profile_update(actor=world.operator, profile=profile, warm_pool_size=2)
    assert converge(django_capture_on_commit_callbacks)[pool.pk] == "converging"
    assert len(standing(pool)) == 2 and made[2] in standing(pool)


def test_schedules_change_the_target_at_their_times(world, cluster, django_capture_on_commit_callbacks):
    profile = system_profile(world.operator, size=2)
    converge(django_capture_on_commit_callbacks, now=MONDAY_9 - timedelta(hours=2))
    pool = default_pool(profile)
    for days, start, end, desired, position in (
        ([0, 1, 2, 3, 4], "08:00", "20:00", 5, 0),
        ([5, 6], "00:00", "00:00", 1, 1),
    ):
        pools.schedule_create(
            actor=world.operator,
            pool=pool,
            name="office" if desired == 5 else "weekend",
            days=days,
            start=start,
            end=end,
            timezone="Europe/Paris",
            desired=desired,
            position=position,
        )
    make_ready(pool)
    assert len(standing(pool)) == 2
    converge(django_capture_on_commit_callbacks, now=MONDAY_9 - timedelta(minutes=61))  # 07:59
    assert len(standing(pool)) == 2
    converge(django_capture_on_commit_callbacks, now=MONDAY_9)
    assert len(standing(pool)) == 5
    make_ready(pool)
    converge(django_capture_on_commit_callbacks, now=MONDAY_9.replace(hour=20))  # 20:00: the pool's own 2
    assert len(standing(pool)) == 2
    converge(django_capture_on_commit_callbacks, now=datetime(2026, 6, 6, 12, tzinfo=PARIS))  # Saturday
    assert len(standing(pool)) == 1
    # Given in UTC, read in Paris: Monday 08:00 CEST is 06:00 UTC.
    converge(django_capture_on_commit_callbacks, now=datetime(2026, 6, 8, 6, 0, tzinfo=ZoneInfo("UTC")))
    assert len(standing(pool)) == 5


def test_pool_quota_stops_the_loop_with_the_reason(world, cluster, django_capture_on_commit_callbacks):
    profile = system_profile(world.operator, size=9, groups=gpus(2))
    converge(django_capture_on_commit_callbacks)
    pool = default_pool(profile)
    pool.standbys.all().delete()
    capacity.capacity_rebuild()  # deleted directly: their GPUs given back, as their deletion would
    pool_quota.pool_quota_rebuild()  # (to the cluster and to the pool quota)
    pools.pool_update(actor=world.operator, pool=pool, max_gpus=4)
    assert converge(django_capture_on_commit_callbacks)[pool.pk] == "short"
    pool.refresh_from_db()
    assert pool.status_reason == "pool quota 4 GPUs allows 2 of 9"
    assert len(standing(pool)) == 2
    make_ready(pool)
    assert converge(django_capture_on_commit_callbacks)[pool.pk] == "short"  # still, and no more made
    assert len(standing(pool)) == 2


def test_a_full_cluster_stops_the_loop_and_tenants_instances_come_first(
    world, cluster, django_capture_on_commit_callbacks
):
    tenant_size = make_profile(
        actor=world.a.users["org_admin"],
        project=world.a.project,
        manifests=MANIFESTS,
        name="big",
        resource_groups=gpus(8),
    )
    launch(world, tenant_size, "tenant-one")  # 8 of the 16 A100s are the tenant's
    launch(world, tenant_size, "tenant-two")  # and the other 8
    profile = system_profile(world.operator, size=3)
    assert converge(django_capture_on_commit_callbacks)[default_pool(profile).pk] == "short"
    pool = default_pool(profile)
    assert standing(pool) == []
    assert pool.status_reason.startswith("no capacity for 3 more of 3: No cluster fits:")
    assert "gpu-a" in pool.status_reason and "A100" in pool.status_reason


def test_a_pool_never_holds_more_gpus_than_its_clusters_have_free(
    world, cluster, django_capture_on_commit_callbacks
):
    tenant_size = make_profile(
        actor=world.a.users["org_admin"],
        project=world.a.project,
        manifests=MANIFESTS,
        name="big",
        resource_groups=gpus(5),
    )
    launch(world, tenant_size, "tenant")  # 5 of 16 held by a tenant: 11 free
    other = make_synced_cluster(name="gpu-b", nodes=1)  # 8 more, outside the pool's scope
    small = system_profile(world.operator, name="small", size=9, groups=gpus(1))
    pair = system_profile(world.operator, name="pair", size=9, groups=gpus(2))
    for profile in (small, pair):  # scoped to gpu-a only: the default pools are switched off
        pools.pool_update(actor=world.operator, pool=_default(profile), enabled=False)
        pools.pool_create(actor=world.operator, profile=profile, cluster=cluster, desired=9)
    statuses = converge(django_capture_on_commit_callbacks)
    on_a = StandbyInstance.objects.filter(cluster=cluster, state=S.PROVISIONING)
    assert StandbyInstance.objects.filter(cluster=other).count() == 0
    held = sum(s.gpus for s in on_a)
    assert held <= 11 and held >= 10  # all the free GPUs, no more (9 singles + 1 pair = 11)
    assert reservations()[cluster.pk].gpus["A100-SXM4-40GB"] == 5 + held <= 16
    short = [p for p in WarmPool.objects.filter(cluster=cluster) if statuses[p.pk] == "short"]
    assert short and all("No cluster fits" in p.status_reason for p in short)
    # A tenant launch now misses capacity on gpu-a (the standbys hold it for real) but has gpu-b.
    assert launch(world, tenant_size, "later").cluster == other


def test_mig_slice_pools_hold_slices_and_count_them_against_the_pool_quota(
    world, django_capture_on_commit_callbacks
):
    from inventory.models import Node

    sliced = make_synced_cluster(name="mig-c", nodes=0)
    Node.objects.create(
        cluster=sliced,
        name="mig-node",
        gpu_product="NVIDIA-A100-SXM4-80GB",
        gpu_count=1,
        mig_capable=True,
        allocatable_mig={"mig-1g.10gb": 7},
        allocatable_cpu_millis=96_000,
        allocatable_memory_bytes=1024 * 2**30,
        ready=True,
        schedulable=True,
        synced_at=timezone.now(),
    )
    two_slices = [{"mig_profile": "1g.10gb", "mig_count": 2, "cpu_cores": "2", "memory_gib": 8}]
    profile = system_profile(world.operator, name="sliced", size=5, groups=two_slices)
    converge(django_capture_on_commit_callbacks)
    pool = default_pool(profile)
    made = standing(pool)
    assert len(made) == 3  # 7 slices: three standbys of two, the seventh slice is not enough for a fourth
    assert {(s.mig_slices["1g.10gb"], s.gpu_units, s.gpus) for s in made} == {(2, 8, 0)}
    assert pool.status == "short" and "No cluster fits" in pool.status_reason
    # A pool quota of 1 GPU = 28 units: three standbys of 2/7 GPU (24 units), never a fourth.
    pools.pool_update(actor=world.operator, pool=pool, max_gpus=1, desired=5)
    Node.objects.filter(name="mig-node").update(allocatable_mig={"mig-1g.10gb": 14})
    converge(django_capture_on_commit_callbacks)
    pool.refresh_from_db()
    assert len(standing(pool)) == 3 and pool.status_reason == "pool quota 1 GPUs allows 3 of 5"


def _default(profile):
    pool_loop.ensure_default_pools()
    return default_pool(profile)


def test_a_profile_edit_retires_the_old_standbys(world, cluster, django_capture_on_commit_callbacks):
    profile = system_profile(world.operator, size=2)
    converge(django_capture_on_commit_callbacks)
    pool = default_pool(profile)
    make_ready(pool)
    old = standing(pool)
    catalog_services.profile_update(actor=world.operator, profile=profile, cost_amount="2.5")
    profile.refresh_from_db()
    converge(django_capture_on_commit_callbacks)
    for standby in old:
        standby.refresh_from_db()
        assert (standby.state, standby.state_reason) == ("retiring", "Retired: profile changed.")
    new = standing(pool)
    digest = pool_claims.snapshot_digest(pool_claims.launch_snapshot(profile))
    assert len(new) == 2 and all(s.snapshot_digest == digest != old[0].snapshot_digest for s in new)
    assert AuditEvent.objects.filter(action="warm_pool.retire").latest("pk").details["reasons"] == {
        "profile changed": 2
    }
    # Unpublishing empties the pool and says why.
    catalog_services.profile_update(actor=world.operator, profile=profile, published=False)
    assert converge(django_capture_on_commit_callbacks)[pool.pk] == "disabled"
    pool.refresh_from_db()
    assert pool.status_reason == "profile unpublished" and standing(pool) == []


def test_tenant_profile_pool_waits_for_an_operator_quota(world, cluster, django_capture_on_commit_callbacks):
    profile = make_profile(
        actor=world.a.users["org_admin"],
        project=world.a.project,
        manifests=MANIFESTS,
        name="mine",
        resource_groups=ONE_A100,
    )
    catalog_services.profile_update(
        actor=world.a.users["org_admin"], profile=profile, allocation_strategy="warm_pool", warm_pool_size=2
    )
    assert converge(django_capture_on_commit_callbacks)[default_pool(profile).pk] == "short"
    pool = default_pool(profile)
    assert (pool.max_gpus, pool.status_reason) == (0, "tenant profile: an operator must set the pool quota")
    assert standing(pool) == []
    with pytest.raises(Forbidden):
        pools.pool_update(actor=world.a.users["org_admin"], pool=pool, max_gpus=2)
    pools.pool_update(actor=world.operator, pool=pool, max_gpus=2)
    converge(django_capture_on_commit_callbacks)
    assert len(standing(pool)) == 2


def test_silent_workers_are_redriven_then_given_up(
    world, cluster, settings, django_capture_on_commit_callbacks
):
    profile = system_profile(world.operator, size=2)
    converge(django_capture_on_commit_callbacks)
    pool = default_pool(profile)
    first, second = standing(pool)
    settings.INSTANCE_RUN_STALE_SECONDS = 60  # both silent since they were made, 90 and 100 s ago
    now = timezone.now()
    StandbyInstance.objects.filter(pk=first.pk).update(created_at=now - timedelta(seconds=90))
    StandbyInstance.objects.filter(pk=second.pk).update(
        created_at=now - timedelta(seconds=100), attempts=pool_loop.MAX_ATTEMPTS
    )
    converge(django_capture_on_commit_callbacks)
    assert tasks("standby_deploy").count((first.pk, "default")) == 2  # enqueued again
    second.refresh_from_db()
    assert second.state == "failed" and second.state_reason.startswith("Gave up")
    # The next pass retires the failed one, and while the last deploy failed only one probe at a time.
    settings.INSTANCE_RUN_STALE_SECONDS = 300
    StandbyInstance.objects.filter(pk=first.pk).update(state=S.FAILED, state_reason="ImagePullBackOff: nope")
    assert converge(django_capture_on_commit_callbacks)[pool.pk] == "short"
    pool.refresh_from_db()
    assert pool.status_reason == "a standby deploy failed: ImagePullBackOff: nope"
    assert len(standing(pool)) == 1
    assert set(pool.standbys.filter(state=S.RETIRING).values_list("pk", flat=True)) == {first.pk, second.pk}
    converge(django_capture_on_commit_callbacks)
    assert len(standing(pool)) == 1  # the probe is still provisioning: no second one yet
    make_ready(pool)
    converge(django_capture_on_commit_callbacks)
    assert len(standing(pool)) == 2  # a deploy worked: back to filling up


def test_pool_delete_retires_its_standbys(world, cluster, django_capture_on_commit_callbacks):
    profile = system_profile(world.operator, size=1)
    pool_loop.ensure_default_pools()
    scoped = pools.pool_create(actor=world.operator, profile=profile, cluster=cluster, desired=2)
    converge(django_capture_on_commit_callbacks)
    mine = standing(scoped)
    assert len(mine) == 2
    with django_capture_on_commit_callbacks(execute=True):
        pools.pool_delete(actor=world.operator, pool=scoped)
    converge(django_capture_on_commit_callbacks)
    for standby in mine:
        standby.refresh_from_db()
        assert (standby.pool, standby.state, standby.state_reason) == (
            None,
            "retiring",
            "Retired: pool deleted.",
        )


def test_a_pool_moved_to_another_cluster_rebuilds_there(world, cluster, django_capture_on_commit_callbacks):
    profile = system_profile(world.operator, size=1)
    pool_loop.ensure_default_pools()
    pools.pool_update(actor=world.operator, pool=default_pool(profile), enabled=False)
    scoped = pools.pool_create(actor=world.operator, profile=profile, cluster=cluster, desired=2)
    converge(django_capture_on_commit_callbacks)
    before = standing(scoped)
    assert {s.cluster for s in before} == {cluster}
    other = make_synced_cluster(name="gpu-b", nodes=1)
    pools.pool_update(actor=world.operator, pool=scoped, cluster=other)
    converge(django_capture_on_commit_callbacks)
    assert {s.cluster for s in standing(scoped)} == {other} and len(standing(scoped)) == 2
    assert set(StandbyInstance.objects.filter(state=S.RETIRING).values_list("pk", flat=True)) == {
        s.pk for s in before
    }
    assert AuditEvent.objects.filter(action="warm_pool.retire").latest("pk").details["reasons"] == {
        "outside the pool's scope": 2
    }


def test_pool_services_validate_and_only_operators_manage_pools(
    world, cluster, django_capture_on_commit_callbacks
):
    op = world.operator
    profile = system_profile(op, size=2, input_values={"cluster_details": "gpu-a"})
    other = make_synced_cluster(name="gpu-z")
    elsewhere = Datacenter.objects.create(
        name="dc-z", display_name="dc-z", kind="data_center", infrastructure_type="bare_metal"
    )
    Cluster.objects.filter(pk=other.pk).update(datacenter=elsewhere)

    def refused(call, **kwargs) -> dict:
        with pytest.raises(ValidationFailed) as error:
            call(actor=op, **kwargs)
        return {k: v[0] for k, v in error.value.fields.items()}

    assert (
        "not both"
        in refused(pools.pool_create, profile=profile, datacenter=elsewhere, cluster=cluster)["cluster"]
    )
    assert (
        "gpu-a (its cluster details)" in refused(pools.pool_create, profile=profile, cluster=other)["cluster"]
    )
    assert (
        "none of them is in the datacenter dc-z"
        in refused(pools.pool_create, profile=profile, datacenter=elsewhere)["datacenter"]
    )
    assert (
        refused(pools.pool_create, profile=profile, cluster=cluster, desired=-1)["desired"]
        == "Must not be negative."
    )
    assert (
        refused(pools.pool_create, profile=profile, cluster=cluster, max_gpus=-2)["max_gpus"]
        == "Must not be negative."
    )
    on_demand = system_profile(op, name="plain", size=0, strategy="on_demand")
    assert (
        "switch its allocation strategy to warm pool"
        in refused(pools.pool_create, profile=on_demand)["profile"]
    )

    scoped = pools.pool_create(actor=op, profile=profile, cluster=cluster, desired=1, max_gpus=4)
    assert (
        "already has a pool on gpu-a"
        in refused(pools.pool_create, profile=profile, cluster=cluster)["cluster"]
    )
    pool_loop.ensure_default_pools()
    default = default_pool(profile)
    assert "at least 1" in refused(pools.pool_update, pool=default, desired=0)["desired"]
    assert "scope" in refused(pools.pool_update, pool=default, cluster=cluster)["datacenter"]
    with pytest.raises(ValidationFailed):
        pools.pool_delete(actor=op, pool=default)

    schedule_args = {"pool": scoped, "days": [0], "start": "08:00", "end": "20:00", "desired": 3}
    assert (
        "Unknown time zone"
        in refused(pools.schedule_create, **schedule_args, timezone="Mars/Olympus")["timezone"]
    )
    assert "at least one day" in refused(pools.schedule_create, **(schedule_args | {"days": []}))["days"]
    assert (
        refused(pools.schedule_create, **(schedule_args | {"desired": -1}))["desired"]
        == "Must not be negative."
    )
    assert "HH:MM" in refused(pools.schedule_create, **(schedule_args | {"start": "8h"}))["start"]

    # Tenants, even their admins, manage no pool; nothing was written.
    for user in (world.a.users["org_admin"], world.a.users["paas_admin_org"], world.outsider):
        with pytest.raises(Forbidden):
            pools.pool_create(actor=user, profile=profile, datacenter=elsewhere)
        with pytest.raises(Forbidden):
            pools.pool_update(actor=user, pool=scoped, desired=5)
        with pytest.raises(Forbidden):
            pools.schedule_create(actor=user, timezone="UTC", **schedule_args)
        with pytest.raises(Forbidden):
            pools.pool_converge_now(actor=user, pool=scoped)
    assert WarmPool.objects.filter(profile=profile).count() == 2 and not PoolSchedule.objects.exists()

    # Operators' writes: audited on the platform chain, the loop enqueued on commit.
    OrmQ.objects.all().delete()
    with django_capture_on_commit_callbacks(execute=True):
        schedule = pools.schedule_create(actor=op, timezone="Europe/Paris", name="office", **schedule_args)
        pools.schedule_update(actor=op, schedule=schedule, days=[0, 1, 2, 3, 4])
        pools.pool_update(actor=op, pool=default, desired=4)
        pools.pool_converge_now(actor=op, pool=scoped)
        pools.schedule_delete(actor=op, schedule=schedule)
    assert [row.task["args"] for row in OrmQ.objects.order_by("pk")] == [
        (scoped.pk,),
        (scoped.pk,),
        (default.pk,),
        (scoped.pk,),
        (scoped.pk,),
    ]
    profile.refresh_from_db()
    assert profile.warm_pool_size == 4
    actions = list(
        AuditEvent.objects.filter(org__isnull=True, action__startswith="warm_pool.")
        .values_list("action", flat=True)
        .order_by("pk")
    )
    assert actions[-5:] == [
        "warm_pool.schedule_create",
        "warm_pool.schedule_update",
        "warm_pool.update",
        "warm_pool.converge",
        "warm_pool.schedule_delete",
    ]
    update = AuditEvent.objects.filter(action="warm_pool.schedule_update").get()
    assert update.details["rule"] == "Mon-Fri 08:00-20:00 Europe/Paris: 3"


# --- concurrency: real transactions on separate connections ----------------------------------------------


def _in_thread(target, *args) -> threading.Thread:
    def run():
        try:
            target(*args)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.django_db(transaction=True)
def test_surplus_retirement_never_takes_a_standby_being_claimed(world):
    cluster = make_synced_cluster(name="gpu-a", nodes=2)
    profile = system_profile(world.operator, size=3)
    pool_loop.converge()
    pool = default_pool(profile)
    make_ready(pool)
    oldest, middle, newest = standing(pool)
    locked, release = threading.Event(), threading.Event()

    def claimer():  # a launch's transaction that claimed the oldest and has not committed yet
        with transaction.atomic():
            digest = pool_claims.snapshot_digest(pool_claims.launch_snapshot(profile))
            claimed = pool_claims.claim(profile, org_id=world.a.org.pk, digest=digest)
            assert claimed.pk == oldest.pk
            locked.set()
            release.wait(30)

    thread = _in_thread(claimer)
    assert locked.wait(30)
    try:
        pools.pool_update(actor=world.operator, pool=pool, desired=2)
        pool_loop.converge()  # one surplus: the oldest is being claimed, so the next oldest goes
    finally:
        release.set()
        thread.join(30)
    states = {s.pk: s.state for s in pool.standbys.all()}
    assert states == {oldest.pk: "ready", middle.pk: "retiring", newest.pk: "ready"}
    assert StandbyInstance.objects.get(pk=middle.pk).cluster == cluster
    pool.refresh_from_db()
    assert pool.status == "at_target"
    # With every surplus candidate locked by claims, the loop retires none and says so.
    locked.clear()
    release.clear()
    thread = _in_thread(claimer_of_all, profile, world.a.org.pk, locked, release)
    assert locked.wait(30)
    try:
        pools.pool_update(actor=world.operator, pool=pool, desired=1)
        pool_loop.converge()
    finally:
        release.set()
        thread.join(30)
    assert pool.standbys.filter(state=S.READY).count() == 2
    pool.refresh_from_db()
    assert pool.status == "converging" and "1 surplus being claimed" in pool.status_reason
    pool_loop.converge()  # the claims let go: now the surplus goes, oldest first
    assert list(pool.standbys.filter(state=S.READY).values_list("pk", flat=True)) == [newest.pk]


def claimer_of_all(profile, org_id, locked, release):
    with transaction.atomic():
        digest = pool_claims.snapshot_digest(pool_claims.launch_snapshot(profile))
        rows = list(
            pool_claims.claimable(profile, org_id=org_id, digest=digest).select_for_update(of=("self",))
        )
        assert len(rows) == 2
        locked.set()
        release.wait(30)


@pytest.mark.django_db(transaction=True)
def test_two_loops_at_once_never_over_provision(world):
    make_synced_cluster(name="gpu-a", nodes=1)  # 8 A100s
    first = system_profile(world.operator, name="first", size=5, groups=gpus(1))
    second = system_profile(world.operator, name="second", size=5, groups=gpus(1))
    pool_loop.ensure_default_pools()
    barrier = threading.Barrier(4)
    errors = []

    def loop():
        try:
            barrier.wait(30)
            pool_loop.converge()
        except Exception as error:  # surfaced below
            errors.append(error)

    threads = [_in_thread(loop) for _ in range(4)]
    for thread in threads:
        thread.join(60)
    assert errors == []
    one, two = standing(default_pool(first)), standing(default_pool(second))
    assert len(one) <= 5 and len(two) <= 5
    assert len(one) + len(two) == 8  # all 8 GPUs, never a ninth
    assert len({s.namespace for s in one + two}) == 8


# --- end to end on the local control plane -------------------------------------------------------------


def run_enqueued(func: str) -> list:
    """Run the queued ``instances.tasks.<func>`` tasks here, as the cluster's worker would (dequeued)."""
    from django.utils.module_loading import import_string

    results = []
    for row in OrmQ.objects.order_by("pk"):
        if row.task.get("func") == f"instances.tasks.{func}":
            row.delete()
            results.append(import_string(row.task["func"])(*row.task["args"]))
    return results


@pytest.mark.kube
def test_the_loop_builds_standbys_for_real_retires_the_surplus_and_refills_after_a_claim(
    live, django_capture_on_commit_callbacks
):
    import time

    from kubernetes.client.exceptions import ApiException

    from instances import placeholders

    core, world, small = live["core"], live["world"], live["profile"]
    OrmQ.objects.all().delete()
    assert small.allocation_strategy == "warm_pool" and small.warm_pool_size == 2  # the shipped "Small"
    assert converge(django_capture_on_commit_callbacks)[default_pool(small).pk] == "converging"
    pool = default_pool(small)
    built = standing(pool)
    started = time.monotonic()
    assert run_enqueued("standby_deploy") == ["ready", "ready"]
    print(f"\n2 standbys built on the local control plane in {time.monotonic() - started:.2f} s")
    assert converge(django_capture_on_commit_callbacks)[pool.pk] == "at_target"
    for standby in built:
        pods = core.list_namespaced_pod(
            standby.namespace, label_selector=placeholders.LABEL_PLACEHOLDER
        ).items
        assert pods and all(p.spec.node_name for p in pods)  # bound by the scheduler: the GPU is held

    # Down to 1: the oldest is retired and its namespace deleted by the worker.
    pools.pool_update(actor=world.operator, pool=pool, desired=1)
    converge(django_capture_on_commit_callbacks)
    oldest, newest = built
    assert run_enqueued("standby_delete") == ["deleted"]
    with pytest.raises(ApiException) as gone:
        core.read_namespace(oldest.namespace)
    assert gone.value.status == 404
    assert [s.pk for s in standing(pool)] == [newest.pk]

    # A launch claims the ready one; the loop (enqueued by the claim) builds a replacement.
    with django_capture_on_commit_callbacks(execute=True):
        instance = launch(world, small, "claimer")
    instance.refresh_from_db()
    assert instance.from_warm_pool and instance.namespace == newest.namespace
    assert instance.state == "ready"  # handed over in the request
    # The hand-over queued the rest of its baseline; the claim queued the loop.
    assert sorted(row.task["func"] for row in OrmQ.objects.all()) == [
        "instances.tasks.baseline_apply",
        "instances.tasks.warm_pools_converge",
    ]
    assert run_enqueued("baseline_apply") == [[]]  # relabelled: nothing had to be replaced
    with django_capture_on_commit_callbacks(execute=True):
        assert run_enqueued("warm_pools_converge") == [{str(pool.pk): "converging"}]
    (refill,) = standing(pool)
    assert refill.pk != newest.pk and refill.state == "provisioning"
    assert run_enqueued("standby_deploy") == ["ready"]
