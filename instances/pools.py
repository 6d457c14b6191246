"""LOCAL STAND-IN (pool-ui branch) for the pool-loop helper's pool services (CONTRACTS15 names), so that
the API and the studio can be written and tested; replaced by theirs on merge."""

import zoneinfo

from django.db import transaction

from instances.models import PoolSchedule, WarmPool
from paas import authz
from paas.audit import apply_changes, audit_log
from paas.errors import ValidationFailed

POOL_FIELDS = ("desired", "max_gpus", "enabled")
SCHEDULE_FIELDS = ("name", "days", "start", "end", "timezone", "desired", "position")


def _converge_on_commit(pool_id: int | None) -> None:
    from django.conf import settings
    from django_q.tasks import async_task

    transaction.on_commit(
        lambda: async_task("instances.tasks.warm_pools_converge", pool_id, cluster=settings.Q_CLUSTER["name"])
    )


def _check_pool(*, profile, datacenter, cluster, exclude=None) -> None:
    if datacenter is not None and cluster is not None:
        raise ValidationFailed(
            "A pool is scoped to a datacenter or a cluster, not both.",
            fields={"cluster": "Choose a datacenter or a cluster, not both."},
        )
    clash = WarmPool.objects.filter(profile=profile, datacenter=datacenter, cluster=cluster)
    if exclude is not None:
        clash = clash.exclude(pk=exclude.pk)
    if clash.exists():
        raise ValidationFailed(
            "This profile already has a pool for that scope.",
            fields={"profile": "This profile already has a pool for that scope."},
        )


@transaction.atomic
def pool_create(*, actor, profile, datacenter=None, cluster=None, desired=0, max_gpus=None, enabled=True):
    authz.require_operator(actor)
    _check_pool(profile=profile, datacenter=datacenter, cluster=cluster)
    pool = WarmPool.objects.create(
        profile=profile,
        datacenter=datacenter,
        cluster=cluster,
        desired=desired,
        max_gpus=max_gpus,
        enabled=enabled,
    )
    audit_log(actor=actor, action="warm_pool.create", target=pool, details={"desired": desired})
    _converge_on_commit(pool.pk)
    return pool


@transaction.atomic
def pool_update(*, actor, pool, **data):
    authz.require_operator(actor)
    pool = WarmPool.objects.select_for_update().get(pk=pool.pk)
    unknown = set(data) - set(POOL_FIELDS)
    if unknown:
        raise ValidationFailed("Unknown fields.", fields={k: "Unknown field." for k in unknown})
    changes = apply_changes(pool, data)
    pool.save()
    audit_log(actor=actor, action="warm_pool.update", target=pool, details={"changes": changes})
    _converge_on_commit(pool.pk)
    return pool


@transaction.atomic
def pool_delete(*, actor, pool) -> None:
    authz.require_operator(actor)
    audit_log(actor=actor, action="warm_pool.delete", target=pool, details={})
    pool.delete()
    _converge_on_commit(None)


def _check_schedule(data: dict) -> None:
    errors = {}
    if "days" in data and (
        not isinstance(data["days"], list)
        or not data["days"]
        or not all(isinstance(d, int) and 0 <= d <= 6 for d in data["days"])
    ):
        errors["days"] = "Days of the week: numbers 0 (Monday) to 6 (Sunday)."
    if "timezone" in data:
        try:
            zoneinfo.ZoneInfo(data["timezone"])
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            errors["timezone"] = "Not a known time zone (an IANA name such as Europe/Paris)."
    if errors:
        raise ValidationFailed("The schedule is not valid.", fields=errors)


@transaction.atomic
def schedule_create(*, actor, pool, name, days, start, end, timezone, desired, position=0):
    authz.require_operator(actor)
    data = dict(name=name, days=days, start=start, end=end, timezone=timezone, desired=desired)
    _check_schedule(data)
    schedule = PoolSchedule.objects.create(pool=pool, position=position, **data)
    audit_log(actor=actor, action="warm_pool.schedule_create", target=pool, details={"schedule": name})
    _converge_on_commit(pool.pk)
    return schedule


@transaction.atomic
def schedule_update(*, actor, schedule, **data):
    authz.require_operator(actor)
    _check_schedule(data)
    changes = apply_changes(schedule, {k: v for k, v in data.items() if k in SCHEDULE_FIELDS})
    schedule.save()
    audit_log(
        actor=actor, action="warm_pool.schedule_update", target=schedule.pool, details={"changes": changes}
    )
    _converge_on_commit(schedule.pool_id)
    return schedule


@transaction.atomic
def schedule_delete(*, actor, schedule) -> None:
    authz.require_operator(actor)
    audit_log(actor=actor, action="warm_pool.schedule_delete", target=schedule.pool, details={})
    pool_id = schedule.pool_id
    schedule.delete()
    _converge_on_commit(pool_id)


@transaction.atomic
def pool_converge_now(*, actor, pool) -> None:
    authz.require_operator(actor)
    audit_log(actor=actor, action="warm_pool.converge", target=pool, details={})
    _converge_on_commit(pool.pk)
