"""Instances' gauges read at scrape time (paas/metrics.py): warm-pool levels and quota usage per org.

Warm pools: three queries (the pools with their profile and scope, their schedules, their standby
instances counted by state). Quotas: two (the orgs' quota rows; the active instances' usage summed by
org, as ``instances.quota.usage`` counts it: a stopped instance holds only its storage).
"""

from __future__ import annotations

from collections import defaultdict

from django.db.models import Count, Prefetch, Q, Sum
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from instances import pool_schedules
from instances.models import ComputeInstance, PoolSchedule, StandbyInstance, WarmPool
from instances.quota import HOLDS_COMPUTE
from instances.states import ACTIVE
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
    for row in (
        ComputeInstance.objects.filter(state__in=ACTIVE)
        .values("org_id")
        .annotate(
            units=Sum("gpu_units", filter=HOLDS_COMPUTE),
            cpu=Sum("cpu_millis", filter=HOLDS_COMPUTE),
            memory=Sum("memory_gib", filter=HOLDS_COMPUTE),
            storage=Sum("storage_gib"),
            count=Count("pk"),
        )
        .order_by()
    ):
        used[row["org_id"]] = {
            "gpus": (row["units"] or 0) / mig.UNITS_PER_GPU,  # a MIG slice counts its fraction of a GPU
            "cpu_cores": (row["cpu"] or 0) / 1000,
            "memory_gib": row["memory"] or 0,
            "storage_gib": row["storage"] or 0,
            "instances": row["count"],
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
