"""Reads of warm pools: which pools a user may see (operators only), each pool's live figures for the
studio and the API (:class:`PoolStatus`, computed for a whole page of pools in a constant number of
queries), and which sizes have a standby instance ready for an org's launch (the portal's "ready now").
"""

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

from django.db.models import Count, Prefetch, Q, QuerySet, Subquery
from django.utils import timezone

from catalog.models import ComputeProfile
from instances import pool_claims, pool_schedules
from instances.models import ComputeInstance, PoolSchedule, StandbyInstance, WarmPool
from inventory.models import Cluster
from paas import authz

WARM_POOL = ComputeProfile.Allocation.WARM_POOL
DAY = dt.timedelta(days=1)
WEEK = dt.timedelta(days=7)


def pool_list_for(user) -> QuerySet[WarmPool]:
    """Every pool for an operator; nothing for anyone else (standby capacity is the provider's)."""
    if not authz.is_operator(user):
        return WarmPool.objects.none()
    return WarmPool.objects.select_related("profile", "datacenter", "cluster").prefetch_related(
        Prefetch("schedules", queryset=PoolSchedule.objects.order_by("position", "pk"))
    )


def pool_profile_choices(user) -> QuerySet[ComputeProfile]:
    """The profiles an operator may keep a pool of: every compute profile, a tenant's too (standby
    capacity is the provider's; a pool shows the profile's name and its figures, nothing of the org's
    insides). Nothing for anyone else."""
    if not authz.is_operator(user):
        return ComputeProfile.objects.none()
    return ComputeProfile.objects.select_related("org", "project")


def pool_get_for(user, pk) -> WarmPool:
    """One pool an operator may see; for anyone else every pool is "not found"."""
    return authz.get_visible(pool_list_for(user), pk, user=user)


def schedule_list_for(user, pool: WarmPool) -> QuerySet[PoolSchedule]:
    if not authz.is_operator(user):
        return PoolSchedule.objects.none()
    return PoolSchedule.objects.filter(pool=pool).order_by("position", "pk")


def standby_list_for(user) -> QuerySet[StandbyInstance]:
    """Standby instances (operators only), with what the studio's list shows."""
    if not authz.is_operator(user):
        return StandbyInstance.objects.none()
    return StandbyInstance.objects.select_related(
        "pool__profile", "pool__datacenter", "pool__cluster", "profile", "cluster", "instance__project"
    )


@dataclass(frozen=True)
class PoolStatus:
    """A pool's figures now. Hits and misses are the profile's launches (a claim of a standby of any of
    its pools; a launch on demand while the profile had the warm-pool strategy)."""

    desired: int  # the capacity in force now (schedules, and 0 when disabled or unpublished)
    ready: int
    provisioning: int
    retiring: int
    failed: int
    claimed_24h: int
    hits_24h: int
    misses_24h: int
    hits_7d: int
    misses_7d: int
    next_change_at: dt.datetime | None
    next_change_desired: int | None
    status: str
    status_label: str
    reason: str
    checked_at: dt.datetime | None

    @staticmethod
    def _rate(hits: int, misses: int) -> float | None:
        return round(hits / (hits + misses), 3) if hits + misses else None

    @property
    def hit_rate_24h(self) -> float | None:
        return self._rate(self.hits_24h, self.misses_24h)

    @property
    def hit_rate_7d(self) -> float | None:
        return self._rate(self.hits_7d, self.misses_7d)


def _schedules_of(pools: list[WarmPool]) -> dict[int, list[PoolSchedule]]:
    """The pools' schedules: the prefetched ones (pool_list_for), else one query for all of them."""
    prefetched = [p for p in pools if "schedules" in getattr(p, "_prefetched_objects_cache", {})]
    if len(prefetched) == len(pools):
        return {p.pk: list(p.schedules.all()) for p in pools}
    by_pool: dict[int, list[PoolSchedule]] = defaultdict(list)
    for rule in PoolSchedule.objects.filter(pool__in=[p.pk for p in pools]).order_by("position", "pk"):
        by_pool[rule.pool_id].append(rule)
    return by_pool


