"""Routing work to agents: the django-q2 queue whose workers reach a cluster or a datacenter (a cluster
behind a firewall, a private repository), and enqueueing there on commit."""

from django.conf import settings
from django.db import transaction
from django_q.tasks import async_task

from inventory.models import Agent, Cluster, DatacenterAgent


def queue_for_cluster(cluster: Cluster) -> str:
    """The django-q2 queue of the agent that reaches ``cluster``.

    The datacenter's mapped agent (global settings) when there is one; otherwise a global agent;
    otherwise the platform's default workers.
    """
    return queue_for_datacenter(cluster.datacenter_id)


def queue_for_datacenter(datacenter_id: int | None) -> str:
    """The queue of the agent serving a datacenter (by id; None: a global agent, else the default
    workers): work that must reach what that datacenter reaches (a cluster, a private repository)."""
    if datacenter_id:
        mapping = DatacenterAgent.objects.select_related("agent").filter(datacenter_id=datacenter_id).first()
        if mapping:
            return mapping.agent.queue
    agent = Agent.objects.filter(datacenter__isnull=True).order_by("name").first()
    return agent.queue if agent else settings.Q_CLUSTER["name"]  # the default workers


def enqueue_for_datacenter(datacenter_id: int | None, func: str, *args) -> None:
    """Enqueue ``func(*args)`` on commit, for the workers of the agent serving the datacenter."""
    enqueue_on(queue_for_datacenter(datacenter_id), func, *args)


def enqueue_on(queue: str, func: str, *args) -> None:
    """Enqueue ``func(*args)`` on commit on ``queue`` (read with :func:`queue_for_cluster` or
    :func:`queue_for_datacenter` earlier, outside the caller's critical section)."""
    transaction.on_commit(lambda: async_task(func, *args, cluster=queue))


def enqueue_for_cluster(cluster: Cluster, func: str, *args) -> None:
    """Enqueue ``func(*args)`` on commit, for the workers of the cluster's agent. Args are ids."""
    enqueue_for_datacenter(cluster.datacenter_id, func, *args)
