"""Instances' gauges read at scrape time (paas/metrics.py): warm-pool levels and quota usage per org.

Warm pools: three queries (the pools with their profile and scope, their schedules, their standby
instances counted by state). Quotas: two (the orgs' quota rows; the orgs' usage counters,
``instances.counters``: a stopped instance holds only its storage). Usage counter drift: one (the
newest drift check).
"""

from __future__ import annotations

from collections import defaultdict

from django.db.models import Count, Prefetch, Q
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from instances import pool_schedules
from instances.counter_models import AMOUNTS, UsageCounter
from instances.models import PoolSchedule, StandbyInstance, WarmPool
from inventory import mig
from tenancy.models import Quota


def warm_pools():
    pools = list(
        WarmPool.objects.select_related("profile", "datacenter", "cluster")
        .prefetch_related(Prefetch("schedules", queryset=PoolSchedule.objects.order_by("position", "pk")))
        .order_by("pk")
    )
    S = StandbyInstance.State
    counts = {
        row["pool_id"]: row
        for row in StandbyInstance.objects.filter(pool__isnull=False)
        .values("pool_id")
        .annotate(
            ready=Count("pk", filter=Q(state=S.READY)),
            provisioning=Count("pk", filter=Q(state=S.PROVISIONING)),
            failed=Count("pk", filter=Q(state=S.FAILED)),
        )
        .order_by()
    }
    labels = ["pool", "profile", "scope"]
    ready = GaugeMetricFamily("paas_warm_pool_ready", "Standby instances ready to be claimed.", labels=labels)
    target = GaugeMetricFamily(
        "paas_warm_pool_target",
        "Standby instances the pool keeps ready now (its schedules applied; 0 when disabled or idle).",
        labels=labels,
    )
    provisioning = GaugeMetricFamily(
        "paas_warm_pool_provisioning", "Standby instances being built.", labels=labels
    )
    failed = GaugeMetricFamily(
        "paas_warm_pool_failed", "Standby instances whose build failed.", labels=labels
    )
    now = timezone.now()
    for pool in pools:
        scope = pool.cluster or pool.datacenter
        key = [str(pool.pk), pool.profile.name if pool.profile else "", scope.name if scope else ""]
        row = counts.get(pool.pk, {})
        ready.add_metric(key, row.get("ready", 0))
        provisioning.add_metric(key, row.get("provisioning", 0))
        failed.add_metric(key, row.get("failed", 0))
        target.add_metric(key, pool_schedules.effective_desired(pool, now, list(pool.schedules.all())))
    return [ready, target, provisioning, failed]


RESOURCES = ("gpus", "cpu_cores", "memory_gib", "storage_gib", "instances")


def quotas():
    limits = (
        Quota.objects.filter(org__isnull=False)
        .values_list("org_id", "org__name", *RESOURCES)
        .order_by("org_id")
    )
    used: dict[int, dict] = defaultdict(dict)
    # The orgs' usage counters (instances.counters): one row per org, no re-sum.
    for org_id, units, cpu, memory, storage, count in UsageCounter.objects.filter(
        project__isnull=True, user__isnull=True, gpu_model=""
    ).values_list("org_id", *AMOUNTS):
        used[org_id] = {
            "gpus": units / mig.UNITS_PER_GPU,  # a MIG slice counts its fraction of a GPU
            "cpu_cores": cpu / 1000,
            "memory_gib": memory,
            "storage_gib": storage,
            "instances": count,
        }
    labels = ["org", "resource"]
    in_use = GaugeMetricFamily(
        "paas_quota_used",
        "What the org's active instances hold, per quota resource (gpus, cpu_cores, memory_gib, "
        "storage_gib, instances).",
        labels=labels,
    )
    limit = GaugeMetricFamily(
        "paas_quota_limit", "The org's quota per resource (no series: unlimited).", labels=labels
    )
    for org_id, org, *values in limits:
        for resource, value in zip(RESOURCES, values, strict=True):
            in_use.add_metric([org, resource], float(used.get(org_id, {}).get(resource, 0)))
            if value is not None:
                limit.add_metric([org, resource], float(value))
    return [in_use, limit]


def usage_counter_drift():
    """The drift found by the newest check of the usage counters (``instances.counters.counters_check``)."""
    from instances.counters import last_check

    check = last_check()
    gauge = GaugeMetricFamily(
        "paas_usage_counter_drift",
        "Rows where the usage counters or the clusters' capacity reservations differed from a re-sum of "
        "the instances at the newest drift check (0: none; repair with manage.py usage_recount --fix).",
    )
    gauge.add_metric([], len(check.drift) if check else 0)
    return [gauge]
