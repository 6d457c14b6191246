"""Warm pools and their schedules: the operators' services (create, update, delete, converge now).

Pools hold provider capacity (standby GPUs count against the pool quota ``max_gpus``, never against a
tenant's quota), so only operators manage them, for system and tenant profiles alike; every write is
a platform audit event (org None) in its own transaction, and enqueues the control loop
(``instances.pool_loop``) on commit so that the change takes effect now, not at the next tick.

A profile's *default pool* (no datacenter, no cluster) is the one its ``warm_pool_size`` sets: changing
its desired capacity changes the profile's ``warm_pool_size`` in the same transaction; it cannot be
deleted (disable it, or switch the profile to on demand). Scoped pools keep standbys in one
datacenter or on one cluster, among those the profile's ``cluster_details`` allows.
"""

from django.conf import settings
from django.db import transaction

from catalog.models import ComputeProfile
from instances import pool_schedules
from instances.models import PoolSchedule, WarmPool
from inventory.models import Cluster, Datacenter
from paas import authz
from paas.audit import apply_changes, audit_log
from paas.errors import ValidationFailed

CONVERGE = "instances.tasks.warm_pools_converge"
POOL_FIELDS = ("datacenter", "cluster", "desired", "max_gpus", "enabled")
SCHEDULE_FIELDS = ("name", "days", "start", "end", "timezone", "desired", "position")
ONLY_OPERATORS = "Only platform operators manage warm pools."


def _enqueue_loop(pool_id: int | None) -> None:
    """Run the loop for ``pool_id`` (None: every pool) once this transaction commits."""
    from django_q.tasks import async_task

    queue = settings.Q_CLUSTER["name"]
    args = () if pool_id is None else (pool_id,)
    transaction.on_commit(lambda: async_task(CONVERGE, *args, cluster=queue))


def is_default(pool: WarmPool) -> bool:
    """The profile's own pool: no datacenter, no cluster (its capacity is the profile's warm pool size)."""
    return pool.datacenter_id is None and pool.cluster_id is None


def cluster_names(profile: ComputeProfile) -> list[str]:
    """The clusters the profile's ``cluster_details`` names (empty: any)."""
    return [c.strip() for c in (profile.input_values.get("cluster_details") or "").split(",") if c.strip()]


def _check_pool(profile: ComputeProfile, data: dict, *, pool: WarmPool | None = None) -> None:
    """Refuse, with a message per field, what the loop could never serve or what clashes."""
    errors: dict[str, str] = {}
    if profile.allocation_strategy != ComputeProfile.Allocation.WARM_POOL:
        errors["profile"] = (
            f"The profile {profile.name} allocates on demand: switch its allocation strategy to warm pool "
            "(in the profile's settings) before giving it pools."
        )
    datacenter, cluster = data.get("datacenter"), data.get("cluster")
    if datacenter is not None and not isinstance(datacenter, Datacenter):
        errors["datacenter"] = "Choose a datacenter."
    if cluster is not None and not isinstance(cluster, Cluster):
        errors["cluster"] = "Choose a cluster."
    if datacenter is not None and cluster is not None:
        errors["cluster"] = "A pool is kept in one datacenter or on one cluster, not both: choose one."
    for field, allow_none in (("desired", False), ("max_gpus", True)):
        try:
            pool_schedules.clean_count(field, data.get(field), allow_none=allow_none)
        except ValidationFailed as error:
            errors.update({k: v[0] for k, v in error.fields.items()})
    if not isinstance(data.get("enabled"), bool):
        errors["enabled"] = "True or false."
    if errors:
        raise ValidationFailed("Invalid warm pool.", fields=errors)

    allowed = cluster_names(profile)
    if isinstance(cluster, Cluster):
        if allowed and cluster.name not in allowed:
            errors["cluster"] = (
                f"The profile {profile.name} may only run on {', '.join(allowed)} (its cluster details): "
                f"a pool on {cluster.name} could never be claimed."
            )
        elif cluster.dedicated_org_id and cluster.dedicated_org_id != profile.org_id:
            errors["cluster"] = f"The cluster {cluster.name} is dedicated to one organization."
    if isinstance(datacenter, Datacenter) and allowed:
        inside = set(datacenter.clusters.values_list("name", flat=True))
        if not inside & set(allowed):
            errors["datacenter"] = (
                f"The profile {profile.name} may only run on {', '.join(allowed)} (its cluster details): "
                f"none of them is in the datacenter {datacenter.name}."
            )
    default = datacenter is None and cluster is None
    if default and not data.get("desired") and (pool is None or is_default(pool)):
        errors["desired"] = (
            "The profile's own pool keeps at least 1 (it is the profile's warm pool size): to keep none, "
            "disable the pool or switch the profile to on demand."
        )
    clash = WarmPool.objects.filter(profile=profile, datacenter=datacenter, cluster=cluster)
    if pool is not None:
        clash = clash.exclude(pk=pool.pk)
    if clash.exists():
        where = (
            f"on {cluster.name}" if cluster else f"in {datacenter.name}" if datacenter else "without a scope"
        )
        errors["cluster" if cluster else "datacenter"] = (
            f"The profile {profile.name} already has a pool {where}: change that one."
        )
    if errors:
        raise ValidationFailed("Invalid warm pool.", fields=errors)


