"""Quota arithmetic: what an instance of a profile holds, what a scope has in use, what its quota
refuses.

The GPU unit: GPU quotas (an org's, a workspace's, and their per-GPU-model limits) are in GPUs. A whole
GPU counts 1 and a MIG slice the fraction of its parent GPU its compute slices take, ``Ng.*`` = N/7
(N/4 on four-slice GPUs; ``inventory.mig``): no profile type escapes a GPU quota. Amounts are stored
and compared as integer 28ths of a GPU (``ComputeInstance.gpu_units``, ``tenancy.gpu_units``), never
floats; people see them with two decimals and the exact fraction.

A per-model limit counts the whole GPUs of that model plus the MIG slices whose parent GPU is of that
model. A slice's parent is the GPU model of the nodes offering that slice on the cluster the instance
was placed on (``ComputeInstance.mig_parents``). Where several models there offer it, the scheduler may
pick any of them, so the slice counts against each of their limits (never against none).
"""

from collections import defaultdict
from decimal import Decimal

from django.db.models import Q, Sum

from catalog.models import ComputeProfile
from instances.counter_models import AMOUNTS
from instances.counters import UNKNOWN_PARENT
from instances.models import ComputeInstance
from instances.states import ACTIVE, STORAGE_ONLY
from inventory import mig
from inventory.selectors import mig_parent_models
from tenancy.models import Project, Quota

UNIT_NOTE = f"GPU quotas are in GPUs; {mig.UNIT_NOTE}."


def profile_totals(profile: ComputeProfile, *, cluster_id: int | None = None) -> dict:
    """The totals an instance of ``profile`` holds (what quotas count). ``mig_parents`` names the GPU
    models its MIG slices may run on: on ``cluster_id`` (where it is placed) or, before placement, on
    any cluster (which can only count a slice against more per-model limits, never fewer)."""
    totals = {
        "gpus": 0,
        "gpus_by_model": defaultdict(int),
        "mig_slices": defaultdict(int),
        "cpu_millis": 0,
        "memory_gib": 0,
        "storage_gib": 0,
    }
    for group in profile.resource_groups.all():
        totals["gpus"] += group.gpu_count
        if group.gpu_count:
            totals["gpus_by_model"][group.gpu_model] += group.gpu_count
        if group.mig_count:
            totals["mig_slices"][group.mig_profile] += group.mig_count
        totals["cpu_millis"] += int(group.cpu_cores * 1000)
        totals["memory_gib"] += group.memory_gib
        totals["storage_gib"] += group.storage_gib
    totals["gpus_by_model"], totals["mig_slices"] = dict(totals["gpus_by_model"]), dict(totals["mig_slices"])
    totals["gpu_units"] = mig.gpu_units(gpus=totals["gpus"], mig_slices=totals["mig_slices"])
    totals["mig_parents"] = (
        mig_parent_models(list(totals["mig_slices"]), cluster_id=cluster_id) if totals["mig_slices"] else {}
    )
    return totals


def start_totals(instance: ComputeInstance) -> dict:
    """What starting a stopped ``instance`` asks of the quotas: its compute again (its storage and the
    instance itself are counted already while it is stopped)."""
    return {
        "gpus": instance.gpus,
        "gpus_by_model": dict(instance.gpus_by_model or {}),
        "mig_slices": dict(instance.mig_slices or {}),
        "mig_parents": dict(instance.mig_parents or {}),
        "gpu_units": instance.gpu_units,
        "cpu_millis": instance.cpu_millis,
        "memory_gib": instance.memory_gib,
        "storage_gib": 0,
        "instances": 0,
    }


def model_units(model: str, gpus_by_model: dict, mig_slices: dict, mig_parents: dict) -> int:
    """GPU units that count against a per-model limit of ``model``: its whole GPUs, and the
    MIG slices whose parent may be of that model (when nobody knows a slice's parent, every model that
    can be partitioned into such slices counts it)."""
    units = mig.UNITS_PER_GPU * gpus_by_model.get(model, 0)
    for profile, count in mig_slices.items():
        parents = mig_parents.get(profile) or ()
        if model in parents or (not parents and mig.offers(model, profile)):
            units += mig.slice_units(profile) * count
    return units


#: Instances holding their compute (GPUs, MIG slices, CPU, memory): a stopped one holds only its storage.
HOLDS_COMPUTE = ~Q(state__in=STORAGE_ONLY)


format_gpus = mig.format_gpus_exact


