"""Capacity reservations per cluster (instances.capacity) against real PostgreSQL: concurrent
reservations from different orgs never take the same last GPUs; stop, delete and a rolled-back launch
give capacity back, a start takes it again or is refused with the numbers; a failed instance keeps
holding; standby instances hold theirs and hand it over on claim; the drift check finds a tampered
row and the rebuild repairs it. Nothing here reaches a cluster (synced nodes, no deploys)."""

import threading

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from instances import capacity, pool_deployer, pool_loop
from instances.models import ComputeInstance, StandbyInstance, WarmPool
from instances.selectors import placement_request, reservations
from instances.states import State, transition
from inventory.matchmaker import PlacementRequest, ResourceGroup
from inventory.models import ClusterReservation, Node
from paas.errors import Conflict
from tenancy import services as tenancy_services
from tests.factories import make_operator, make_org, make_profile, make_synced_cluster
from tests.support.wait import lock_waiters, wait_for

A100 = "A100-SXM4-40GB"
EIGHT = [{"gpu_model": A100, "gpu_count": 8, "cpu_cores": "8", "memory_gib": 64, "storage_gib": 10}]
MANIFESTS = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: info\ndata:\n  a: b\n"


def _request(gpus: int, *, org_id: int | None = None) -> PlacementRequest:
    group = ResourceGroup(gpu_model=A100, gpu_count=gpus, cpu_millis=1000, memory_bytes=1 << 30)
    return PlacementRequest(groups=(group,), org_id=org_id)


def _held(cluster) -> dict:
    held = reservations().get(cluster.pk)
    return dict(held.gpus) if held else {}


@pytest.fixture
def tenants(db):
    operator = make_operator(username="op-capacity")
    orgs = []
    for name in ("cap-a", "cap-b"):
        org, admin = make_org(operator=operator, name=name)
        project = tenancy_services.project_create(actor=admin, org=org, name="lab")
        orgs.append((org, admin, project))
    profile = make_profile(
        actor=operator, project=None, name="eight", manifests=MANIFESTS, resource_groups=EIGHT
    )
    return {"operator": operator, "orgs": orgs, "profile": profile}


def _instance(tenants, cluster, name: str, *, org: int = 0, state: str = State.PENDING):
    """An instance as a launch leaves it: its capacity reserved (the launch's decision), then the
    row, in one transaction."""
    org_, admin, project = tenants["orgs"][org]
    profile = tenants["profile"]
    with transaction.atomic():
        placement, chosen = capacity.capacity_place_and_reserve(request=placement_request(profile, org_.pk))
        assert chosen == cluster, placement.explain()
        return ComputeInstance.objects.create(
            org=org_,
            project=project,
            name=name,
            owner=admin,
            profile=profile,
            cluster=cluster,
            state=state,
            gpus=8,
            gpus_by_model={A100: 8},
            gpu_units=8 * 28,
            cpu_millis=8000,
            memory_gib=64,
            storage_gib=10,
        )


def _move(instance, *states) -> None:
    with transaction.atomic():
        row = ComputeInstance.objects.select_for_update().get(pk=instance.pk)
        for state in states:
            transition(row, state, "test")
    instance.refresh_from_db()


# --- the race -----------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_launches_of_three_orgs_never_take_the_same_last_gpus():
    """Three orgs place an 8-GPU request at once: every placement (outside any lock) picks cluster
    ``race-a`` (best fit, ties by name), then all reserve together. The first holds ``race-a``'s row
    until it commits (the other two are seen waiting on it); then exactly one is on ``race-a``, one
    was re-placed onto ``race-b`` and the third is refused with the matchmaker's explanation."""
    a, b = make_synced_cluster(name="race-a"), make_synced_cluster(name="race-b")
    capacity.capacity_rebuild()  # the clusters' rows exist, as after their first launches
    results, placed = {}, {}
    everyone_placed = threading.Barrier(3)
    release = threading.Event()

    def launch(org_id: int) -> None:
        try:
            request = _request(8, org_id=org_id)
            placement = capacity.capacity_place(request)  # before the critical section
            placed[org_id] = placement.cluster
            everyone_placed.wait(timeout=30)
            with transaction.atomic():
                placement, cluster = capacity.capacity_place_and_reserve(request=request, placement=placement)
                results[org_id] = (cluster.name if cluster else None, placement.explain())
                release.wait(timeout=30)  # the transaction stays open: the others wait for it
        except Exception as exc:  # reported by the assertions below
            results[org_id] = ("error", repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=launch, args=(org_id,)) for org_id in (101, 102, 103)]
    for thread in threads:
        thread.start()
    wait_for(
        lambda: lock_waiters("UPDATE %clusterreservation%") >= 2,
        timeout=30,
        what="two reservations waiting on a row",
    )
    assert len(results) == 1, results  # only the holder of race-a's row got through
    release.set()
    for thread in threads:
        thread.join(timeout=60)
    assert set(placed.values()) == {"race-a"}, placed  # unreserved, all three would have gone there
    assert sorted(str(name) for name, _ in results.values()) == ["None", "race-a", "race-b"], results
    refused = next(text for name, text in results.values() if name is None)
    assert "No cluster fits" in refused and "needs 8 nvidia.com/gpu" in refused, refused
    assert _held(a) == {A100: 8} and _held(b) == {A100: 8}


