"""Claiming a warm pool's standby instance in a launch: what a launch snapshots, the digest that
tells whether a standby was built from the same snapshot, which standby instances a launch may claim,
and the claim itself (inside the launch's transaction, ``SELECT ... FOR UPDATE SKIP LOCKED``: two
launches never get the same standby, and neither waits for the other)."""

import hashlib
import json
import logging

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from catalog.models import ComputeProfile
from catalog.pricing import price_snapshot
from catalog.services import profile_snapshot
from instances.models import StandbyInstance
from inventory.models import Cluster

log = logging.getLogger(__name__)
RUN_EXECUTE = "instances.tasks.run_execute"


def launch_snapshot(profile: ComputeProfile) -> dict:
    """The profile as an instance keeps it (template manifests, inputs with secret values still sealed,
    outputs, actions, price): what a launch stores, and what a standby instance is built from."""
    version = profile.template_version
    return profile_snapshot(profile) | {
        "profile_id": profile.pk,
        "name": profile.name,
        "template": {
            "name": version.template.name,
            "version": version.version,
            "manifests": version.manifests,
            "inputs": version.inputs,
            "outputs": version.outputs,
            "actions": version.actions,
            "custom_resources": version.custom_resources,
        },
        "input_values": profile.input_values,
        "price": price_snapshot(profile),
    }


#: Snapshot keys that say how the profile is offered, not what an instance of it is: a standby built
#: before a change of these is still the same instance (resizing a pool must not rebuild it).
DIGEST_IGNORES = frozenset({"warm_pool_size", "allocation_strategy", "published"})


def snapshot_digest(snapshot: dict) -> str:
    """SHA-256 of the snapshot's canonical JSON: equal digests, equal snapshots (any edit of the profile
    or of its template version gives another digest, so standby instances of the old one are retired),
    except the keys of :data:`DIGEST_IGNORES` (the pool's size, the strategy, published)."""
    kept = {k: v for k, v in snapshot.items() if k not in DIGEST_IGNORES}
    text = json.dumps(kept, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def allowed_clusters_q(profile: ComputeProfile, *, org_id: int | None) -> Q:
    """The clusters a launch of ``profile`` by ``org_id`` may use, whatever their free capacity: reachable,
    not dedicated to another org, and among the profile's ``cluster_details`` when it names any (the
    matchmaker's own rules, as a filter on clusters)."""
    q = Q(status__in=(Cluster.Status.REACHABLE, Cluster.Status.DEGRADED))
    q &= (
        (Q(dedicated_org__isnull=True) | Q(dedicated_org_id=org_id))
        if org_id
        else Q(dedicated_org__isnull=True)
    )
    names = [c.strip() for c in (profile.input_values.get("cluster_details") or "").split(",") if c.strip()]
    if names:
        q &= Q(name__in=names)
    return q


def claimable(profile: ComputeProfile, *, org_id: int, digest: str) -> QuerySet[StandbyInstance]:
    """Ready standby instances a launch of ``profile`` (snapshot ``digest``) by ``org_id`` may claim,
    longest ready first. Any org with the profile in its catalog may claim (the launch checked that)."""
    clusters = Cluster.objects.filter(allowed_clusters_q(profile, org_id=org_id))
    return StandbyInstance.objects.filter(
        profile=profile,
        state=StandbyInstance.State.READY,
        snapshot_digest=digest,
        cluster__in=clusters,
    ).order_by("ready_at", "pk")


def claim(profile: ComputeProfile, *, org_id: int, digest: str) -> StandbyInstance | None:
    """Lock one claimable standby for this launch's transaction, or None (the launch goes on demand).

    ``SKIP LOCKED``: a standby another launch is claiming right now is passed over, never waited for.
    The caller marks it claimed (:func:`mark_claimed`) in the same transaction."""
    return (
        claimable(profile, org_id=org_id, digest=digest)
        .select_for_update(skip_locked=True, of=("self",))
        .select_related("cluster")
        .first()
    )


def mark_claimed(standby: StandbyInstance, instance) -> None:
    standby.state, standby.instance, standby.claimed_at = (
        StandbyInstance.State.CLAIMED,
        instance,
        timezone.now(),
    )
    standby.state_reason = f"Claimed by {instance.project}/{instance.name}."
    standby.save(update_fields=["state", "instance", "claimed_at", "state_reason"])


def after_claim(run, cluster: Cluster) -> None:
    """On commit of a claiming launch: hand the standby over at once and refill the pool.

    Where the platform's own workers serve the cluster (no agent), the web tier reaches it: the
    hand-over runs right here, in the request, so that the instance is ready when the launch answers
    (``instances.deployer.execute`` of the claim run; should it fail for any reason, the run goes to the
    cluster's queue instead). Behind an agent, the run is enqueued on the agent's queue at once. Either
    way the pool's loop is enqueued now, not at its next tick.
    """
    from django.conf import settings
    from django.utils.module_loading import import_string
    from django_q.tasks import async_task

    from inventory.routing import queue_for_cluster

    queue = queue_for_cluster(cluster)

    def hand_over() -> None:
        if queue == settings.Q_CLUSTER["name"]:
            # The task run here, by name, as a worker of the default queue would run it (the services
            # never import the deployer); it handles its own failures (retries go to the queue).
            try:
                import_string(RUN_EXECUTE)(run.pk)
            except Exception:  # anything the run could not record itself: the queue takes it over
                log.exception("Warm-pool hand-over of run %s failed in the request; queued instead", run.pk)
                async_task(RUN_EXECUTE, run.pk, cluster=queue)
        else:
            async_task(RUN_EXECUTE, run.pk, cluster=queue)
        async_task("instances.tasks.warm_pools_converge", cluster=settings.Q_CLUSTER["name"])

    transaction.on_commit(hand_over)
