"""Warm pools, worker side: build a standby instance, delete a retired one, hand one over to the
instance that claimed it (tasks in ``instances.tasks``; the CLAIM run through ``instances.deployer``).

A standby instance is an instance namespace without a tenant: the profile snapshot's template rendered
with a neutral identity (:data:`instances.rendering.STANDBY_IDENTITY`), the isolation baseline with
nobody in it (no ServiceAccount of anyone, a RoleBinding without subjects) and the standby labels
(:func:`instances.baseline.standby_labels`: the guardrails bind it, no org/workspace/instance labels),
and placeholder pods (``instances.placeholders``) that hold the rest of the profile's capacity.

The hand-over (:func:`handover`) is fast: no wait for anything to become ready (what runs there was
ready when the standby was) nor for the placeholders' pods to terminate (they are deleted without a
grace period, so they stop counting against the quota at once). Three sequences of requests run side
by side over one client session (the API server's discovery reused from an earlier session of the
process for a minute: ``inventory.kube.Session``):

1. the placeholders are deleted (so the quota has room for what the user starts);
2. the baseline objects that say who the tenant is (:data:`IDENTITY_KINDS`: the Namespace with the
   tenant labels instead of the standby ones, the owner's and collaborators' ServiceAccounts, the Role
   and its RoleBinding) are applied under the baseline's field manager;
3. the template rendered with the real instance context is applied (server-side apply: what did not
   change is not touched), then the objects of the standby's render that the new one lacks are deleted;

then the outputs are read as a deploy reads them, and the rest of the baseline (the quota, limits and
network policies, whose rules are the standby's already: the same profile totals) is relabelled by
``instances.tasks.baseline_apply``, enqueued at once, off the claim's path.

Every step is idempotent: a re-driven run repeats them all. A retry after a failed hand-over is a full
deploy (``instances.deployer.deploy`` removes the placeholders and the standby's leftovers too).
"""

import logging
import time
from concurrent.futures import ThreadPoolExecutor

from django.db import transaction
from django.db.models import Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from catalog import templating
from instances import (
    baseline,
    capacity,
    deployer,
    drift,
    placeholders,
    pool_quota,
    pull_secrets,
    rendering,
    workloads,
)
from instances.models import ComputeInstance, Run, StandbyInstance
from instances.namespace import baseline_objects, held_resources
from inventory import guardrails, kube
from inventory.routing import enqueue_for_cluster
from paas.audit import audit_log

log = logging.getLogger(__name__)

#: The baseline objects a hand-over applies before the instance is ready: those that say who the
#: tenant is. The others keep the standby's rules, which are the instance's (the same profile totals),
#: and get the tenant labels from ``instances.tasks.baseline_apply``, enqueued at once.
IDENTITY_KINDS = ("Namespace", "ServiceAccount", "Role", "RoleBinding")

PRIORITY_CLASS = placeholders.PRIORITY_CLASS
#: How long a standby's build waits for its objects and placeholder pods: longer than a deploy's (a cluster
#: autoscaler may be adding a node for the placeholders), shorter than a task's timeout (600 s).
READY_TIMEOUT = 300
DELETE_TIMEOUT = 120
HEARTBEAT_EVERY = 10  # seconds between heartbeats while waiting (far below INSTANCE_RUN_STALE_SECONDS)
State = StandbyInstance.State


class Retired(Exception):
    """The standby left the state this worker was driving (retired meanwhile): leave it to the loop."""


def _beat(standby: StandbyInstance, state: str = State.PROVISIONING) -> None:
    """Record a heartbeat, and stop if the standby is no longer in ``state``."""
    if not StandbyInstance.objects.filter(pk=standby.pk, state=state).update(heartbeat_at=timezone.now()):
        raise Retired(standby.pk)


def standby_baseline(standby: StandbyInstance) -> list[dict]:
    """The isolation baseline of a standby namespace: the standby labels, the profile's quota, nobody."""
    return baseline.baseline(
        namespace_name=standby.namespace,
        labels=baseline.standby_labels(standby.pk),
        resources=held_resources(standby),
        users=[],
    )


def _identities(objects: list[dict]) -> list[dict]:
    return [
        {"apiVersion": o["apiVersion"], "kind": o["kind"], "name": o["metadata"]["name"]} for o in objects
    ]


