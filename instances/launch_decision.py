"""The launch decision: the one step of a launch (or of a start) that depends on concurrent launches,
taken last in its transaction as one conditional statement on the usage counters
(``instances.counters.counters_take``).

Bounded there: the workspace's and the org's quotas (GPU units, CPU, memory, storage, instances, and
per-model GPU limits) and the owner's per-user limits in the org and in the workspace (instances, GPU
units). The limits are read first, without a lock (:func:`limits_for`): a limit changed while a launch
is deciding applies from the next launch on. A refusal is explained with today's messages, computed
from the counters the refused statement left locked (what the decision saw).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q

from instances import counters
from instances.counter_models import UsageCounter
from instances.quota import model_units, quota_problems
from instances.states import State
from instances.user_limits import InstanceLimitReached, limit_problems
from inventory import mig
from paas.errors import Conflict
from tenancy.limit_selectors import instance_limits_applying
from tenancy.models import Project, Quota


@dataclass(frozen=True)
class Limits:
    """What bounds a launch in a workspace: its quota rows (with their per-model limits) and the
    per-user instance limits applying there."""

    quotas: list[Quota]
    instance_limits: list


def limits_for(*, project: Project, user=None) -> Limits:
    """The limits of a launch in ``project`` (three queries, no lock)."""
    quotas = list(
        Quota.objects.filter(Q(project=project) | Q(org_id=project.org_id))
        .prefetch_related("gpu_models")
        .order_by("project_id")
    )
    return Limits(quotas=quotas, instance_limits=instance_limits_applying(project))


def _bounds(*, project: Project, user_id: int, rows: dict, want: dict, limits: Limits) -> dict:
    """Per counter row, the bound of each amount (None: unbounded). ``rows`` gains a zero row where a
    per-model limit must be checked that the request does not grow itself (slices of unknown parent)."""
    org = project.org_id
    bounds: dict = {}
    unknown: dict | None = None
    for quota in limits.quotas:
        scope = project.pk if quota.project_id else None
        cpu = None if quota.cpu_cores is None else int(quota.cpu_cores * 1000)
        gpus = None if quota.gpus is None else quota.gpus * mig.UNITS_PER_GPU
        bounds[(org, scope, None, "")] = (gpus, cpu, quota.memory_gib, quota.storage_gib, quota.instances)
        for row in quota.gpu_models.all():
            key = (org, scope, None, row.gpu_model)
            need = model_units(row.gpu_model, want["gpus_by_model"], want["mig_slices"], want["mig_parents"])
            if not need:
                continue  # (as the quota's own check: a request that needs none of a model passes it)
            if unknown is None:  # slices of unknown parent in use count against every model offering them
                unknown = {
                    (r.project_id, r.gpu_model[len(counters.UNKNOWN_PARENT) :]): r.gpu_units
                    for r in UsageCounter.objects.filter(
                        org_id=org, user__isnull=True, gpu_model__startswith=counters.UNKNOWN_PARENT
                    ).filter(Q(project__isnull=True) | Q(project_id=project.pk))
                }
            in_unknown = sum(
                units
                for (pid, profile), units in unknown.items()
                if pid == scope and mig.offers(row.gpu_model, profile)
            )
            grows = rows.setdefault(key, counters.ZERO)[0]
            bounds[key] = (row.gpus * mig.UNITS_PER_GPU - in_unknown - (need - grows), None, None, None, None)
    for limit in limits.instance_limits:
        key = (org, limit.project_id, user_id, "")
        units, _cpu, _memory, _storage, count = rows.get(key, counters.ZERO)
        gpus = limit.max_gpus_per_user
        cap = limit.max_active_instances_per_user
        bounds[key] = (
            gpus * mig.UNITS_PER_GPU if gpus is not None and units else None,
            None,
            None,
            None,
            cap if cap is not None and count else None,
        )
    return bounds


def launch_rows(*, project: Project, user, want: dict) -> dict:
    """What a new instance of ``want`` launched by ``user`` holds, per counter row."""
    facts = counters.facts(org_id=project.org_id, project_id=project.pk, owner_id=user.pk, totals=want)
    return counters.holds(facts, State.PENDING)


def take(
    *,
    project: Project,
    user,
    want: dict,
    limits: Limits,
    rows: dict | None = None,
    actor=None,
    what: str = "this launch",
    prefix: str = "Over quota: ",
) -> None:
    """The decision: grow the counters by ``rows`` (default: a launch of ``want`` by ``user``, the
    owner) if every limit holds, or refuse, naming the limits (``Conflict`` ``quota_exceeded`` or
    ``InstanceLimitReached``) and changing nothing."""
    rows = dict(launch_rows(project=project, user=user, want=want) if rows is None else rows)
    bounds = _bounds(project=project, user_id=user.pk, rows=rows, want=want, limits=limits)
    if not counters.counters_take(rows, bounds):
        return
    _refuse(project=project, user=user, want=want, limits=limits, actor=actor, what=what, prefix=prefix)
    raise Conflict(  # (the counters refused, yet nothing reads over: a limit changed meanwhile)
        prefix + "a limit changed while this was decided; try again.", code="quota_exceeded"
    )


def refuse_if_over(*, project: Project, user, want: dict, limits: Limits, what: str = "this launch") -> None:
    """Raise the refusal a decision would give now (read, nothing taken): for a launch that cannot go
    on anyway (no capacity), so that over quota is still said first."""
    _refuse(project=project, user=user, want=want, limits=limits, what=what, prefix="Over quota: ")


def _refuse(*, project, user, want, limits: Limits, actor=None, what: str, prefix: str) -> None:
    problems = quota_problems(project=project, wants={"want": want}, quotas=limits.quotas, what=what)["want"]
    if problems:
        raise Conflict(prefix + " ".join(problems), code="quota_exceeded")
    who = "you" if actor is None or actor.pk == user.pk else str(user)
    problems = limit_problems(
        project=project, user=user, wants={"want": want}, who=who, what=what, limits=limits.instance_limits
    )["want"]
    if problems:
        raise InstanceLimitReached("Instance limit reached: " + " ".join(problems))
