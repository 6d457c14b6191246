"""The worker side of actions and day-2 redeploys (``instances.actions`` queues them; the deployer's
``execute`` hands every ACTION and REDEPLOY run here).

A compute instance's ``stop``: the template re-applied with the stop action, the namespace's baseline
quota down to zero CPU, memory, GPUs and MIG slices (storage kept) so nothing new is admitted, every
workload scaled to zero (``inventory.kube.scaling``), then a wait (with a deadline, polling) until no
unfinished pod is left; its ready services go STOPPED with it (the run's log names them) and its
``start`` brings those back. ``start``: the quota restored, the template re-applied with the start
action, the workloads the stop stopped scaled back, a wait until ready. Any other action: the template
re-applied with it and a wait until ready.

A service's actions and redeploys render through ``instances.service_render`` and apply as its deploy
does (``instances.service_deployer``).

Runs here have the deployer's retries (a failed attempt is queued again with a backoff, up to
``deployer.MAX_ATTEMPTS``) and the same end: the target READY (STOPPED after a stop) or FAILED with the
reason, on the run, the target and in the audit trail.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from catalog import secret_inputs, templating
from instances import deployer, drift, pull_secrets
from instances.models import Application, ComputeInstance, Run, ServiceInstance
from instances.namespace import baseline_objects, namespace_for
from instances.rendering import instance_context, validated
from instances.states import State, transition
from inventory import kube
from inventory.kube import scaling
from paas.audit import audit_log

log = logging.getLogger(__name__)

STOP, START = "stop", "start"
STOP_TIMEOUT = 120  # seconds a stop waits for the pods to go

STOPPED_SERVICES = "stopped_services"  # the log entry key of a stop run naming the services it stopped
STOPPED_APPLICATIONS = "stopped_applications"  # ... and the applications


def _claim(run_id: int) -> Run | str | None:
    """As ``instances.deployer._claim``: None when finished, ``RUNNING_ELSEWHERE`` when another worker
    is running it now."""
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run_id)
        if run.outcome in (Run.Outcome.SUCCEEDED, Run.Outcome.FAILED):
            return None
        if deployer.taken_elsewhere(run):
            return deployer.RUNNING_ELSEWHERE
        run.outcome, run.attempt = Run.Outcome.RUNNING, run.attempt + 1
        run.started_at = run.heartbeat_at = timezone.now()
        run.save(update_fields=["outcome", "attempt", "started_at", "heartbeat_at"])
        return run


def _who(run: Run) -> str:
    return str(run.requested_by) if run.requested_by_id else "the platform"


def execute(run_id: int) -> str:
    """Run (or re-run) an action or redeploy run to its end; safe to call again after a crash."""
    run = _claim(run_id)
    if run is None:
        return "finished already"
    if run == deployer.RUNNING_ELSEWHERE:
        return deployer.RUNNING_ELSEWHERE
    instance = ComputeInstance.objects.select_related("cluster", "org", "project", "owner").get(
        pk=run.instance_id
    )
    target = (
        ServiceInstance.objects.select_related("compute_instance").get(pk=run.service_id)
        if run.service_id
        else instance
    )
    step = deployer.RunLog(run)
    if target.state in (State.DELETING, State.DELETED):
        # Deleted while the run waited (or between retries): the delete wins; nothing is applied.
        message = f"{target.name} is {target.get_state_display().lower()}; the run is dropped."
        step(message, level="error")
        Run.objects.filter(pk=run.pk).update(
            outcome=Run.Outcome.FAILED, message=message, finished_at=timezone.now()
        )
        return "dropped"
    if run.attempt > deployer.MAX_ATTEMPTS:
        return _failed(run, target, instance, step, deployer.RunAbandoned(run.attempt - 1))
    what = "redeploy" if run.kind == Run.Kind.REDEPLOY else f"{run.action} action"
    step(f"Attempt {run.attempt} of the {what} started.")
    values = secret_inputs.unseal(run.variables)  # secret variables: clear only here
    try:
        if run.service_id:
            final, reason = service_run(run, target, step, values)
            stopped = {}
        elif run.action == STOP:
            stopped = compute_stop(instance, run, step, values)
            final = State.STOPPED
            reason = (
                f"Stopped by {_who(run)}: its GPUs, CPU and memory are released; its storage "
                f"({instance.storage_gib} GiB) is kept and counted."
            )
        elif run.action == START:
            stopped = compute_start(instance, run, step, values)
            final, reason = State.READY, ""
        else:
            compute_action(instance, run, step, values)
            final, reason, stopped = State.READY, "", {}
    except (kube.KubeUnreachable, kube.ApplyError, TimeoutError, templating.TemplateError) as exc:
        return _failed(run, target, instance, step, exc)
    except Exception as exc:
        log.exception("Run %s (instance %s) failed on an unexpected error", run.pk, instance.pk)
        return _failed(run, target, instance, step, deployer.UnexpectedError(exc))
    return _succeeded(run, target, instance, step, final, reason, services=stopped)


# --- compute instances -----------------------------------------------------------------------------


def _action(run: Run, values: dict) -> dict:
    return {"name": run.action, "variables": values}


def _apply_template(instance: ComputeInstance, run: Run, step, values: dict, kubeconfig: str, namespace: str):
    template = instance.snapshot["template"]
    context = instance_context(instance, namespace) | {"action": _action(run, values)}
    objects = templating.parse(templating.render(template["manifests"], context))
    validated(objects, template=template, namespace=namespace, host_suffix=context["instance"]["host_suffix"])
    pull_secrets.inject(objects, pull_secrets.names(instance))  # as deployed (instances.deployer.deploy)
    kube.apply(kubeconfig, objects, namespace=namespace)
    step(f"Re-applied {len(objects)} template objects with the {run.action} action.")


def compute_stop(instance: ComputeInstance, run: Run, step, values: dict) -> dict:
    """Returns the ids of the services and applications stopped with the instance (they go STOPPED on
    success): ``{"services": [...], "applications": [...]}``."""
    kubeconfig, namespace = kube.shared_session(instance.cluster.kubeconfig.reveal()), namespace_for(instance)
    drift.apply_baseline(kubeconfig, baseline_objects(instance, namespace, stopped=True))
    step(
        "The namespace's quota is now zero CPU, memory, GPUs and MIG slices (storage kept): "
        "nothing new is admitted."
    )
    _apply_template(instance, run, step, values, kubeconfig, namespace)
    services = list(instance.services.filter(state=State.READY).order_by("pk").values_list("pk", "name"))
    applications = list(
        instance.applications.filter(state=State.READY).order_by("pk").values_list("pk", "name")
    )
    changed = scaling.scale_to_zero(kubeconfig, namespace)
    step("Scaled to zero: " + (", ".join(changed) if changed else "nothing was running") + ".")
    scaling.wait_pods_gone(kubeconfig, namespace, timeout=STOP_TIMEOUT)
    step("No pod is left running in the namespace.")
    if services:
        step(
            "Its running services stop with it: " + ", ".join(name for _pk, name in services) + ".",
            **{STOPPED_SERVICES: [pk for pk, _name in services]},
        )
    if applications:
        step(
            "Its running applications stop with it: " + ", ".join(name for _pk, name in applications) + ".",
            **{STOPPED_APPLICATIONS: [pk for pk, _name in applications]},
        )
    return {"services": [pk for pk, _name in services], "applications": [pk for pk, _name in applications]}


def _stopped_by_its_stop(instance: ComputeInstance) -> dict:
    """The services and applications the instance's last stop stopped that are still stopped."""
    stop = (
        instance.runs.filter(
            service__isnull=True,
            application__isnull=True,
            kind=Run.Kind.ACTION,
            action=STOP,
            outcome=Run.Outcome.SUCCEEDED,
        )
        .order_by("-finished_at", "-pk")
        .first()
    )
    found: dict[str, list[int]] = {"services": [], "applications": []}
    for entry in (stop.log if stop else []) or []:
        found["services"] += [pk for pk in entry.get(STOPPED_SERVICES) or [] if isinstance(pk, int)]
        found["applications"] += [pk for pk in entry.get(STOPPED_APPLICATIONS) or [] if isinstance(pk, int)]
    return {
        "services": list(
            instance.services.filter(pk__in=found["services"], state=State.STOPPED).values_list(
                "pk", flat=True
            )
        ),
        "applications": list(
            instance.applications.filter(pk__in=found["applications"], state=State.STOPPED).values_list(
                "pk", flat=True
            )
        ),
    }


