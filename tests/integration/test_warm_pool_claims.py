"""Claiming warm pools' standby instances in a launch, at the database level: real PostgreSQL
transactions, launches in threads each with its own connection.

A launch of a warm-pool profile takes a ready standby built from the same snapshot (``SELECT ... FOR
UPDATE SKIP LOCKED``): under 50 concurrent launches against 10 ready standbys exactly 10 claim, each a
different one, and 40 go on demand. A standby of an older snapshot, on a cluster the launch may not
use, or not ready is never claimed; an over-quota launch is refused and leaves the standby ready; what
a claimed standby held is counted once (as the instance's); an on-demand profile never claims.

The cluster is served by an agent, so the claim's on-commit hand-over is only enqueued on the agent's
queue (nothing here reaches a cluster: the end-to-end hand-over is tested in the pool deployer's
tests).
"""

import threading
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from django_q.models import OrmQ

from catalog import services as catalog_services
from catalog.models import ComputeProfile
from instances import capacity, pool_claims, pool_quota, selectors
from instances.counter_models import WarmPoolUsage
from instances.models import ComputeInstance, Run, StandbyInstance, WarmPool
from instances.quota import profile_totals
from instances.selectors import workspace_summary
from instances.services import instance_launch
from inventory.models import Agent, Cluster, Datacenter, DatacenterAgent
from paas.audit import audit_verify
from paas.errors import Conflict
from paas.models import AuditEvent
from tenancy import services as tenancy_services
from tenancy.roles import Role
from tests.factories import (
    ONE_A100,
    UserFactory,
    add_member,
    make_operator,
    make_org,
    make_profile,
    make_synced_cluster,
)

MANIFESTS = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ instance.name }}-info\ndata:\n  a: b\n"
INPUTS = [
    {
        "name": "cluster_details",
        "type": "text",
        "required": False,
        "default": None,
        "options": [],
        "description": "Clusters this profile may run on.",
    },
    {"name": "motd", "type": "text", "required": False, "default": "hi", "options": [], "description": ""},
]
AGENT_QUEUE = "agent-far"
RUN_EXECUTE = "instances.tasks.run_execute"


# --- set-up -----------------------------------------------------------------------------------------


def _agent_served_cluster(name: str, *, nodes: int = 10) -> Cluster:
    """A synced cluster of ``nodes`` 8x A100 nodes in a datacenter whose work goes to the agent
    ``far`` (its queue is ``agent-far``): a claim's hand-over is enqueued there, never run here."""
    datacenter, _ = Datacenter.objects.get_or_create(
        name="far-dc", defaults={"display_name": "Far", "kind": "data_center"}
    )
    if not DatacenterAgent.objects.filter(datacenter=datacenter).exists():
        DatacenterAgent.objects.create(datacenter=datacenter, agent=Agent.objects.create(name="far"))
    cluster = make_synced_cluster(name=name, nodes=nodes)
    cluster.datacenter = datacenter
    cluster.save(update_fields=["datacenter"])
    return cluster


def _system_profile(operator, name: str = "pooled", **data) -> ComputeProfile:
    """A published system profile shared with every org, with the warm-pool strategy (by default)."""
    profile = make_profile(
        actor=operator,
        project=None,
        name=name,
        template=f"t-{name}",
        manifests=MANIFESTS,
        inputs=INPUTS,
        resource_groups=ONE_A100,
        **({"allocation_strategy": ComputeProfile.Allocation.WARM_POOL, "warm_pool_size": 10} | data),
    )
    catalog_services.item_share(actor=operator, item=profile, sharing="all")
    return ComputeProfile.objects.get(pk=profile.pk)


def _default_pool(profile: ComputeProfile) -> WarmPool:
    return WarmPool.objects.get_or_create(
        profile=profile, datacenter=None, cluster=None, defaults={"desired": 10}
    )[0]


