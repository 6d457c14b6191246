"""Reads of the platform core."""

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


def health() -> dict:
    """Database reachability and the newest worker heartbeat."""
    report = {"database": {"ok": False}, "worker": {"ok": False, "last_seen": None}}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        report["database"] = {"ok": True, "vendor": connection.vendor}
    except Exception as exc:  # reported, never raised: the endpoint must answer
        report["database"] = {"ok": False, "error": exc.__class__.__name__}
        report["ok"] = False
        return report
    newest = WorkerHeartbeat.objects.filter(cluster=settings.Q_CLUSTER["name"]).order_by("-seen_at").first()
    if newest is not None:
        age = (timezone.now() - newest.seen_at).total_seconds()
        report["worker"] = {
            "ok": age <= settings.WORKER_HEARTBEAT_MAX_AGE_SECONDS,
            "last_seen": newest.seen_at.isoformat(),
            "age_seconds": round(age, 1),
            "cluster": newest.cluster,
        }
    report["ok"] = report["database"]["ok"] and report["worker"]["ok"]
    return report