def compute_start(instance: ComputeInstance, run: Run, step, values: dict) -> dict:
    """Returns the ids of the services and applications its stop stopped (they go READY again on
    success), as ``compute_stop`` does."""
    kubeconfig, namespace = kube.shared_session(instance.cluster.kubeconfig.reveal()), namespace_for(instance)
    drift.apply_baseline(kubeconfig, baseline_objects(instance, namespace, stopped=False))
    step("The namespace's quota holds the instance's GPUs, CPU and memory again.")
    _apply_template(instance, run, step, values, kubeconfig, namespace)
    restored = scaling.scale_back(kubeconfig, namespace)
    step("Scaled back: " + (", ".join(restored) if restored else "nothing had been running") + ".")
    services = _stopped_by_its_stop(instance)
    notes = kube.wait_ready(kubeconfig, namespace, timeout=deployer.READY_TIMEOUT)
    step("Ready." + (" " + "; ".join(notes) if notes else ""))
    return services


def compute_action(instance: ComputeInstance, run: Run, step, values: dict) -> None:
    kubeconfig, namespace = kube.shared_session(instance.cluster.kubeconfig.reveal()), namespace_for(instance)
    _apply_template(instance, run, step, values, kubeconfig, namespace)
    notes = kube.wait_ready(kubeconfig, namespace, timeout=deployer.READY_TIMEOUT)
    step("Ready." + (" " + "; ".join(notes) if notes else ""))


# --- services ------------------------------------------------------------------------------------------