# --------------------------------------------------------------------------------- standby deploy
def standby_deploy(*, standby_id: int) -> str:
    """Build (or finish building) a standby instance on its cluster; returns its state afterwards.

    PROVISIONING -> READY once its objects are ready and its placeholder pods bound and running, or
    -> FAILED with the reason (and a platform audit event ``warm_pool.standby_failed``). A standby
    retired while this runs is left as it is, for the loop (each step checks it and beats)."""
    with transaction.atomic():
        standby = StandbyInstance.objects.select_for_update().select_related("cluster").get(pk=standby_id)
        if standby.state != State.PROVISIONING:
            return standby.state
        standby.attempts += 1
        standby.heartbeat_at = timezone.now()
        standby.save(update_fields=["attempts", "heartbeat_at"])
    try:
        applied, notes = _build(standby)
    except Retired:
        return _left(standby)
    except Exception as exc:
        if not isinstance(
            exc, (kube.KubeUnreachable, kube.ApplyError, TimeoutError, templating.TemplateError)
        ):
            log.exception("Standby instance %s failed on an unexpected error", standby_id)
            exc = deployer.UnexpectedError(exc)
        return _standby_failed(standby, exc)
    now = timezone.now()
    done = StandbyInstance.objects.filter(pk=standby_id, state=State.PROVISIONING).update(
        state=State.READY, ready_at=now, heartbeat_at=now, state_reason="", objects_applied=applied
    )
    if not done:
        return _left(standby)
    log.info("Standby instance %s ready: %s", standby.namespace, "; ".join(notes))
    return State.READY


def _left(standby: StandbyInstance) -> str:
    """The state of a standby retired while it was being built. Should its deletion have finished
    already, a step of the build may have made the namespace again after it: it goes once more."""
    state = StandbyInstance.objects.get(pk=standby.pk).state
    if state == State.DELETED:
        try:
            kube.delete_namespace(standby.cluster.kubeconfig.reveal(), standby.namespace)
        except kube.KubeUnreachable as exc:
            log.warning("Standby instance %s: namespace left behind: %s", standby.namespace, exc)
    return state


def _build(standby: StandbyInstance) -> tuple[list[dict], list[str]]:
    cluster = standby.cluster
    objects, _context = rendering.snapshot_render(
        standby.snapshot, namespace=standby.namespace, cluster=cluster, identity=rendering.STANDBY_IDENTITY
    )
    deployer.require_guardrails(cluster)  # they bind the standby namespace by its instance-id label
    with kube.Session(cluster.kubeconfig.reveal()) as session:  # one connection and discovery for all
        return _identities(objects), _apply_standby(standby, session, objects)


def _apply_standby(standby: StandbyInstance, kubeconfig, objects: list[dict]) -> list[str]:
    cluster, namespace = standby.cluster, standby.namespace
    kube.ensure_objects(kubeconfig, [placeholders.priority_class()], field_manager=baseline.FIELD_MANAGER)
    base = standby_baseline(standby)
    _beat(standby)
    drift.apply_baseline(kubeconfig, base)  # the namespace and its quota before any pod
    _beat(standby)
    kube.apply(kubeconfig, objects, namespace=namespace)
    _beat(standby)
    runtime_class = (
        kube.runtime_class(kubeconfig, guardrails.SANDBOX_RUNTIME_CLASS)
        if cluster.offers_sandbox_runtime
        else None
    )
    holders = placeholders.placeholders(
        namespace=namespace,
        groups=standby.snapshot.get("resource_groups", []),
        used=workloads.usage_of(objects),
        labels=baseline.standby_labels(standby.pk),
        runtime_class=runtime_class,
    )
    kube.apply(kubeconfig, holders, namespace=namespace, field_manager=baseline.FIELD_MANAGER)
    _beat(standby)
    drift.apply_baseline(kubeconfig, base)  # again over the template: the baseline wins
    return _wait_ready(standby, kubeconfig)


