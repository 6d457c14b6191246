"""django-q2 entry points of the platform core (take ids, load, call services; idempotent)."""

from django_q.conf import Conf

from paas import services


def worker_heartbeat() -> None:
    """Scheduled every minute: proves a worker is alive and taking work (read by /healthz).

    Records the worker's own queue name: ``default`` for the platform's workers, ``agent-<name>``
    for an agent's (each agent has a heartbeat schedule pinned to its queue).
    """
    services.worker_heartbeat_record(cluster=Conf.CLUSTER_NAME)
