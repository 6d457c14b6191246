"""django-q2 entry points of the platform core (take ids, load, call services; idempotent)."""

from django_q.conf import Conf

from paas import services


def worker_heartbeat() -> None:
    """Scheduled every minute: proves a worker is alive and taking work (read by /readyz).

    Records the worker's own queue name: ``default`` for the platform's workers, ``agent-<name>``
    for an agent's (each agent has a heartbeat schedule pinned to its queue).
    """
    services.worker_heartbeat_record(cluster=Conf.CLUSTER_NAME)


def audit_checkpoint() -> None:
    """Scheduled: checkpoint every audit chain's head, catching up on commits whose own on-commit
    checkpoint never ran (a process that died right after committing, an unwritable store)."""
    from paas.checkpoints import checkpoint_all

    checkpoint_all()


def audit_seal() -> None:
    """Scheduled every minute: chain the committed audit events still unsealed (their process ended
    between its commit and its on-commit sealing) and checkpoint those chains."""
    from paas.audit import audit_seal_pending

    audit_seal_pending()


def audit_stream() -> None:
    """Scheduled every minute: stream the audit chains to their sinks (paas/audit_stream.py), polling
    for new events for most of the minute."""
    from paas.audit_stream import run

    run()
