"""The deployer (worker side): render, add the isolation baseline, apply with server-side apply,
wait for readiness with a deadline, read outputs; and delete. Every step is idempotent: running a
run again converges on the same objects (server-side apply under our field manager)."""

import logging
import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Prefetch, prefetch_related_objects
from django.utils import timezone

from catalog import selectors as catalog_selectors
from catalog import templating
from instances import baseline, drift
from instances.models import Collaborator, ComputeInstance, Run
from instances.states import State
from inventory import kube
from paas.audit import audit_log

log = logging.getLogger(__name__)
GIB = 2**30
MAX_ATTEMPTS = 3
READY_TIMEOUT = 120  # seconds a deploy waits for its objects to become ready
# Baseline objects that are cluster-scoped: the platform (never a template) creates these.
CLUSTER_SCOPED_BASELINE = frozenset(
    {"Namespace", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
)  # a running run without heartbeat for this long lost its worker


class RunLog:
    """Appends timestamped steps to a run's log (each step is saved at once: a crash keeps them)."""

    def __init__(self, run: Run):
        self.run = run

    def __call__(self, message: str, **extra) -> None:
        entry = {"time": timezone.now().isoformat(), "message": message, **extra}
        self.run.log = [*self.run.log, entry]
        Run.objects.filter(pk=self.run.pk).update(log=self.run.log, heartbeat_at=timezone.now())


#: Collaborators with their users, in one query (``prefetch_related`` it when building many baselines).
COLLABORATOR_USERS = Prefetch("collaborators", queryset=Collaborator.objects.select_related("user"))


def _users(instance: ComputeInstance) -> list[str]:
    prefetch_related_objects([instance], COLLABORATOR_USERS)  # a no-op when prefetched already
    return [instance.owner.username, *(c.user.username for c in instance.collaborators.all())]


def _resources(instance: ComputeInstance) -> baseline.Resources:
    return baseline.Resources(
        cpu_millis=instance.cpu_millis,
        memory_bytes=instance.memory_gib * GIB,
        storage_bytes=max(instance.storage_gib, 1) * GIB,
        gpus=instance.gpus,
        mig=instance.mig_slices,
    )


def _context(instance: ComputeInstance, namespace: str) -> dict:
    snapshot = instance.snapshot
    declared = snapshot["template"]["inputs"]
    given = {
        k: v for k, v in (snapshot.get("input_values") or {}).items() if k in {i["name"] for i in declared}
    }
    return {
        "inputs": templating.resolve_inputs(declared, given),
        "instance": {
            "name": instance.name,
            "namespace": namespace,
            "project": instance.project.name,
            "org": instance.org.name,
            "owner": instance.owner.username,
        },
        "profile": {
            "name": snapshot["name"],
            "display_name": snapshot.get("display_name", snapshot["name"]),
            "resource_groups": [
                {**g, "cpu": g.get("cpu_cores"), "cpu_cores": g.get("cpu_cores")}
                for g in snapshot.get("resource_groups", [])
            ],
        },
    }


def render(instance: ComputeInstance, namespace: str) -> tuple[list[dict], dict]:
    """The template's objects for this instance, validated again with the real namespace."""
    template = instance.snapshot["template"]
    context = _context(instance, namespace)
    objects = templating.parse(templating.render(template["manifests"], context))
    templating.validate_objects(
        objects,
        namespace=namespace,
        custom_resources=template.get("custom_resources", []),
        allowed_custom_resources=catalog_selectors.allowed_custom_resource_kinds(),
    )
    return objects, context


def namespace_for(instance: ComputeInstance) -> str:
    return instance.namespace or baseline.namespace_name(
        org=instance.org.name, project=instance.project.name, instance=instance.name, instance_id=instance.pk
    )


def baseline_objects(instance: ComputeInstance, namespace: str) -> list[dict]:
    labels = baseline.tenant_labels(
        org=instance.org.name, project=instance.project.name, instance=instance.name, instance_id=instance.pk
    )
    return baseline.baseline(
        namespace_name=namespace,
        labels=labels,
        resources=_resources(instance),
        users=_users(instance),
        sandbox=instance.cluster.offers_sandbox_runtime,
    )


def deploy(instance: ComputeInstance, step: RunLog) -> None:
    kubeconfig = instance.cluster.kubeconfig.reveal()
    namespace = namespace_for(instance)
    if instance.namespace != namespace:
        ComputeInstance.objects.filter(pk=instance.pk).update(namespace=namespace)
        instance.namespace = namespace
    objects, context = render(instance, namespace)
    step(
        f"Rendered {len(objects)} objects from {instance.snapshot['template']['name']}@"
        f"{instance.snapshot['template']['version']}."
    )
    if instance.cluster.offers_sandbox_runtime:
        kube.ensure_objects(kubeconfig, baseline.sandbox_policy_objects())
    base = baseline_objects(instance, namespace)
    # The baseline goes first (the namespace must exist, and the quota and policies must be in force
    # before the first template pod is admitted) and again after the template, under its own field
    # manager, so that nothing the template rendered outlives it.
    drift.apply_baseline(kubeconfig, base)
    step(f"Applied the isolation baseline ({len(base)} objects) to namespace {namespace}.")
    kube.apply(kubeconfig, objects, namespace=namespace)
    step(f"Applied {len(objects)} template objects (server-side apply, field manager {kube.FIELD_MANAGER}).")
    replaced = drift.apply_baseline(kubeconfig, base)
    step(
        f"Applied the isolation baseline again over the template (field manager {baseline.FIELD_MANAGER})"
        + (f"; replaced {', '.join(replaced)}." if replaced else "; verified.")
    )
    notes = kube.wait_ready(kubeconfig, namespace, timeout=READY_TIMEOUT)
    step("Ready." + (" " + "; ".join(notes) if notes else ""))
    outputs = read_outputs(instance, kubeconfig, namespace, context)
    ComputeInstance.objects.filter(pk=instance.pk).update(outputs=outputs)
    for event in kube.events(kubeconfig, namespace, limit=20):
        step(f"event {event['type']} {event['reason']} {event['object']}: {event['message']}", kind="event")


def read_outputs(instance: ComputeInstance, kubeconfig: str, namespace: str, context: dict) -> dict:
    """Output values; a secret output is stored as a reference and read on demand, never stored."""
    values = {}
    for output in instance.snapshot["template"].get("outputs", []):
        source = output["source"]
        if source["type"] == "template":
            values[output["name"]] = templating.render(source["value"], context)
        elif source["type"] == "field":
            name = templating.render(source["name"], context)
            values[output["name"]] = kube.read_field(
                kubeconfig,
                api_version=source["apiVersion"],
                kind=source["kind"],
                name=name,
                namespace=namespace,
                path=source["path"],
            )
        elif source["type"] == "secret":
            values[output["name"]] = {
                "secret": True,
                "name": templating.render(source["name"], context),
                "key": source["key"],
            }
    return values


def delete(instance: ComputeInstance, step: RunLog, *, timeout: float = 120) -> None:
    kubeconfig = instance.cluster.kubeconfig.reveal()
    namespace = namespace_for(instance)
    kube.delete_namespace(kubeconfig, namespace)
    # The sandbox admission binding is cluster-scoped: it does not go with the namespace.
    kube.delete_objects(kubeconfig, baseline.cluster_scoped_objects(baseline_objects(instance, namespace)))
    step(f"Namespace {namespace} and its admission binding deletion requested.")
    deadline = timezone.now() + timedelta(seconds=timeout)
    while kube.namespace_exists(kubeconfig, namespace):
        if timezone.now() > deadline:
            raise TimeoutError(f"Namespace {namespace} still exists after {timeout:.0f} s.")
        time.sleep(0.5)
    step(f"Namespace {namespace} is gone.")


def _claim(run_id: int) -> Run | None:
    """Mark the run running (a new attempt), or None when it has finished already."""
    with transaction.atomic():
        run = Run.objects.select_for_update().select_related("instance").get(pk=run_id)
        if run.outcome in (Run.Outcome.SUCCEEDED, Run.Outcome.FAILED):
            return None
        run.outcome, run.attempt = Run.Outcome.RUNNING, run.attempt + 1
        run.started_at = run.heartbeat_at = timezone.now()
        run.save(update_fields=["outcome", "attempt", "started_at", "heartbeat_at"])
        instance = ComputeInstance.objects.select_for_update().get(pk=run.instance_id)
        if run.kind != Run.Kind.DELETE and instance.state in (State.PENDING, State.FAILED, State.READY):
            from instances.services import transition

            transition(
                instance, State.PROVISIONING, f"Attempt {run.attempt} of {run.get_kind_display().lower()}."
            )
        return run


def execute(run_id: int) -> str:
    """Run (or re-run) one run to its end; safe to call again after a crash."""
    run = _claim(run_id)
    if run is None:
        return "finished already"
    instance = ComputeInstance.objects.select_related("cluster", "org", "project", "owner").get(
        pk=run.instance_id
    )
    step = RunLog(run)
    step(f"Attempt {run.attempt} started.")
    try:
        if run.kind == Run.Kind.DELETE:
            delete(instance, step)
        else:
            deploy(instance, step)
    except (kube.KubeUnreachable, kube.ApplyError, TimeoutError, templating.TemplateError) as exc:
        return _failed(run, instance, step, exc)
    return _succeeded(run, instance, step)


def _succeeded(run: Run, instance: ComputeInstance, step: RunLog) -> str:
    from instances.services import transition

    with transaction.atomic():
        instance = ComputeInstance.objects.select_for_update().get(pk=instance.pk)
        target = State.DELETED if run.kind == Run.Kind.DELETE else State.READY
        transition(instance, target, "")
        Run.objects.filter(pk=run.pk).update(outcome=Run.Outcome.SUCCEEDED, finished_at=timezone.now())
        audit_log(
            actor=None,
            action=f"instance.{target}",
            target=instance,
            project=instance.project,
            details={"run": run.pk, "attempt": run.attempt},
        )
    return target


def _failed(run: Run, instance: ComputeInstance, step: RunLog, exc: Exception) -> str:
    from django_q.tasks import schedule

    from instances.services import transition

    message = (
        str(exc)
        if not isinstance(exc, templating.TemplateError)
        else "; ".join(m for ms in exc.errors.values() for m in ms)
    )
    step(f"Attempt {run.attempt} failed: {message}", level="error")
    if run.attempt < MAX_ATTEMPTS and not isinstance(exc, templating.TemplateError):
        delay = 5 * 2 ** (run.attempt - 1)
        Run.objects.filter(pk=run.pk).update(outcome=Run.Outcome.QUEUED, message=message)
        from inventory.services import queue_for_cluster

        schedule(
            "instances.tasks.run_execute",
            run.pk,
            schedule_type="O",
            repeats=1,
            next_run=timezone.now() + timedelta(seconds=delay),
            cluster=queue_for_cluster(instance.cluster),
            name=f"retry run {run.pk} attempt {run.attempt + 1}",
        )
        step(f"Retrying in {delay} s.")
        return "retrying"
    with transaction.atomic():
        instance = ComputeInstance.objects.select_for_update().get(pk=instance.pk)
        transition(instance, State.FAILED, message)
        Run.objects.filter(pk=run.pk).update(
            outcome=Run.Outcome.FAILED, message=message, finished_at=timezone.now()
        )
        audit_log(
            actor=None,
            action="instance.failed",
            target=instance,
            project=instance.project,
            details={"run": run.pk, "attempts": run.attempt, "reason": message[:500]},
        )
    return State.FAILED


def stale_runs():
    """Runs whose worker died: running without a heartbeat, or queued long ago and never taken."""
    # No heartbeat (a step written) for this long means the worker died (settings.INSTANCE_RUN_STALE_SECONDS).
    stale = timezone.now() - timedelta(seconds=settings.INSTANCE_RUN_STALE_SECONDS)
    running = Run.objects.filter(outcome=Run.Outcome.RUNNING, heartbeat_at__lt=stale)
    return running | Run.objects.filter(
        outcome=Run.Outcome.QUEUED, created_at__lt=stale, started_at__isnull=True
    )
