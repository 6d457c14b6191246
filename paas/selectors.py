"""Reads of the platform core."""

import threading

from django.conf import settings
from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from paas import authz
from paas.models import ApiToken, WorkerHeartbeat


def api_token_list_for(user) -> QuerySet[ApiToken]:
    """A user's own tokens: nobody else's tokens are ever listed."""
    return ApiToken.objects.filter(user=user)


def heartbeat_list_for(user) -> QuerySet[WorkerHeartbeat]:
    """The workers' heartbeats: operators only."""
    return WorkerHeartbeat.objects.all() if authz.is_operator(user) else WorkerHeartbeat.objects.none()


def readiness(*, require_worker: bool = True) -> dict:
    """What ``/readyz`` reports: the database answers, no migration of this release is unapplied, and
    the newest heartbeat of a default-queue worker is younger than ``WORKER_HEARTBEAT_MAX_AGE_SECONDS``.
    With ``require_worker=False`` the worker is still reported but does not decide ``ok`` (a web
    replica can serve pages while the workers are down; the chart's readiness probe asks that way, so
    a worker outage does not take the whole web tier out of its Service).
    Never raises: a failing check is reported (by its exception's class name, never its message)."""
    report = {
        "ok": False,
        "database": {"ok": False},
        "migrations": {"ok": False},
        "worker": {"ok": False, "last_seen": None},
    }
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        report["database"] = {"ok": True, "vendor": connection.vendor}
    except Exception as exc:  # reported, never raised: the endpoint must answer
        report["database"] = {"ok": False, "error": exc.__class__.__name__}
        return report
    try:
        unapplied = _unapplied_migrations()
        report["migrations"] = {"ok": not unapplied, "unapplied": unapplied}
    except Exception as exc:
        report["migrations"] = {"ok": False, "error": exc.__class__.__name__}
    name = settings.Q_CLUSTER["name"]
    newest = WorkerHeartbeat.objects.filter(cluster=name).order_by("-seen_at").first()
    report["worker"] = {"ok": False, "last_seen": None, "cluster": name}
    if newest is not None:
        age = (timezone.now() - newest.seen_at).total_seconds()
        report["worker"] |= {
            "ok": age <= settings.WORKER_HEARTBEAT_MAX_AGE_SECONDS,
            "last_seen": newest.seen_at.isoformat(),
            "age_seconds": round(age, 1),
        }
    parts = ("database", "migrations", "worker") if require_worker else ("database", "migrations")
    report["ok"] = all(report[part]["ok"] for part in parts)
    return report


_all_migrations_applied = False
_migrations_lock = threading.Lock()


def _unapplied_migrations() -> int:
    """How many migrations of this release's code the database lacks. Once none, the answer is kept for
    the process's life (its code does not change; a later release's migrations are not in its graph, so
    an expand step run for the next release keeps it ready). One thread at a time loads the graph: a
    burst of probes on a fresh process waits for the first answer instead of each loading it."""
    global _all_migrations_applied
    if _all_migrations_applied:
        return 0
    with _migrations_lock:
        if _all_migrations_applied:
            return 0
        from django.db.migrations.executor import MigrationExecutor

        executor = MigrationExecutor(connection)
        unapplied = len(executor.migration_plan(executor.loader.graph.leaf_nodes()))
        _all_migrations_applied = unapplied == 0
        return unapplied