def _standbys(
    profile, cluster, count: int, *, pool=None, state="ready", digest=None
) -> list[StandbyInstance]:
    """``count`` standby rows as the loop and the pool deployer leave them once built: the profile's
    current launch snapshot and digest, its totals on ``cluster``, ready for a while (oldest first)."""
    snapshot = pool_claims.launch_snapshot(profile)
    now = timezone.now()
    totals = profile_totals(profile, cluster_id=cluster.pk)
    pool = pool or _default_pool(profile)
    start = StandbyInstance.objects.count()
    made = [
        StandbyInstance.objects.create(
            pool=pool,
            profile=profile,
            snapshot=snapshot,
            snapshot_digest=digest or pool_claims.snapshot_digest(snapshot),
            cluster=cluster,
            namespace=f"w-{profile.name}-{cluster.name}-{start + i:04d}",
            placement={"cluster": cluster.name, "explanation": "best fit"},
            state=state,
            ready_at=now - timedelta(minutes=count - i) if state == "ready" else None,
            heartbeat_at=now,
            **totals,
        )
        for i in range(count)
    ]
    capacity.capacity_rebuild()  # written directly: held on the cluster's row, as the loop reserves them
    pool_quota.pool_quota_rebuild()  # and on the pool's usage row, as the loop takes them
    return made


def _pool_held(pool: WarmPool) -> int:
    """The GPU units the pool's usage row says its standbys hold."""
    return WarmPoolUsage.objects.get(pool=pool).gpu_units


def _tenant(operator, name: str):
    """An org with a workspace 'lab' and its workspace admin (who launches)."""
    org, _admin = make_org(operator=operator, name=name)
    project = tenancy_services.project_create(actor=_admin, org=org, name="lab")
    owner = UserFactory(username=f"{name}-owner")
    add_member(admin=_admin, user=owner, role=Role.WORKSPACE_ADMIN, project=project)
    return project, owner


def _launch_facts(instance_ids) -> dict[int, dict]:
    events = AuditEvent.objects.filter(
        action="instance.launch", target_id__in=[str(pk) for pk in instance_ids]
    ).values_list("target_id", "details")
    return {int(target): details for target, details in events}


def _queued() -> list[tuple[str, str, tuple]]:
    """The tasks waiting in django-q2's ORM broker: (queue, function, args)."""
    return [(row.key, row.task.get("func"), tuple(row.task.get("args") or ())) for row in OrmQ.objects.all()]


# --- 50 concurrent launches, 10 ready standbys -------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_launches_claim_exactly_the_ten_ready_standbys():
    operator = make_operator(username="op-race")
    # Five orgs: launches of one org serialise on its quota rows and audit chain; launches of different
    # orgs run their claims at the same time, which is what SKIP LOCKED must keep apart.
    tenants = [_tenant(operator, f"race{i}") for i in range(5)]
    cluster = _agent_served_cluster("pool-a", nodes=10)  # 80 GPUs: room for 10 claimed + 40 on demand
    profile = _system_profile(operator)
    pool = _default_pool(profile)
    standbys = {s.pk: s for s in _standbys(profile, cluster, 10, pool=pool)}
    assert _pool_held(pool) == 10 * 28
    OrmQ.objects.all().delete()
    results, barrier = {}, threading.Barrier(50)

    def launch(index: int):
        project, owner = tenants[index % len(tenants)]
        try:
            barrier.wait()
            instance = instance_launch(actor=owner, project=project, name=f"i-{index}", profile=profile)
            results[index] = instance.pk
        except Exception as exc:  # any failure fails the test below
            results[index] = repr(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=launch, args=(i,)) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert all(isinstance(v, int) for v in results.values()) and len(results) == 50, results
    instances = {i.pk: i for i in ComputeInstance.objects.filter(pk__in=results.values())}
    hits = {pk for pk, i in instances.items() if i.from_warm_pool}
    misses = set(instances) - hits
    assert (len(hits), len(misses)) == (10, 40)

    # Every standby claimed once, each by a different instance, and exactly the claiming instances.
    claimed = list(StandbyInstance.objects.filter(pk__in=standbys))
    assert Counter(s.state for s in claimed) == {"claimed": 10}
    assert {s.instance_id for s in claimed} == hits and all(s.claimed_at for s in claimed)
    for standby in claimed:
        instance = instances[standby.instance_id]
        assert (instance.namespace, instance.cluster_id) == (standby.namespace, standby.cluster_id)
        assert (
            instance.placement["warm_pool"] is True and standby.namespace in instance.placement["explanation"]
        )
        assert instance.gpus == 1 and instance.state == "pending"
    runs = dict(Run.objects.filter(instance__in=instances).values_list("instance_id", "kind"))
    assert {pk: runs[pk] for pk in hits} == dict.fromkeys(hits, Run.Kind.CLAIM)
    assert {pk: runs[pk] for pk in misses} == dict.fromkeys(misses, Run.Kind.DEPLOY)
    assert all(instances[pk].namespace == "" and instances[pk].cluster == cluster for pk in misses)

    # The audit facts say hit (which standby, which pool) or miss.
    facts = _launch_facts(instances)
    namespaces = {s.instance_id: s.namespace for s in claimed}
    assert {pk: facts[pk]["warm_pool"] for pk in hits} == {
        pk: {"standby": namespaces[pk], "pool": pool.pk} for pk in hits
    }
    assert all(facts[pk]["warm_pool"] == {"standby": None} for pk in misses)
    assert audit_verify().ok
    # The pool quota gave back each claimed standby's GPU, in its claim's transaction: no drift.
    assert _pool_held(pool) == 0 and pool_quota.pool_quota_drift() == []

    # The hand-overs went to the agent's queue only (nothing ran here), the deploys too; the loop was
    # enqueued on the default queue after each claim.
    queued = _queued()
    claim_runs = set(Run.objects.filter(kind=Run.Kind.CLAIM).values_list("pk", flat=True))
    handed = [args[0] for queue, func, args in queued if func == RUN_EXECUTE and args[0] in claim_runs]
    assert sorted(handed) == sorted(claim_runs)
    assert {queue for queue, func, _ in queued if func == RUN_EXECUTE} == {AGENT_QUEUE}
    assert [q for q, f, _ in queued if f == "instances.tasks.warm_pools_converge"] == ["default"] * 10
    assert not Run.objects.filter(started_at__isnull=False).exists()


