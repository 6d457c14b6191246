"""django-q2 entry points of the platform core (take ids, load, call services; idempotent)."""

from django.conf import settings

from paas import services


def worker_heartbeat() -> None:
    """Scheduled every minute: proves a worker is alive and taking work (read by /healthz)."""
    services.worker_heartbeat_record(cluster=settings.Q_CLUSTER["name"])