def _pool_details(pool: WarmPool) -> dict:
    return {
        "profile": pool.profile.name,
        "datacenter": pool.datacenter.name if pool.datacenter_id else None,
        "cluster": pool.cluster.name if pool.cluster_id else None,
        "desired": pool.desired,
        "max_gpus": pool.max_gpus,
        "enabled": pool.enabled,
    }


@transaction.atomic
def pool_create(
    *,
    actor,
    profile: ComputeProfile,
    datacenter: Datacenter | None = None,
    cluster: Cluster | None = None,
    desired: int = 0,
    max_gpus: int | None = None,
    enabled: bool = True,
) -> WarmPool:
    """A pool of ``profile`` (scoped to a datacenter or a cluster, or the profile's own pool)."""
    authz.require_operator(actor, message=ONLY_OPERATORS)
    profile = ComputeProfile.objects.select_for_update(no_key=True).get(pk=profile.pk)
    data = {
        "datacenter": datacenter,
        "cluster": cluster,
        "desired": desired,
        "max_gpus": max_gpus,
        "enabled": enabled,
    }
    _check_pool(profile, data)
    pool = WarmPool.objects.create(profile=profile, **data)
    if is_default(pool) and profile.warm_pool_size != desired:
        _set_pool_size(actor, profile, desired)
    audit_log(actor=actor, action="warm_pool.create", target=pool, details=_pool_details(pool))
    _enqueue_loop(pool.pk)
    return pool


def _set_pool_size(actor, profile: ComputeProfile, size: int) -> None:
    """The default pool's capacity is the profile's warm pool size: keep them one."""
    from catalog.services import catalog_changed

    before = profile.warm_pool_size
    profile.warm_pool_size = size
    profile.save(update_fields=["warm_pool_size", "updated_at"])
    catalog_changed()
    audit_log(
        actor=actor,
        action="computeprofile.update",
        target=profile,
        project=profile.project,
        details={"changes": {"warm_pool_size": [before, size]}, "via": "warm pool"},
    )


@transaction.atomic
def pool_update(*, actor, pool: WarmPool, **data) -> WarmPool:
    """Change a pool's scope, desired capacity, quota or enabled flag (the default pool's scope stays)."""
    authz.require_operator(actor, message=ONLY_OPERATORS)
    unknown = set(data) - set(POOL_FIELDS)
    if unknown:
        raise ValidationFailed("Unknown fields.", fields={k: "Unknown field." for k in unknown})
    pool = (
        WarmPool.objects.select_for_update(of=("self",), no_key=True)
        .select_related("profile")
        .get(pk=pool.pk)
    )
    profile = ComputeProfile.objects.select_for_update(no_key=True).get(pk=pool.profile_id)
    if is_default(pool) and (data.get("datacenter") is not None or data.get("cluster") is not None):
        raise ValidationFailed(
            "Invalid warm pool.",
            fields={
                "datacenter": "The profile's own pool has no scope: add a pool for a datacenter or cluster."
            },
        )
    merged = {field: getattr(pool, field) for field in POOL_FIELDS} | data
    _check_pool(profile, merged, pool=pool)
    changes = apply_changes(pool, data)
    if changes:
        pool.save()
        if is_default(pool) and "desired" in changes and profile.warm_pool_size != pool.desired:
            _set_pool_size(actor, profile, pool.desired)
        audit_log(actor=actor, action="warm_pool.update", target=pool, details={"changes": changes})
        _enqueue_loop(pool.pk)
    return pool