@pytest.mark.django_db(transaction=True)
def test_a_standby_locked_by_another_transaction_is_skipped_never_waited_for():
    """SKIP LOCKED, deterministically: while another transaction holds the oldest ready standby (a
    launch claiming it right now), a launch takes the next one at once, and with none left goes on
    demand at once: it never waits for the lock."""
    from django.db import transaction

    operator = make_operator(username="op-skip")
    project, owner = _tenant(operator, "skip")
    cluster = _agent_served_cluster("pool-a", nodes=2)
    profile = _system_profile(operator)
    held, free = _standbys(profile, cluster, 2)
    locked, release = threading.Event(), threading.Event()

    def hold():
        try:
            with transaction.atomic():
                StandbyInstance.objects.select_for_update().get(pk=held.pk)
                locked.set()
                release.wait(60)
        finally:
            connection.close()

    def launch_in_thread(name: str) -> dict:
        result = {}

        def run():
            try:
                result["instance"] = instance_launch(actor=owner, project=project, name=name, profile=profile)
            except Exception as exc:
                result["error"] = repr(exc)
            finally:
                connection.close()

        thread = threading.Thread(target=run)
        thread.start()
        thread.join(20)  # a launch waiting for the held row would still be running
        assert not thread.is_alive(), f"the launch of {name} waited for the locked standby"
        assert "error" not in result, result
        return result["instance"]

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(20)
        first = launch_in_thread("first")
        assert first.from_warm_pool and first.namespace == free.namespace  # the older one was skipped
        second = launch_in_thread("second")
        assert not second.from_warm_pool and second.runs.get().kind == Run.Kind.DEPLOY
    finally:
        release.set()
        holder.join()
    held.refresh_from_db()
    assert (held.state, held.instance) == ("ready", None)  # still there for the next launch
    assert instance_launch(actor=owner, project=project, name="third", profile=profile).standby == held


# --- what is never claimed ---------------------------------------------------------------------------


@pytest.fixture
def pooled(world):
    cluster = _agent_served_cluster("pool-a", nodes=2)
    profile = _system_profile(world.operator)
    return {"world": world, "cluster": cluster, "profile": profile, "pool": _default_pool(profile)}