def _wait_ready(standby: StandbyInstance, kubeconfig: str) -> list[str]:
    """Wait for the namespace to be ready as a deploy waits for it (the placeholder pods bound and
    running included), with a heartbeat every :data:`HEARTBEAT_EVERY` seconds so that the loop never
    takes the wait for a dead worker."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        left = deadline - time.monotonic()
        try:
            return kube.wait_ready(
                kubeconfig,
                standby.namespace,
                timeout=max(min(HEARTBEAT_EVERY, left), 0),
            )
        except TimeoutError as exc:
            if time.monotonic() >= deadline:
                waiting = str(exc).split("s: ", 1)[-1]  # what is not ready, as wait_ready says it
                raise TimeoutError(
                    f"Not ready in namespace {standby.namespace} after {READY_TIMEOUT} s: {waiting}"
                ) from exc
        _beat(standby)


def _standby_failed(standby: StandbyInstance, exc: Exception) -> str:
    message = (
        str(exc)
        if not isinstance(exc, templating.TemplateError)
        else "; ".join(m for ms in exc.errors.values() for m in ms)
    )
    with transaction.atomic():
        current = StandbyInstance.objects.select_for_update().select_related("cluster").get(pk=standby.pk)
        retired = current.state != State.PROVISIONING  # meanwhile (the failure may be its deletion's)
        if not retired:
            standby = current
            standby.state, standby.state_reason = State.FAILED, message[:2000]
            standby.heartbeat_at = timezone.now()
            standby.save(update_fields=["state", "state_reason", "heartbeat_at"])
            audit_log(
                actor=None,
                org=None,
                action="warm_pool.standby_failed",
                target=standby,
                details={
                    "standby": standby.pk,
                    "pool": standby.pool_id,
                    "profile": standby.snapshot.get("name"),
                    "cluster": standby.cluster.name,
                    "namespace": standby.namespace,
                    "attempts": standby.attempts,
                    "reason": message[:500],
                },
            )
    if retired:
        return _left(standby)
    log.warning("Standby instance %s failed: %s", standby.namespace, message)
    return State.FAILED


# --------------------------------------------------------------------------------- standby delete
def standby_delete(*, standby_id: int) -> str:
    """Delete a retired standby's namespace and wait until it is gone: RETIRING -> DELETED.

    Any other state is left as it is (returned). Should the cluster not answer or the namespace not go
    in time, it stays RETIRING with the reason; the loop re-drives it when its heartbeat is old."""
    standby = StandbyInstance.objects.select_related("cluster").get(pk=standby_id)
    if standby.state != State.RETIRING:
        return standby.state
    try:
        _beat(standby, State.RETIRING)
        with kube.Session(standby.cluster.kubeconfig.reveal()) as session:
            _delete_namespace(standby, session)
    except Retired:
        return StandbyInstance.objects.get(pk=standby_id).state
    except (kube.KubeUnreachable, TimeoutError) as exc:
        StandbyInstance.objects.filter(pk=standby_id, state=State.RETIRING).update(
            state_reason=f"Deletion not finished: {exc}"[:2000]
        )
        log.warning("Standby instance %s: deletion not finished: %s", standby.namespace, exc)
        return State.RETIRING
    now = timezone.now()
    with transaction.atomic():  # its capacity goes back to the cluster and its pool with the move
        if StandbyInstance.objects.filter(pk=standby_id, state=State.RETIRING).update(
            state=State.DELETED, retired_at=Coalesce("retired_at", Value(now)), heartbeat_at=now
        ):
            capacity.standby_released(standby)
            pool_quota.standby_left(standby)
    return StandbyInstance.objects.get(pk=standby_id).state


def _delete_namespace(standby: StandbyInstance, kubeconfig) -> None:
    namespace = standby.namespace
    # Its placeholders and the template's objects go first, without waiting: a claim's protection
    # finalizer is lifted before the namespace controller's first pass, which then finds it empty
    # (about 6 s instead of 11 on the local control plane).
    remove_placeholders(kubeconfig, namespace)
    kube.delete_objects(
        kubeconfig,
        [
            {
                "apiVersion": o["apiVersion"],
                "kind": o["kind"],
                "metadata": {"name": o["name"], "namespace": namespace},
            }
            for o in standby.objects_applied
        ],
    )
    kube.delete_namespace(kubeconfig, namespace)
    deadline = time.monotonic() + DELETE_TIMEOUT
    beat = time.monotonic()
    while kube.namespace_exists(kubeconfig, namespace):
        if time.monotonic() > deadline:
            raise TimeoutError(f"Namespace {namespace} still exists after {DELETE_TIMEOUT} s.")
        if time.monotonic() - beat > HEARTBEAT_EVERY:
            _beat(standby, State.RETIRING)
            beat = time.monotonic()
        time.sleep(0.2)


# ---------------------------------------------------------------------------------------- hand-over
def remove_placeholders(kubeconfig: str, namespace: str) -> None:
    """Delete a standby namespace's placeholder Deployments and their pods at once (no wait)."""
    kube.delete_workloads(kubeconfig, namespace, label_selector=placeholders.LABEL_PLACEHOLDER)


