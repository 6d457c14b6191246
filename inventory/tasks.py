"""django-q2 entry points of the inventory: take ids, call services; safe to run again."""

from inventory import services
from paas.context import Client, client_context


def cluster_refresh(cluster_id: int) -> int:
    """Check reachability, then mirror the nodes. Returns the number of nodes seen."""
    with client_context(client=Client.TASK):
        services.cluster_check(cluster_id=cluster_id)
        return services.cluster_sync_nodes(cluster_id=cluster_id)


def inventory_sync() -> int:
    """Scheduled: enqueue a refresh of every cluster on the queue of the agent that reaches it."""
    with client_context(client=Client.TASK):
        return services.inventory_sync_all()


def mig_change_apply(change_id: int) -> str:
    with client_context(client=Client.TASK):
        return services.mig_change_apply(change_id=change_id).state