def _launch(world, profile, name: str, *, tenant: str = "a"):
    t = getattr(world, tenant)
    return instance_launch(actor=t.users["workspace_admin"], project=t.project, name=name, profile=profile)


def test_a_standby_built_from_another_snapshot_is_not_claimed(pooled):
    world, profile, cluster = pooled["world"], pooled["profile"], pooled["cluster"]
    (old,) = _standbys(profile, cluster, 1)
    # An edit of what is built (an input value) gives launches another snapshot: the standby is stale.
    profile = catalog_services.profile_update(
        actor=world.operator, profile=profile, input_values={"motd": "changed"}
    )
    assert pool_claims.snapshot_digest(pool_claims.launch_snapshot(profile)) != old.snapshot_digest
    instance = _launch(world, profile, "after-edit")
    old.refresh_from_db()
    assert (instance.from_warm_pool, old.state, old.instance) == (False, "ready", None)
    assert instance.runs.get().kind == Run.Kind.DEPLOY
    assert _launch_facts([instance.pk])[instance.pk]["warm_pool"] == {"standby": None}
    # A standby of the current snapshot is claimed again.
    (fresh,) = _standbys(profile, cluster, 1)
    assert _launch(world, profile, "fresh").standby == fresh


def test_resizing_the_pool_keeps_standbys_claimable_a_price_edit_does_not(pooled):
    """The pool's size (``warm_pool_size``, which the pool service writes for the default pool), the
    strategy and ``published`` say how the profile is offered, not what is built: resizing must not
    make every standby unclaimable (the loop would retire them all). Any other profile edit, the
    price included, is a new snapshot: the standbys of the old one are not claimed."""
    world, profile, cluster = pooled["world"], pooled["profile"], pooled["cluster"]
    (standby,) = _standbys(profile, cluster, 1)
    profile = catalog_services.profile_update(actor=world.operator, profile=profile, warm_pool_size=12)
    for published in (False, True):
        profile = catalog_services.profile_update(actor=world.operator, profile=profile, published=published)
    instance = _launch(world, profile, "still-warm")
    assert instance.from_warm_pool and instance.standby == standby
    (other,) = _standbys(profile, cluster, 1)
    profile = catalog_services.profile_update(actor=world.operator, profile=profile, cost_amount="3.10")
    priced = _launch(world, profile, "new-price")
    assert not priced.from_warm_pool and priced.snapshot["price"]["amount"] == "3.1000"
    assert StandbyInstance.objects.get(pk=other.pk).state == "ready"


def test_a_standby_not_ready_is_not_claimed(pooled):
    world, profile, cluster = pooled["world"], pooled["profile"], pooled["cluster"]
    others = [
        _standbys(profile, cluster, 1, state=state)[0] for state in ("provisioning", "retiring", "failed")
    ]
    instance = _launch(world, profile, "none-ready")
    assert not instance.from_warm_pool
    assert [StandbyInstance.objects.get(pk=s.pk).state for s in others] == [
        "provisioning",
        "retiring",
        "failed",
    ]


def test_a_standby_on_a_cluster_the_profile_does_not_allow_is_not_claimed(pooled):
    world, profile, cluster = pooled["world"], pooled["profile"], pooled["cluster"]
    elsewhere = _agent_served_cluster("pool-b", nodes=2)
    profile = catalog_services.profile_update(
        actor=world.operator, profile=profile, input_values={"cluster_details": "pool-a"}
    )
    (standby,) = _standbys(profile, elsewhere, 1)  # current snapshot, but on a cluster not named
    instance = _launch(world, profile, "pinned")
    standby.refresh_from_db()
    assert (instance.from_warm_pool, instance.cluster, standby.state) == (False, cluster, "ready")
    (allowed,) = _standbys(profile, cluster, 1)
    assert _launch(world, profile, "pinned-2").standby == allowed