# --- release, re-take, failure -----------------------------------------------------------------------


def test_stop_delete_and_start_release_and_take_capacity(tenants):
    cluster = make_synced_cluster(name="cap-one")  # one node: 8 A100s
    first = _instance(tenants, cluster, "first", state=State.READY)
    assert _held(cluster) == {A100: 8}
    with pytest.raises(AssertionError):  # full: another org's launch is not placed there
        _instance(tenants, cluster, "refused", org=1)

    _move(first, State.PROVISIONING, State.STOPPED)  # a stop: its pods are gone
    assert _held(cluster) == {} and capacity.capacity_drift() == []
    second = _instance(tenants, cluster, "second", org=1, state=State.READY)

    # A start is refused while the GPUs are taken, with the numbers; nothing changes.
    with pytest.raises(Conflict) as refused:
        _move(first, State.PROVISIONING)
    message = refused.value.message
    assert refused.value.code == "no_capacity"
    assert "first cannot start: its cluster cap-one no longer has the free capacity" in message
    assert "needs 8 nvidia.com/gpu of A100-SXM4-40GB, 0 free" in message, message
    first.refresh_from_db()
    assert first.state == State.STOPPED and _held(cluster) == {A100: 8}

    _move(second, State.DELETING)  # still holds: its namespace is being deleted
    assert _held(cluster) == {A100: 8}
    _move(second, State.DELETED)
    assert _held(cluster) == {}
    _move(first, State.PROVISIONING)  # the start takes them again
    assert _held(cluster) == {A100: 8}
    assert reservations()[cluster.pk].cpu_millis == 8000
    assert reservations()[cluster.pk].memory_bytes == 64 << 30
    assert capacity.capacity_drift() == []


def test_a_failed_instance_keeps_holding_until_stopped_or_deleted(tenants):
    """The deployer leaves a failed instance's objects as they were (its pods may run): it holds."""
    cluster = make_synced_cluster(name="cap-fail")
    instance = _instance(tenants, cluster, "fails")
    _move(instance, State.PROVISIONING, State.FAILED)
    assert _held(cluster) == {A100: 8}
    _move(instance, State.PROVISIONING, State.READY)  # a retry takes nothing again
    assert _held(cluster) == {A100: 8}
    _move(instance, State.DELETING, State.FAILED)  # a delete that failed: the namespace is still there
    assert _held(cluster) == {A100: 8}
    _move(instance, State.DELETING, State.DELETED)
    assert _held(cluster) == {} and capacity.capacity_drift() == []


def test_a_launch_that_fails_after_reserving_leaves_nothing_held(tenants):
    cluster = make_synced_cluster(name="cap-rollback")
    with pytest.raises(Conflict), transaction.atomic():
        _placement, chosen = capacity.capacity_place_and_reserve(request=_request(8))
        assert chosen == cluster and _held(cluster) == {A100: 8}
        raise Conflict("Over quota: a later check refuses the launch.")
    assert _held(cluster) == {}