def pool_statuses(pools, *, now: dt.datetime | None = None) -> dict[int, PoolStatus]:
    """:class:`PoolStatus` of each pool (id -> status): three queries whatever the number of pools
    (schedules unless prefetched, standby counts by state, the profiles' launches)."""
    pools = list(pools)
    if not pools:
        return {}
    now = now or timezone.now()
    day, week = now - DAY, now - WEEK
    schedules = _schedules_of(pools)
    S = StandbyInstance.State
    counts = {
        row["pool_id"]: row
        for row in StandbyInstance.objects.filter(pool__in=[p.pk for p in pools])
        .values("pool_id")
        .annotate(
            ready=Count("pk", filter=Q(state=S.READY)),
            provisioning=Count("pk", filter=Q(state=S.PROVISIONING)),
            retiring=Count("pk", filter=Q(state=S.RETIRING)),
            failed=Count("pk", filter=Q(state=S.FAILED)),
            claimed_24h=Count("pk", filter=Q(claimed_at__gte=day)),
        )
        .order_by()
    }
    # A miss: launched on demand while the profile had the warm-pool strategy (its launch snapshot
    # says so; the launch's audit event says {"warm_pool": {"standby": null}} for the same instances).
    missed = Q(from_warm_pool=False, snapshot__allocation_strategy=WARM_POOL)
    launches = {
        row["profile_id"]: row
        for row in ComputeInstance.objects.filter(
            profile__in={p.profile_id for p in pools}, created_at__gte=week
        )
        .values("profile_id")
        .annotate(
            hits_24h=Count("pk", filter=Q(from_warm_pool=True, created_at__gte=day)),
            hits_7d=Count("pk", filter=Q(from_warm_pool=True)),
            misses_24h=Count("pk", filter=missed & Q(created_at__gte=day)),
            misses_7d=Count("pk", filter=missed),
        )
        .order_by()
    }
    result = {}
    for pool in pools:
        rules = schedules.get(pool.pk, [])
        counted = counts.get(pool.pk, {})
        launched = launches.get(pool.profile_id, {})
        idle = pool_schedules.idle_reason(pool)  # disabled, unpublished, on demand: keeps nothing
        desired = pool_schedules.effective_desired(pool, now, rules)
        change = None if idle else pool_schedules.next_change(pool, now, rules)
        status = WarmPool.Status.DISABLED if not pool.enabled else WarmPool.Status(pool.status)
        reason = pool.status_reason or (f"Keeps nothing: {idle}." if idle else "")
        result[pool.pk] = PoolStatus(
            desired=desired,
            ready=counted.get("ready", 0),
            provisioning=counted.get("provisioning", 0),
            retiring=counted.get("retiring", 0),
            failed=counted.get("failed", 0),
            claimed_24h=counted.get("claimed_24h", 0),
            hits_24h=launched.get("hits_24h", 0),
            misses_24h=launched.get("misses_24h", 0),
            hits_7d=launched.get("hits_7d", 0),
            misses_7d=launched.get("misses_7d", 0),
            next_change_at=change[0] if change else None,
            next_change_desired=change[1] if change else None,
            status=status.value,
            status_label=status.label,
            reason=reason,
            checked_at=pool.checked_at,
        )
    return result


def pool_status(pool: WarmPool, *, now: dt.datetime | None = None) -> PoolStatus:
    return pool_statuses([pool], now=now)[pool.pk]


def ready_now(profile_ids, *, org_id: int) -> dict[int, int]:
    """Standby instances a launch by ``org_id`` could claim right now, per profile id (profiles without
    one are left out): the filters of ``pool_claims.claimable`` (ready, built from the profile's current
    launch snapshot, on a cluster the launch may use), in three queries for any number of profiles."""
    profiles = list(
        ComputeProfile.objects.filter(pk__in=list(profile_ids), allocation_strategy=WARM_POOL)
        .select_related("template_version__template")
        .prefetch_related("resource_groups")
    )
    if not profiles:
        return {}
    which = Q(pk__in=[])
    for profile in profiles:
        digest = pool_claims.snapshot_digest(pool_claims.launch_snapshot(profile))
        clusters = Cluster.objects.filter(pool_claims.allowed_clusters_q(profile, org_id=org_id))
        which |= Q(profile_id=profile.pk, snapshot_digest=digest, cluster__in=Subquery(clusters.values("pk")))
    rows = (
        StandbyInstance.objects.filter(which, state=StandbyInstance.State.READY)
        .values("profile_id")
        .annotate(n=Count("pk"))
        .order_by()
    )
    return {row["profile_id"]: row["n"] for row in rows}