def test_a_standby_on_a_cluster_dedicated_to_another_org_or_unreachable_is_not_claimed(pooled):
    world, profile, cluster = pooled["world"], pooled["profile"], pooled["cluster"]
    dedicated = _agent_served_cluster("b-only", nodes=2)
    dedicated.tenancy, dedicated.dedicated_org = Cluster.Tenancy.DEDICATED, world.b.org
    dedicated.save(update_fields=["tenancy", "dedicated_org"])
    down = _agent_served_cluster("down", nodes=2)
    Cluster.objects.filter(pk=down.pk).update(status=Cluster.Status.UNREACHABLE)
    (for_b,) = _standbys(profile, dedicated, 1)
    (on_down,) = _standbys(profile, down, 1)
    instance = _launch(world, profile, "from-a")  # org A may not use B's cluster, nor an unreachable one
    assert not instance.from_warm_pool and instance.cluster == cluster
    assert StandbyInstance.objects.get(pk=for_b.pk).state == "ready"
    assert StandbyInstance.objects.get(pk=on_down.pk).state == "ready"
    claimed = _launch(world, profile, "from-b", tenant="b")  # org B may
    assert claimed.standby == for_b and claimed.cluster == dedicated and claimed.namespace == for_b.namespace


def test_an_over_quota_launch_is_refused_and_the_standby_stays_ready(pooled):
    world, profile, cluster = pooled["world"], pooled["profile"], pooled["cluster"]
    (standby,) = _standbys(profile, cluster, 1)
    tenancy_services.quota_update(actor=world.operator, quota=world.a.org.quota, gpus=0)
    with pytest.raises(Conflict) as over:
        _launch(world, profile, "too-much")
    assert over.value.code == "quota_exceeded"
    standby.refresh_from_db()
    assert (standby.state, standby.instance, standby.claimed_at) == ("ready", None, None)
    assert not ComputeInstance.objects.filter(name="too-much").exists()
    assert _pool_held(standby.pool) == 28  # the refused claim gave nothing back (it rolled back)
    # Standby GPUs are the provider's, not a tenant's: org B's launch claims it within its own quota.
    tenancy_services.quota_update(actor=world.operator, quota=world.b.org.quota, gpus=1)
    assert _launch(world, profile, "fits", tenant="b").standby == standby


def test_a_claimed_standby_is_counted_once_as_the_instance(pooled):
    world, profile, cluster = pooled["world"], pooled["profile"], pooled["cluster"]
    (standby,) = _standbys(profile, cluster, 1)
    summary = workspace_summary(world.a.users["workspace_admin"], world.a.project.pk)
    assert summary["in_use"]["gpus"] == 0  # a standby counts against no tenant's quota
    assert selectors.reservations()[cluster.pk].gpus == {"A100-SXM4-40GB": 1}  # but holds its GPU
    instance = _launch(world, profile, "claimer")
    assert instance.standby == standby
    assert _pool_held(standby.pool) == 0  # no longer the pool's: it left the pool quota
    # Held once: as the instance's (against the tenant's quota), no longer as the standby's.
    assert selectors.reservations()[cluster.pk].gpus == {"A100-SXM4-40GB": 1}
    assert selectors.reservations()[cluster.pk].cpu_millis == 4000
    summary = workspace_summary(world.a.users["workspace_admin"], world.a.project.pk)
    assert (summary["in_use"]["gpus"], summary["in_use"]["instances"]) == (1, 1)
    # ... and the quota counts it: with a quota of 1 GPU the next launch is refused.
    tenancy_services.quota_update(actor=world.operator, quota=world.a.org.quota, gpus=1)
    _standbys(profile, cluster, 1)
    with pytest.raises(Conflict, match="Organization quota of 1 GPUs: 1 in use"):
        _launch(world, profile, "second")


def test_an_on_demand_profile_never_claims(pooled):
    world, profile, cluster = pooled["world"], pooled["profile"], pooled["cluster"]
    profile = catalog_services.profile_update(
        actor=world.operator,
        profile=profile,
        allocation_strategy=ComputeProfile.Allocation.ON_DEMAND,
        warm_pool_size=0,
    )
    (standby,) = _standbys(profile, cluster, 1)  # even one of the very same snapshot
    instance = _launch(world, profile, "on-demand")
    standby.refresh_from_db()
    assert (instance.from_warm_pool, standby.state) == (False, "ready")
    assert instance.runs.get().kind == Run.Kind.DEPLOY
    assert "warm_pool" not in _launch_facts([instance.pk])[instance.pk]