def test_deleting_a_stopped_instance_holds_until_its_namespace_is_gone(tenants):
    cluster = make_synced_cluster(name="cap-stopdel")
    instance = _instance(tenants, cluster, "stopped", state=State.READY)
    _move(instance, State.PROVISIONING, State.STOPPED)
    assert _held(cluster) == {}
    _move(instance, State.DELETING)  # never refused; over-counts for the delete's few seconds
    assert _held(cluster) == {A100: 8} and capacity.capacity_drift() == []
    _move(instance, State.DELETED)
    assert _held(cluster) == {}


# --- MIG, rows created from the re-sum, drift and rebuild --------------------------------------------


def test_mig_slices_are_reserved_per_profile_whatever_the_node_calls_them(db):
    cluster = make_synced_cluster(name="cap-mig")
    Node.objects.create(
        cluster=cluster,
        name="mig-node",
        gpu_product=A100,
        gpu_count=1,
        allocatable_mig={"nvidia.com/mig-1g.10gb": 7},
        allocatable_cpu_millis=8000,
        allocatable_memory_bytes=64 << 30,
        ready=True,
        schedulable=True,
        synced_at=timezone.now(),
    )
    five = {"mig_slices": {"mig-1g.10gb": 5}, "cpu_millis": 100, "memory_gib": 1}
    assert capacity.capacity_reserve(cluster_id=cluster.pk, totals=five)
    assert not capacity.capacity_reserve(cluster_id=cluster.pk, totals=five)  # 5 + 5 > 7
    assert reservations()[cluster.pk].mig == {"1g.10gb": 5}
    capacity.capacity_release(cluster_id=cluster.pk, totals=five)
    assert cluster.pk not in reservations()
    assert ClusterReservation.objects.get(pk=cluster.pk).mig == {}  # no zeros left behind


def test_a_first_reservation_counts_what_already_holds_the_cluster(tenants):
    """Instances written before the cluster had a row (an upgrade, a bulk import) are re-summed into
    it on its first reservation, which then refuses what no longer fits."""
    cluster = make_synced_cluster(name="cap-upgrade")
    org, admin, project = tenants["orgs"][0]
    ComputeInstance.objects.create(
        org=org, project=project, name="old", owner=admin, cluster=cluster, state=State.READY, gpus=6,
        gpus_by_model={A100: 6},
    )  # fmt: skip
    assert not ClusterReservation.objects.filter(pk=cluster.pk).exists()
    assert capacity.capacity_drift() == [
        "Cluster cap-upgrade: no reservation row, 6 A100-SXM4-40GB GPUs, 0 CPU, 0 GiB memory held there "
        "(created on its next reservation, or by capacity_rebuild)."
    ]
    assert not capacity.capacity_reserve(cluster_id=cluster.pk, totals=_request(4))
    assert capacity.capacity_reserve(cluster_id=cluster.pk, totals=_request(2))
    assert _held(cluster) == {A100: 8}


def test_the_drift_check_finds_a_tampered_row_and_the_rebuild_repairs_it(tenants):
    cluster = make_synced_cluster(name="cap-drift")
    _instance(tenants, cluster, "held", state=State.READY)
    assert capacity.capacity_drift() == [] and capacity.capacity_rebuild() == 0
    ClusterReservation.objects.filter(pk=cluster.pk).update(gpus={A100: 1}, cpu_millis=0)
    assert capacity.capacity_drift() == [
        "Cluster cap-drift: reservation row says 1 A100-SXM4-40GB GPU, 0 CPU, 64 GiB memory, "
        "instances and standby instances hold 8 A100-SXM4-40GB GPUs, 8 CPU, 64 GiB memory."
    ]
    assert capacity.capacity_rebuild() == 1
    assert capacity.capacity_drift() == [] and _held(cluster) == {A100: 8}
    # A negative amount cannot be stored (named CHECK constraints).
    negative = pytest.raises(IntegrityError, match="inventory_clusterreservation_gpus_non_negative")
    with negative, transaction.atomic():
        ClusterReservation.objects.filter(pk=cluster.pk).update(gpus={A100: -1})


# --- warm pools --------------------------------------------------------------------------------------