@transaction.atomic
def pool_delete(*, actor, pool: WarmPool) -> None:
    """Delete a scoped pool: its standby instances are retired by the loop (enqueued now)."""
    authz.require_operator(actor, message=ONLY_OPERATORS)
    pool = WarmPool.objects.select_for_update(of=("self",)).select_related("profile").get(pk=pool.pk)
    if is_default(pool):
        raise ValidationFailed(
            "The profile's own pool cannot be deleted.",
            fields={
                "pool": "It follows the profile's warm pool size: disable it, or switch the profile to "
                "on demand."
            },
        )
    details = _pool_details(pool) | {"standbys": pool.standbys.count()}
    audit_log(actor=actor, action="warm_pool.delete", target=pool, details=details)
    pool.delete()
    _enqueue_loop(None)  # the pool's standbys are orphans now: a full pass retires them


@transaction.atomic
def pool_converge_now(*, actor, pool: WarmPool) -> None:
    """Run the loop for this pool now rather than at its next tick."""
    authz.require_operator(actor, message=ONLY_OPERATORS)
    audit_log(actor=actor, action="warm_pool.converge", target=pool, details={"profile": pool.profile.name})
    _enqueue_loop(pool.pk)


# --- schedules ------------------------------------------------------------------------------------------


def _clean_schedule(data: dict) -> dict:
    errors: dict[str, str] = {}
    cleaned = dict(data)
    checks = {
        "days": lambda v: pool_schedules.clean_days(v),
        "start": lambda v: pool_schedules.clean_time("start", v),
        "end": lambda v: pool_schedules.clean_time("end", v),
        "timezone": lambda v: pool_schedules.clean_timezone(v),
        "desired": lambda v: pool_schedules.clean_count("desired", v),
        "position": lambda v: pool_schedules.clean_count("position", v),
    }
    for field, check in checks.items():
        try:
            cleaned[field] = check(data.get(field))
        except ValidationFailed as error:
            errors.update({k: v[0] for k, v in error.fields.items()})
    name = data.get("name")
    if not isinstance(name, str) or len(name) > 100:
        errors["name"] = "Text of at most 100 characters."
    if errors:
        raise ValidationFailed("Invalid schedule.", fields=errors)
    return cleaned


def _schedule_details(schedule: PoolSchedule) -> dict:
    return {
        "pool": schedule.pool_id,
        "name": schedule.name,
        "rule": pool_schedules.describe(schedule),
        "position": schedule.position,
    }


@transaction.atomic
def schedule_create(
    *,
    actor,
    pool: WarmPool,
    name: str = "",
    days,
    start,
    end,
    timezone: str = "UTC",
    desired: int,
    position: int = 0,
) -> PoolSchedule:
    """A rule setting ``pool``'s capacity on ``days`` from ``start`` to ``end`` (``timezone``'s clock)."""
    authz.require_operator(actor, message=ONLY_OPERATORS)
    pool = WarmPool.objects.select_for_update(of=("self",), no_key=True).get(pk=pool.pk)
    data = _clean_schedule(
        {
            "name": name,
            "days": days,
            "start": start,
            "end": end,
            "timezone": timezone,
            "desired": desired,
            "position": position,
        }
    )
    schedule = PoolSchedule.objects.create(pool=pool, **data)
    audit_log(
        actor=actor, action="warm_pool.schedule_create", target=schedule, details=_schedule_details(schedule)
    )
    _enqueue_loop(pool.pk)
    return schedule


@transaction.atomic
def schedule_update(*, actor, schedule: PoolSchedule, **data) -> PoolSchedule:
    authz.require_operator(actor, message=ONLY_OPERATORS)
    unknown = set(data) - set(SCHEDULE_FIELDS)
    if unknown:
        raise ValidationFailed("Unknown fields.", fields={k: "Unknown field." for k in unknown})
    schedule = PoolSchedule.objects.select_for_update().get(pk=schedule.pk)
    merged = _clean_schedule({field: getattr(schedule, field) for field in SCHEDULE_FIELDS} | data)
    changes = apply_changes(schedule, {k: merged[k] for k in data})
    if changes:
        schedule.save()
        audit_log(
            actor=actor,
            action="warm_pool.schedule_update",
            target=schedule,
            details=_schedule_details(schedule) | {"changes": changes},
        )
        _enqueue_loop(schedule.pool_id)
    return schedule


@transaction.atomic
def schedule_delete(*, actor, schedule: PoolSchedule) -> None:
    authz.require_operator(actor, message=ONLY_OPERATORS)
    schedule = PoolSchedule.objects.select_for_update().get(pk=schedule.pk)
    audit_log(
        actor=actor, action="warm_pool.schedule_delete", target=schedule, details=_schedule_details(schedule)
    )
    pool_id = schedule.pool_id
    schedule.delete()
    _enqueue_loop(pool_id)