def _check_quota(
    quota: Quota, used: dict, want: dict, scope: str, gpu_models: list, what: str = "this launch"
) -> list[str]:
    problems = []
    limit_units = None if quota.gpus is None else quota.gpus * mig.UNITS_PER_GPU
    if limit_units is not None and used["gpu_units"] + want["gpu_units"] > limit_units:
        problems.append(
            f"{scope} quota of {quota.gpus} GPUs: {format_gpus(used['gpu_units'])} in use, "
            f"{what} needs {format_gpus(want['gpu_units'])}."
        )
    asked = {
        "cpu_cores": Decimal(want["cpu_millis"]) / 1000,
        "memory_gib": want["memory_gib"],
        "storage_gib": want["storage_gib"],
        "instances": want.get("instances", 1),  # a start asks for none: the stopped instance counts
    }
    labels = {
        "cpu_cores": "CPU cores",
        "memory_gib": "GiB of memory",
        "storage_gib": "GiB of storage",
        "instances": "instances",
    }
    for field, label in labels.items():
        limit = getattr(quota, field)
        if limit is not None and used[field] + asked[field] > limit:
            problems.append(
                f"{scope} quota of {_fmt(limit)} {label}: {_fmt(used[field])} in use, "
                f"{what} needs {_fmt(asked[field])}."
            )
    for row in gpu_models:
        need = model_units(row.gpu_model, want["gpus_by_model"], want["mig_slices"], want["mig_parents"])
        in_use = in_use_of_model(row.gpu_model, used)
        if need and in_use + need > row.gpus * mig.UNITS_PER_GPU:
            problems.append(
                f"{scope} quota of {row.gpus} {row.gpu_model} GPUs: {format_gpus(in_use)} in use, "
                f"{what} needs {format_gpus(need)}."
            )
    return problems


def counted_usage(rows: dict[str, tuple]) -> dict:
    """A scope's usage as the counters keep it (``instances.counters.scope_rows``: by ``gpu_model``),
    in the form :func:`_check_quota` reads (as :func:`usage` re-sums it)."""
    units, cpu, memory, storage, count = rows.get("", (0, 0, 0, 0, 0))
    unknown = {
        model[len(UNKNOWN_PARENT) :]: amounts[0]
        for model, amounts in rows.items()
        if model.startswith(UNKNOWN_PARENT)
    }
    return {
        "gpu_units": units,
        "cpu_cores": Decimal(cpu) / 1000,
        "memory_gib": memory,
        "storage_gib": storage,
        "instances": count,
        "model_units": {m: a[0] for m, a in rows.items() if m and not m.startswith(UNKNOWN_PARENT)},
        "unknown_parent_units": unknown,
    }


def quota_problems(
    *, project: Project, wants: dict, quotas: list[Quota] | None = None, what: str = "this launch"
) -> dict[object, list]:
    """For each key of ``wants`` (resources as ``profile_totals`` gives them), what the workspace's and
    the org's quotas would refuse with today's usage (read from the usage counters, one query): the
    launch's message once its decision refused, and the portal's warning on each size card before
    anyone presses Launch. A refusal that involves GPUs ends with the unit's explanation. ``what``
    names the request in the messages ("this start")."""
    if quotas is None:
        quotas = list(
            Quota.objects.filter(Q(project=project) | Q(org_id=project.org_id)).prefetch_related("gpu_models")
        )
    from instances.counter_models import UsageCounter

    rows: dict[object, dict] = {None: {}, project.pk: {}}
    for project_id, model, *amounts in UsageCounter.objects.filter(
        Q(project__isnull=True) | Q(project=project), org_id=project.org_id, user__isnull=True
    ).values_list("project_id", "gpu_model", *AMOUNTS):
        rows[project_id][model] = tuple(amounts)
    result: dict[object, list] = {key: [] for key in wants}
    for quota in sorted(quotas, key=lambda q: q.project_id is None):
        scope = "Workspace" if quota.project_id else "Organization"
        used = counted_usage(rows[project.pk if quota.project_id else None])
        gpu_models = list(quota.gpu_models.all())
        for key, want in wants.items():
            result[key] += _check_quota(quota, used, want, scope, gpu_models, what)
    for problems in result.values():
        if any(" GPUs: " in problem for problem in problems):
            problems.append(UNIT_NOTE)
    return result


def in_use_of_model(model: str, used: dict) -> int:
    """GPU units in use that count against a per-model limit of ``model``: the model's own counter
    and the slices of unknown parent that the model offers."""
    return used["model_units"].get(model, 0) + sum(
        amount for profile, amount in used["unknown_parent_units"].items() if mig.offers(model, profile)
    )


def _fmt(value) -> str:
    return f"{Decimal(value).normalize():f}" if isinstance(value, Decimal) else str(value)


def usage_annotations(**kwargs) -> dict:
    """Receiver of ``tenancy.signals.quota_usage_annotations``: the GPU units in use in each quota's
    scope, as one subquery (the studio's quota list shows it beside the limit)."""
    from django.db.models import IntegerField, OuterRef, Subquery
    from django.db.models.functions import Coalesce

    def used(scope: str):
        rows = (
            ComputeInstance.objects.filter(**{f"{scope}_id": OuterRef(f"{scope}_id")}, state__in=ACTIVE)
            .exclude(state__in=STORAGE_ONLY)
            .order_by()
            .values(f"{scope}_id")
            .annotate(units=Sum("gpu_units"))
            .values("units")
        )
        return Subquery(rows, output_field=IntegerField())

    return {"gpu_units_in_use": Coalesce(used("org"), used("project"), 0)}
