"""Inventory's gauges read at scrape time (paas/metrics.py): cluster reachability, and the task queues
of the default workers and of each agent.

Three queries: the clusters; the agents (so that an agent's queue with nothing on it shows 0, not
nothing); django-q2's queued tasks grouped by queue (``OrmQ``: a row per task not yet done; its
``lock`` is the time it was queued until a worker takes it, then that time plus ``retry``).
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import Count, Min, Q
from django.utils import timezone
from django_q.models import OrmQ
from prometheus_client.core import GaugeMetricFamily

from inventory.models import Agent, Cluster

REACHABLE = (Cluster.Status.REACHABLE, Cluster.Status.DEGRADED)


def clusters():
    reachable = GaugeMetricFamily(
        "paas_cluster_reachable",
        "1 when the last reachability check reached the cluster's API server (reachable or degraded).",
        labels=["cluster"],
    )
    status = GaugeMetricFamily(
        "paas_cluster_status",
        "The cluster's status from its last check (1 for the current one): unknown, reachable, degraded, "
        "unreachable.",
        labels=["cluster", "status"],
    )
    checked = GaugeMetricFamily(
        "paas_cluster_last_check_age_seconds",
        "Seconds since the cluster was last checked.",
        labels=["cluster"],
    )
    now = timezone.now()
    for name, current, last_checked_at in Cluster.objects.order_by("name").values_list(
        "name", "status", "last_checked_at"
    ):
        reachable.add_metric([name], 1 if current in REACHABLE else 0)
        for choice in Cluster.Status.values:
            status.add_metric([name, choice], 1 if choice == current else 0)
        if last_checked_at is not None:
            checked.add_metric([name], (now - last_checked_at).total_seconds())
    return [reachable, status, checked]


def queues():
    now = timezone.now()
    waiting = Q(lock__isnull=True) | Q(lock__lte=now)
    rows = {
        row["key"]: row
        for row in OrmQ.objects.values("key")
        .annotate(
            waiting=Count("pk", filter=waiting),
            taken=Count("pk", filter=~waiting),
            oldest=Min("lock", filter=waiting),
        )
        .order_by()
    }
    agents = Agent.objects.values_list("name", flat=True)
    names = {settings.Q_CLUSTER["name"], *(Agent(name=name).queue for name in agents)}
    tasks = GaugeMetricFamily(
        "paas_queue_tasks",
        "Tasks on the queue: waiting for a worker, or taken by one (running, or to be delivered again "
        "after the retry time if its worker died).",
        labels=["queue", "state"],
    )
    age = GaugeMetricFamily(
        "paas_queue_oldest_task_age_seconds",
        "Seconds the oldest waiting task of the queue has waited (0: none waits).",
        labels=["queue"],
    )
    for name in sorted(names | set(rows)):
        row = rows.get(name, {})
        tasks.add_metric([name, "waiting"], row.get("waiting", 0))
        tasks.add_metric([name, "taken"], row.get("taken", 0))
        oldest = row.get("oldest")
        age.add_metric([name], max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)
    return [tasks, age]
