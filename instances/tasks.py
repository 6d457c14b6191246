"""django-q2 entry points for instances: take ids, call the worker side (deployer, access, drift)."""

from instances import deployer, run_pool
from paas.context import Client, client_context


def run_execute(run_id: int) -> str:
    """Execute a run: on this worker's pool of threads, several at once (``instances.run_pool``)."""
    return run_pool.submit(run_id)


def application_status(application_id: int) -> dict:
    """On the cluster's agent: read the status and events of an application's objects now."""
    from instances import application_deployer

    with client_context(client=Client.TASK):
        return application_deployer.status(application_id)


def access_refresh(instance_id: int) -> None:
    """Re-apply the namespace's access objects after collaborators changed."""
    with client_context(client=Client.TASK):
        deployer.access_apply(instance_id=instance_id)


def baseline_apply(instance_id: int) -> list[str]:
    """Apply an instance's whole isolation baseline (after a warm pool's hand-over)."""
    with client_context(client=Client.TASK):
        return deployer.baseline_apply(instance_id=instance_id)


def identity_remove(instance_id: int, username: str) -> None:
    with client_context(client=Client.TASK):
        deployer.identity_remove(instance_id=instance_id, username=username)


def access_sync(instance_id: int) -> list[str]:
    """Make the namespace's people exactly those who may use the instance now (revocation)."""
    from instances import access

    with client_context(client=Client.TASK):
        return access.access_sync(instance_id=instance_id)


def pull_secrets_sync(instance_id: int) -> list[str] | None:
    """Make the instance's namespace hold exactly the pull secrets of the registries its workspace sees
    (enqueued on a registry's change and when the instance becomes ready; ``instances.pull_secrets``)."""
    from instances import pull_secrets

    with client_context(client=Client.TASK):
        return pull_secrets.sync(instance_id=instance_id)


def reconcile() -> int:
    """Scheduled: re-drive runs whose worker died (a killed worker, a lost task)."""
    with client_context(client=Client.TASK):
        return deployer.reconcile()


def baseline_repair(cluster_id: int) -> dict:
    """Enqueued by the reconcile per cluster: repair drift of the isolation baselines of ready instances."""
    from instances import drift

    with client_context(client=Client.TASK):
        return drift.baseline_repair(cluster_id=cluster_id)


# --- warm pools ---------------------------------------------------------------------------------------


def warm_pools_converge(pool_id: int | None = None) -> dict:
    """Scheduled every minute, and enqueued at once after each claim and pool edit: bring every pool
    (or ``pool_id``) to its desired capacity (``instances.pool_loop``)."""
    from instances import pool_loop

    with client_context(client=Client.TASK):
        return {str(k): v for k, v in pool_loop.converge(pool_id=pool_id).items()}


def standby_deploy(standby_id: int) -> str:
    """On the cluster's agent: build one standby instance (namespace, template, placeholder pods)."""
    from instances import pool_deployer

    with client_context(client=Client.TASK):
        return pool_deployer.standby_deploy(standby_id=standby_id)


def standby_delete(standby_id: int) -> str:
    """On the cluster's agent: remove a retired standby instance's namespace."""
    from instances import pool_deployer

    with client_context(client=Client.TASK):
        return pool_deployer.standby_delete(standby_id=standby_id)


def usage_counters_check() -> int:
    """The periodic drift check of the usage counters and capacity reservations (reports, repairs
    nothing: ``manage.py usage_recount --fix`` does). Returns the number of drifting rows."""
    from instances.counters import counters_check

    with client_context(client=Client.TASK):
        return len(counters_check())
