"""Receivers of tenancy's signals that are about instances as a whole (not one instance's access)."""

from instances.models import ComputeInstance, ServiceInstance
from instances.states import State
from paas.errors import Conflict

SHOWN_NAMES = 5


def project_deleting(*, project, actor, **kwargs) -> None:
    """Receiver of ``tenancy.signals.project_deleting`` (inside the delete's transaction).

    A workspace that still has instances (anything not yet deleted: running, failed, being deleted)
    is not deleted: their namespaces and GPUs would be orphaned. The rows of deleted instances (their
    runs and collaborators) go with the workspace; the audit trail keeps their history.
    """
    live = ComputeInstance.objects.filter(project=project).exclude(state=State.DELETED).order_by("name")
    names = list(live.values_list("name", flat=True)[: SHOWN_NAMES + 1])
    if names:
        count = live.count()
        shown = ", ".join(names[:SHOWN_NAMES]) + (", …" if count > SHOWN_NAMES else "")
        noun = "instance" if count == 1 else "instances"
        raise Conflict(
            f"The workspace still has {count} {noun} ({shown}): delete {'it' if count == 1 else 'them'} "
            "first, then delete the workspace.",
            code="project_not_empty",
        )
    ServiceInstance.objects.filter(project=project, state=State.DELETED).delete()  # (they protect theirs)
    ComputeInstance.objects.filter(project=project, state=State.DELETED).delete()


# --- container registries' pull secrets --------------------------------------------------------------


def _enqueue_pull_secret_syncs(instances) -> int:
    """On commit, one ``pull_secrets_sync`` per instance, each on its cluster's agent queue."""
    from django.db import transaction
    from django_q.tasks import async_task

    from inventory.routing import queue_for_cluster

    queues: dict[int, str] = {}
    jobs = []
    for instance in instances:
        if instance.cluster_id not in queues:
            queues[instance.cluster_id] = queue_for_cluster(instance.cluster)
        jobs.append((instance.pk, queues[instance.cluster_id]))
    if jobs:
        transaction.on_commit(
            lambda: [async_task("instances.tasks.pull_secrets_sync", pk, cluster=queue) for pk, queue in jobs]
        )
    return len(jobs)


def registry_changed(*, registry_id, reason, project_ids=(), **kwargs) -> int:
    """Receiver of ``catalog.signals.registry_changed`` (inside the change's transaction): every active
    compute instance of the projects that saw the registry before or see it now gets its pull secrets
    re-synced on commit (delivered, rotated or removed: ``instances.pull_secrets.sync``)."""
    from instances.pull_secrets import SYNCED_STATES

    affected = (
        ComputeInstance.objects.filter(project_id__in=list(project_ids), state__in=SYNCED_STATES)
        .exclude(cluster__isnull=True)
        .select_related("cluster")
        .order_by("pk")
    )
    return _enqueue_pull_secret_syncs(affected)


def instance_ready(*, sender, instance, previous, state, **kwargs) -> None:
    """Receiver of ``instances.signals.instance_state_changed``: a compute instance that became ready
    (deployed, started, or a warm-pool standby it claimed) gets its pull secrets synced on commit (a
    claimed standby had none: it belonged to no workspace)."""
    if sender is not ComputeInstance or state != State.READY or not instance.cluster_id:
        return
    from instances.pull_secrets import registries_for

    if registries_for(instance.project):  # (nothing to deliver: nothing to sync; a deploy removes leftovers)
        _enqueue_pull_secret_syncs([instance])