def handed_over(instance: ComputeInstance) -> bool:
    """Whether the instance's hand-over run succeeded (the standby's leftovers are gone then; a later
    deploy must not delete objects of those names, which may be the tenant's own by now)."""
    return instance.runs.filter(kind=Run.Kind.CLAIM, outcome=Run.Outcome.SUCCEEDED).exists()


def delete_standby_objects(kubeconfig: str, instance: ComputeInstance, objects: list[dict]) -> list[str]:
    """Delete the template objects of the standby's render that ``objects`` (the instance's render) no
    longer has; returns ``Kind/name`` of those."""
    standby = StandbyInstance.objects.filter(instance=instance).only("objects_applied").first()
    keep = {(o["apiVersion"], o["kind"], o["metadata"]["name"]) for o in objects}
    stale = [
        {
            "apiVersion": o["apiVersion"],
            "kind": o["kind"],
            "metadata": {"name": o["name"], "namespace": instance.namespace},
        }
        for o in (standby.objects_applied if standby else [])
        if (o["apiVersion"], o["kind"], o["name"]) not in keep
    ]
    if stale:
        kube.delete_objects(kubeconfig, stale)
    return [f"{o['kind']}/{o['metadata']['name']}" for o in stale]


def handover(run, instance: ComputeInstance, step) -> None:
    """The CLAIM run's work: the claimed standby becomes ``instance`` (see the module's docstring).
    One client session for all of it: a dozen requests over one connection, one API discovery."""
    namespace = instance.namespace
    if not namespace:
        raise ValueError("A claiming instance has the standby's namespace; this one has none.")
    with (
        kube.Session(instance.cluster.kubeconfig.reveal()) as session,
        ThreadPoolExecutor(max_workers=2) as background,
    ):
        # Latency is the point here: three independent sequences of requests run side by side over
        # the session. The placeholders go (they hold nothing the tenant has yet); the baseline objects
        # that carry who the tenant is are applied (the Namespace with the tenant labels the cluster's
        # rules select on, the ServiceAccounts, the Role and its RoleBinding: see IDENTITY_KINDS); the
        # template is rendered for the instance and applied. The template may not render a baseline
        # object (reserved names), so the order between the two cannot change what the baseline ends
        # as. A failure of any fails the run; its retry is a full deploy.
        removing = background.submit(remove_placeholders, session, namespace)
        deployer.require_guardrails(instance.cluster)
        base = [o for o in baseline_objects(instance, namespace) if o["kind"] in IDENTITY_KINDS]
        baselining = background.submit(drift.apply_baseline, session, base)
        objects, context = rendering.instance_render(instance, namespace)
        # The pull secrets themselves follow at once (instances.receivers: the instance became ready).
        pull_secrets.inject(objects, pull_secrets.names(instance))
        applied = kube.apply(session, objects, namespace=namespace)
        removing.result()
        stale = delete_standby_objects(session, instance, objects)
        replaced = baselining.result()
        # Field outputs of the objects just applied are read from what the API server returned.
        outputs = deployer.read_outputs(instance, session, namespace, context, applied=applied)
    step(
        f"Handed over standby namespace {namespace}: placeholder pods removed; applied {len(objects)} "
        f"template objects rendered for {instance.name}"
        + (f" (deleted {', '.join(stale)} of the standby's render)" if stale else "")
        + f" and the isolation baseline with the tenant identity ({len(base)} objects"
        + (f"; replaced {', '.join(replaced)})." if replaced else ").")
    )
    ComputeInstance.objects.filter(pk=instance.pk).update(outputs=outputs)
    # The rest of the baseline (quota, limits, network policies: the standby's, same rules, only their
    # labels still the standby's) is relabelled right after, off the claim's path.
    enqueue_for_cluster(instance.cluster, "instances.tasks.baseline_apply", instance.pk)
