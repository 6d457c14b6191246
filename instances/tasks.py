"""django-q2 entry points for instances: take ids, call the worker side (deployer, access, drift)."""

from instances import deployer
from paas.context import Client, client_context


def run_execute(run_id: int) -> str:
    with client_context(client=Client.TASK):
        return deployer.execute(run_id)


def access_refresh(instance_id: int) -> None:
    """Re-apply the namespace's access objects after collaborators changed."""
    with client_context(client=Client.TASK):
        deployer.access_apply(instance_id=instance_id)


def identity_remove(instance_id: int, username: str) -> None:
    with client_context(client=Client.TASK):
        deployer.identity_remove(instance_id=instance_id, username=username)


def access_sync(instance_id: int) -> list[str]:
    """Make the namespace's people exactly those who may use the instance now (revocation)."""
    from instances import access

    with client_context(client=Client.TASK):
        return access.access_sync(instance_id=instance_id)


def reconcile() -> int:
    """Scheduled: re-drive runs whose worker died (a killed worker, a lost task)."""
    with client_context(client=Client.TASK):
        return deployer.reconcile()


def baseline_repair(cluster_id: int) -> dict:
    """Enqueued by the reconcile per cluster: repair drift of the isolation baselines of ready instances."""
    from instances import drift

    with client_context(client=Client.TASK):
        return drift.baseline_repair(cluster_id=cluster_id)