def service_run(run: Run, service: ServiceInstance, step, values: dict) -> tuple[str, str]:
    """A service's action or redeploy; returns the state it ends in and why.

    Redeploy: the service's deploy with its new inputs (objects the template no longer renders are
    deleted). ``stop``: the template applied with the stop action (``run_strategy``), whatever of it
    still runs scaled to zero, a wait until its pods are gone. ``start`` (and any other action): what
    a stop scaled down scaled back, then the deploy with the action, which waits until it is ready.
    """
    from instances import service_deployer

    service = service_deployer.target(run)
    if run.kind == Run.Kind.REDEPLOY:
        service_deployer.deploy(service, step)
        return State.READY, ""
    action = _action(run, values)
    compute = service.compute_instance
    kubeconfig, namespace = kube.shared_session(compute.cluster.kubeconfig.reveal()), compute.namespace
    selector = service_deployer.selector(service)
    if run.action == STOP:
        from instances.service_render import service_render

        objects, _context = service_render(service, action=action)
        service_deployer.decorate(objects, service)
        kube.apply(kubeconfig, objects, namespace=namespace)
        step(f"Applied {len(objects)} objects with the stop action.")
        changed = scaling.scale_to_zero(kubeconfig, namespace, label_selector=selector)
        if changed:
            step("Scaled to zero: " + ", ".join(changed) + ".")
        scaling.wait_pods_gone(kubeconfig, namespace, label_selector=selector, timeout=STOP_TIMEOUT)
        step("None of its pods is left.")
        return State.STOPPED, (
            f"Stopped by {_who(run)}: its GPUs, CPU and memory are released within {compute.name}; "
            f"its storage is kept."
        )
    restored = scaling.scale_back(kubeconfig, namespace, label_selector=selector)
    if restored:
        step("Scaled back: " + ", ".join(restored) + ".")
    service_deployer.deploy(service, step, action=action)
    return State.READY, ""


# --- the end of a run ---------------------------------------------------------------------------------


def _noun(target) -> str:
    return "service" if isinstance(target, ServiceInstance) else "instance"


def _move(target, state: str, reason: str) -> None:
    """The run's end state, from ``provisioning`` (the state the request put it in) only: a target
    deleted meanwhile stays deleting."""
    if target.state == State.PROVISIONING:
        transition(target, state, reason)


def _succeeded(
    run: Run, target, instance: ComputeInstance, step, final: str, reason: str, *, services
) -> str:
    with transaction.atomic():
        target = type(target).objects.select_for_update().get(pk=target.pk)
        _move(target, final, reason)
        Run.objects.filter(pk=run.pk).update(outcome=Run.Outcome.SUCCEEDED, finished_at=timezone.now())
        deployer.run_observed(run, Run.Outcome.SUCCEEDED)
        audit_log(
            actor=None,
            action=f"{_noun(target)}.{final}",
            target=target,
            project=target.project,
            details={"run": run.pk, "attempt": run.attempt, "action": run.action or run.kind},
        )
        # The services and applications of a compute instance stopped (or started) with it.
        if services and not run.service_id:
            _follow(run, instance, final, services)
    step(f"{target.name} is {State(final).label.lower()}.")
    return final


def _follow(run: Run, instance: ComputeInstance, final: str, ids: dict) -> None:
    """The services and applications (``ids``: ``{"services": [...], "applications": [...]}``) of a
    compute instance go STOPPED with its stop, READY again with its start."""
    reason = (
        f"Stopped with its compute instance {instance.name} (by {_who(run)})."
        if final == State.STOPPED
        else ""
    )
    for model, noun, key in (
        (ServiceInstance, "service", "services"),
        (Application, "application", "applications"),
    ):
        for row in model.objects.select_for_update().filter(pk__in=ids.get(key) or []):
            if (final == State.STOPPED and row.state == State.READY) or (
                final == State.READY and row.state == State.STOPPED
            ):
                transition(row, State.PROVISIONING, reason)
                transition(row, final, reason)
                audit_log(
                    actor=None,
                    action=f"{noun}.{final}",
                    target=row,
                    project=row.project,
                    details={"run": run.pk, "with_instance": instance.pk},
                )


def _failed(run: Run, target, instance: ComputeInstance, step, exc: Exception) -> str:
    message, retrying = deployer.attempt_failed(run, instance.cluster, step, exc)
    if retrying:
        return "retrying"
    with transaction.atomic():
        target = type(target).objects.select_for_update().get(pk=target.pk)
        if target.state == State.PROVISIONING:  # (a target deleted meanwhile stays deleting)
            transition(target, State.FAILED, message)
        Run.objects.filter(pk=run.pk).update(
            outcome=Run.Outcome.FAILED, message=message, finished_at=timezone.now()
        )
        deployer.run_observed(run, Run.Outcome.FAILED)
        audit_log(
            actor=None,
            action=f"{_noun(target)}.failed",
            target=target,
            project=target.project,
            details={"run": run.pk, "attempts": run.attempt, "reason": message[:500]},
        )
    return State.FAILED