def test_standbys_hold_capacity_and_hand_it_over_on_claim(tenants, monkeypatch):
    """The pool loop reserves each standby like a launch; a claim moves it to the instance with no
    change of the row; a retired standby's deletion gives back what it held."""
    from catalog.models import ComputeProfile

    cluster = make_synced_cluster(name="cap-pool", nodes=2)  # 16 A100s
    profile = make_profile(
        actor=tenants["operator"],
        project=None,
        name="pooled",
        template="pooled",
        manifests=MANIFESTS,
        resource_groups=EIGHT,
        allocation_strategy=ComputeProfile.Allocation.WARM_POOL,
        warm_pool_size=3,
    )
    pool_loop.converge()
    pool = WarmPool.objects.get(profile=profile)
    first, second = pool.standbys.order_by("pk")  # the third does not fit in 16 GPUs
    assert "no capacity for 1 more of 3" in pool.status_reason, pool.status_reason
    assert _held(cluster) == {A100: 16} and capacity.capacity_drift() == []

    # Claimed: the standby stops holding as the instance starts to, in one transaction.
    org, admin, project = tenants["orgs"][0]
    with transaction.atomic():
        instance = ComputeInstance.objects.create(
            org=org, project=project, name="claimer", owner=admin, profile=profile, cluster=cluster,
            from_warm_pool=True, gpus=8, gpus_by_model={A100: 8}, gpu_units=8 * 28, cpu_millis=8000,
            memory_gib=64,
        )  # fmt: skip
        StandbyInstance.objects.filter(pk=first.pk).update(
            state=StandbyInstance.State.CLAIMED, instance=instance
        )
    assert _held(cluster) == {A100: 16} and capacity.capacity_drift() == []

    # A retired standby's deletion gives its GPUs back. Mocked: the namespace deletion itself (no
    # cluster runs here; the pool deployer's own tests delete real namespaces).
    StandbyInstance.objects.filter(pk=second.pk).update(state=StandbyInstance.State.RETIRING)
    monkeypatch.setattr(pool_deployer, "_delete_namespace", lambda standby, session: None)
    assert pool_deployer.standby_delete(standby_id=second.pk) == StandbyInstance.State.DELETED
    assert _held(cluster) == {A100: 8} and capacity.capacity_drift() == []
    _move(instance, State.DELETING, State.DELETED)
    assert _held(cluster) == {}


# --- a launch placed again -----------------------------------------------------------------------------


def test_a_launch_whose_cluster_was_taken_meanwhile_is_placed_again_with_its_rows_and_meter(
    tenants, monkeypatch
):
    """The launch writes its instance (and meter) on the cluster it placed first, then reserves: when
    another launch took that cluster's last GPUs in between, it reserves elsewhere and the instance's
    row, placement and meter follow; the first cluster's row (created by that reservation, from a
    re-sum) does not count the new instance."""
    from billing.models import Meter
    from catalog import services as catalog_services
    from catalog.models import ComputeProfile
    from instances import services
    from tenancy.roles import Role
    from tests.factories import UserFactory, add_member

    org, admin, project = tenants["orgs"][0]
    owner = UserFactory(username="cap-mover")
    add_member(admin=admin, user=owner, role=Role.WORKSPACE_ADMIN, project=project)
    profile = make_profile(
        actor=admin, project=project, name="eight-here", manifests=MANIFESTS, resource_groups=EIGHT
    )
    catalog_services.item_share(actor=admin, item=profile, sharing="all")
    profile = ComputeProfile.objects.get(pk=profile.pk)
    first = make_synced_cluster(name="cap-first", nodes=1)
    second = make_synced_cluster(name="cap-second", nodes=2)
    stale = capacity.capacity_place(placement_request(profile, org.pk))
    assert stale.cluster == first.name  # best fit: the smaller cluster
    ComputeInstance.objects.create(  # its 8 GPUs taken since, by an instance the row does not know yet
        org=org, project=project, name="taker", owner=admin, cluster=first, state=State.READY, gpus=8,
        gpus_by_model={A100: 8},
    )  # fmt: skip
    monkeypatch.setattr(services, "capacity_place", lambda request: stale)
    instance = services.instance_launch(actor=owner, project=project, name="moved", profile=profile)
    instance.refresh_from_db()
    assert instance.cluster == second and instance.placement["cluster"] == second.name
    meter = Meter.objects.get(instance_key=f"compute:{instance.pk}")
    assert (meter.cluster_id, meter.cluster_name, meter.gpus) == (second.pk, second.name, 8)
    assert _held(first) == {A100: 8} and _held(second) == {A100: 8}
    assert capacity.capacity_drift() == []
