"""The deployer (worker side): render, add the isolation baseline, apply with server-side apply,
wait for readiness with a deadline, read outputs; and delete. Every step is idempotent: running a
run again converges on the same objects (server-side apply under our field manager)."""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from catalog import sources, templating
from instances import baseline, drift, pull_secrets
from instances.models import Application, ComputeInstance, Run, ServiceInstance
from instances.namespace import baseline_objects, namespace_for
from instances.rendering import instance_context as _context  # noqa: F401  (tests read it here)
from instances.rendering import instance_render as render
from instances.states import State, transition
from inventory import guardrails, kube
from inventory.models import Cluster
from inventory.routing import enqueue_for_cluster, queue_for_cluster
from paas import metrics
from paas.audit import audit_log
from paas.keyring import SecretUnreadable

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 3
READY_TIMEOUT = 120  # seconds a deploy waits for its objects to become ready


class RunLog:
    """Appends timestamped steps to a run's log (each step is saved at once: a crash keeps them)."""

    def __init__(self, run: Run):
        self.run = run

    def __call__(self, message: str, **extra) -> None:
        self.many([(message, extra)])

    def many(self, steps: list[tuple[str, dict]]) -> None:
        """Several steps in one write (e.g. the namespace's events at the end of a deploy)."""
        now = timezone.now()
        entries = [{"time": now.isoformat(), "message": message, **extra} for message, extra in steps]
        if not entries:
            return
        self.run.log = [*self.run.log, *entries]
        Run.objects.filter(pk=self.run.pk).update(log=self.run.log, heartbeat_at=now)


def _require_guardrails(instance: ComputeInstance) -> None:
    require_guardrails(instance.cluster)


def require_guardrails(cluster: Cluster) -> None:
    """The cluster's guardrails are current before a tenant namespace is made (installed now if not)."""
    from inventory.guardrail_services import cluster_guardrails_sync

    record = cluster.guardrails or {}
    if record.get("version") != guardrails.GUARDRAILS_VERSION or record.get("error"):
        record = cluster_guardrails_sync(cluster_id=cluster.pk).guardrails
    if record.get("version") != guardrails.GUARDRAILS_VERSION or record.get("error"):
        raise kube.KubeUnreachable(record.get("error") or "The cluster's guardrails are not installed.")


def overlaps_baseline(objects: list[dict], base: list[dict]) -> list[str]:
    """``Kind/name`` of the rendered ``objects`` that are also baseline objects (same kind, name and
    namespace): the only objects whose apply can change a baseline object (server-side apply touches
    the object it names and no other). Templates may not render the baseline's reserved names, so this
    is empty unless that check failed."""
    keys = {(o["kind"], o["metadata"]["name"]) for o in base}
    named = [(o["kind"], o["metadata"]["name"]) for o in objects]
    return [f"{kind}/{name}" for kind, name in named if (kind, name) in keys]


def deploy(instance: ComputeInstance, step: RunLog) -> None:
    # One client per cluster for the whole process: its connections stay open and its API discovery
    # is made once, so a deploy is its writes, one wait and a few reads (docs/architecture.md).
    namespace = namespace_for(instance)
    if instance.namespace != namespace:
        ComputeInstance.objects.filter(pk=instance.pk).update(namespace=namespace)
        instance.namespace = namespace
    objects, context = render(instance, namespace)
    step(
        f"Rendered {len(objects)} objects from {instance.snapshot['template']['name']}@"
        f"{instance.snapshot['template']['version']}."
    )
    _require_guardrails(instance)  # the cluster-wide rules (sandbox included) bind by the tenant labels
    kubeconfig = kube.shared_session(instance.cluster.kubeconfig.reveal())  # (once rendered: a bad
    # snapshot fails as itself, before the cluster is reached)
    base = baseline_objects(instance, namespace)
    # The baseline goes first, under its own field manager (the namespace must exist, and the quota and
    # policies must be in force before the first template pod is admitted).
    drift.apply_baseline(kubeconfig, base)
    step(f"Applied the isolation baseline ({len(base)} objects) to namespace {namespace}.")
    pulls = pull_secrets.ensure(instance, kubeconfig)  # the registries' pull secrets, for the template's pods
    pull_secrets.inject(objects, pulls)
    if pulls:
        step(f"Delivered the container registries' pull secrets: {', '.join(pulls)}.")
    from instances import pool_deployer

    # A retry after a failed hand-over: the standby's placeholders go first, its leftovers after.
    leftovers = instance.from_warm_pool and not pool_deployer.handed_over(instance)
    if leftovers:
        pool_deployer.remove_placeholders(kubeconfig, namespace)
    kube.apply(kubeconfig, objects, namespace=namespace)
    if leftovers:
        pool_deployer.delete_standby_objects(kubeconfig, instance, objects)
    step(f"Applied {len(objects)} template objects (server-side apply, field manager {kube.FIELD_MANAGER}).")
    # Server-side apply changes only the objects it names: the baseline can have been touched by the
    # template only through an object of the same kind and name. Applied again (and verified) then;
    # otherwise it stands as the first apply left it, and a dozen requests are saved.
    overlapping = overlaps_baseline(objects, base)
    if overlapping:
        replaced = drift.apply_baseline(kubeconfig, base)
        step(
            f"Applied the isolation baseline again over the template (field manager "
            f"{baseline.FIELD_MANAGER}; the template named {', '.join(overlapping)})"
            + (f"; replaced {', '.join(replaced)}." if replaced else "; verified.")
        )
    else:
        step("The isolation baseline stands over the template: no template object names a baseline object.")
    notes = kube.wait_ready(kubeconfig, namespace, timeout=READY_TIMEOUT)
    step("Ready." + (" " + "; ".join(notes) if notes else ""))
    outputs = read_outputs(instance, kubeconfig, namespace, context)
    ComputeInstance.objects.filter(pk=instance.pk).update(outputs=outputs)
    events = kube.events(kubeconfig, namespace, limit=20)
    lines = [f"event {e['type']} {e['reason']} {e['object']}: {e['message']}" for e in events]
    step.many([(line, {"kind": "event"}) for line in lines])  # one write for all of them


def read_outputs(
    instance: ComputeInstance, kubeconfig: str, namespace: str, context: dict, *, applied: list[dict] = ()
) -> dict:
    """Output values; a secret output is stored as a reference and read on demand, never stored.
    ``applied``: objects as the API server just returned them (a field output of one is read there)."""
    known = {(o.get("apiVersion"), o.get("kind"), (o.get("metadata") or {}).get("name")): o for o in applied}
    values = {}
    for output in instance.snapshot["template"].get("outputs", []):
        source = output["source"]
        if source["type"] == "template":
            values[output["name"]] = templating.render(source["value"], context)
        elif source["type"] == "field":
            name = templating.render(source["name"], context)
            stored = known.get((source["apiVersion"], source["kind"], name))
            if stored is not None:
                values[output["name"]] = kube.field_at(stored, source["path"])
                continue
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
    from instances import service_deployer

    service_deployer.delete_services_of(instance, kubeconfig, step)  # its services and applications first
    session = kube.shared_session(kubeconfig)
    kube.delete_namespace(session, namespace)
    # Baseline objects a namespace deletion leaves behind (none today: the guardrails are cluster-wide).
    kube.delete_objects(session, baseline.cluster_scoped_objects(baseline_objects(instance, namespace)))
    step(f"Namespace {namespace} deletion requested.")
    kube.wait_namespace_gone(session, namespace, timeout=timeout)  # a watch: no poll
    step(f"Namespace {namespace} is gone.")


def taken_elsewhere(run: Run) -> bool:
    """Whether another worker is running ``run`` now: running, with a heartbeat (a step written) within
    ``settings.INSTANCE_RUN_STALE_SECONDS``. A run whose worker died has no fresh heartbeat; the
    reconcile re-queues it (and a task delivered again after its worker died finds it stale)."""
    if run.outcome != Run.Outcome.RUNNING or run.heartbeat_at is None:
        return False
    return run.heartbeat_at >= timezone.now() - timedelta(seconds=settings.INSTANCE_RUN_STALE_SECONDS)


RUNNING_ELSEWHERE = "running elsewhere"


def _claim(run_id: int) -> Run | str | None:
    """Mark the run running (a new attempt); None when it has finished already, and
    :data:`RUNNING_ELSEWHERE` when another worker is running it (the same task delivered twice, or to
    two workers: the run is applied once, not twice)."""
    with transaction.atomic():
        run = Run.objects.select_for_update().select_related("instance").get(pk=run_id)
        if run.outcome in (Run.Outcome.SUCCEEDED, Run.Outcome.FAILED):
            return None
        if taken_elsewhere(run):
            log.info("Run %s is being run by another worker (attempt %s): not run twice", run.pk, run.attempt)
            return RUNNING_ELSEWHERE
        run.outcome, run.attempt = Run.Outcome.RUNNING, run.attempt + 1
        run.started_at = run.heartbeat_at = timezone.now()
        run.save(update_fields=["outcome", "attempt", "started_at", "heartbeat_at"])
        model, pk = (
            (ServiceInstance, run.service_id)
            if run.service_id
            else (Application, run.application_id)
            if run.application_id
            else (ComputeInstance, run.instance_id)
        )
        target = model.objects.select_for_update().get(pk=pk)
        if run.kind != Run.Kind.DELETE and target.state in (State.DELETING, State.DELETED):
            # Deleted before this run (or its retry) got its turn: nothing to deploy any more.
            message = f"Not run: the {_noun(target)} is {target.get_state_display().lower()}."
            Run.objects.filter(pk=run.pk).update(
                outcome=Run.Outcome.FAILED, message=message, finished_at=timezone.now()
            )
            return None
        if run.kind != Run.Kind.DELETE and target.state in (State.PENDING, State.FAILED, State.READY):
            transition(
                target, State.PROVISIONING, f"Attempt {run.attempt} of {run.get_kind_display().lower()}."
            )
        return run


def _work(run: Run, instance: ComputeInstance, step: RunLog) -> None:
    if run.kind == Run.Kind.DELETE:
        delete(instance, step)
    else:
        deploy(instance, step)


def execute(run_id: int) -> str:
    """Run (or re-run) one run to its end; safe to call again after a crash."""
    if Run.objects.filter(pk=run_id, kind__in=(Run.Kind.ACTION, Run.Kind.REDEPLOY)).exists():
        from instances import action_deployer  # actions and day-2 redeploys: their own worker module

        return action_deployer.execute(run_id)
    run = _claim(run_id)
    if run is None:
        return "finished already"
    if run == RUNNING_ELSEWHERE:
        return RUNNING_ELSEWHERE
    if run.service_id:  # a run of a service instance (instance is the compute instance it runs on)
        from instances import service_deployer

        instance, work = service_deployer.target(run), service_deployer.work
    elif run.application_id:  # a run of an application (instance is the compute instance it runs on)
        from instances import application_deployer

        instance, work = application_deployer.target(run), application_deployer.work
    elif run.kind == Run.Kind.CLAIM:  # a warm pool's standby handed over to the instance that claimed it
        from instances import pool_deployer

        instance = ComputeInstance.objects.select_related("cluster", "org", "project", "owner").get(
            pk=run.instance_id
        )
        work = pool_deployer.handover
    else:
        instance = ComputeInstance.objects.select_related("cluster", "org", "project", "owner").get(
            pk=run.instance_id
        )
        work = _work
    step = RunLog(run)
    if run.attempt > MAX_ATTEMPTS:
        # Only a worker that died mid-run (re-driven by the reconcile) gets here: stop re-driving it.
        return _failed(run, instance, step, RunAbandoned(run.attempt - 1))
    step(f"Attempt {run.attempt} started.")
    try:
        work(run, instance, step)
    except (
        kube.KubeUnreachable,
        kube.ApplyError,
        TimeoutError,
        templating.TemplateError,
        sources.FetchFailed,  # an application's repository: retried like an unreachable cluster
    ) as exc:
        return _failed(run, instance, step, exc)
    except SecretUnreadable as exc:  # a secret input of an org whose keys were destroyed: said as it is
        return _failed(run, instance, step, exc)
    except Exception as exc:
        # Anything else is a fault of ours or an answer we did not expect: the run fails with its reason
        # (on the run, the instance and in the audit trail) instead of staying "running" for the
        # reconcile to re-drive forever. Not retried: the same input meets the same error.
        log.exception("Run %s (instance %s) failed on an unexpected error", run.pk, instance.pk)
        return _failed(run, instance, step, UnexpectedError(exc))
    return _succeeded(run, instance, step)


class RunAbandoned(Exception):
    """A run whose worker stopped (killed, lost) in every attempt it was given."""

    def __init__(self, attempts: int):
        super().__init__(
            f"The worker stopped during {attempts} attempts without finishing; the run is given up."
        )


class UnexpectedError(Exception):
    """An exception the deployer does not expect, said in one short line (type and first line)."""

    def __init__(self, exc: BaseException):
        first_line = (str(exc).strip().splitlines() or [""])[0][:300]
        super().__init__(
            f"Unexpected error ({type(exc).__name__}{': ' + first_line if first_line else ''}); "
            "the operators' log has the details."
        )


def _noun(target) -> str:
    """The audit noun of a run's target: ``service``, ``application`` or ``instance``."""
    if isinstance(target, ServiceInstance):
        return "service"
    return "application" if isinstance(target, Application) else "instance"


def run_observed(run: Run, outcome: str) -> None:
    """Count the run's outcome (``paas_deploys_total``, with its duration from its creation) once the
    transaction that records it commits (now, outside one)."""
    target = "service" if run.service_id else "application" if run.application_id else "instance"
    seconds = (timezone.now() - run.created_at).total_seconds() if outcome != "retrying" else None
    transaction.on_commit(
        lambda: metrics.deploy_observed(target=target, kind=run.kind, outcome=outcome, seconds=seconds)
    )


def _superseded(run: Run, instance, outcome: str, message: str) -> bool:
    """A deploy run that ends after a delete of its target was requested (the target is DELETING or
    DELETED): the run ends with ``outcome`` and says so, the target's state is the delete's to move
    (neither READY nor FAILED over a delete). Inside the run's end transaction, the target locked."""
    if run.kind == Run.Kind.DELETE or instance.state not in (State.DELETING, State.DELETED):
        return False
    note = f"The {_noun(instance)} was deleted meanwhile: its delete run removes what this run applied."
    Run.objects.filter(pk=run.pk).update(
        outcome=outcome, message=f"{message} {note}".strip(), finished_at=timezone.now()
    )
    run_observed(run, outcome)
    return True


def _succeeded(run: Run, instance, step: RunLog) -> str:
    with transaction.atomic():
        instance = type(instance).objects.select_for_update().get(pk=instance.pk)
        if _superseded(run, instance, Run.Outcome.SUCCEEDED, ""):
            return instance.state
        target = State.DELETED if run.kind == Run.Kind.DELETE else State.READY
        transition(instance, target, "")
        Run.objects.filter(pk=run.pk).update(outcome=Run.Outcome.SUCCEEDED, finished_at=timezone.now())
        run_observed(run, Run.Outcome.SUCCEEDED)
        _after_success(run, instance)
        audit_log(
            actor=None,
            action=f"{_noun(instance)}.{target}",
            target=instance,
            project=instance.project,
            details={"run": run.pk, "attempt": run.attempt}
            | (
                {"warm_pool": {"handover": True, "standby": instance.namespace}}
                if run.kind == Run.Kind.CLAIM
                else {}
            ),
        )
    return target


def _after_success(run: Run, target) -> None:
    """In the success's transaction: a deleted instance's services and applications go DELETED with its
    namespace; a deployed service maps open storage chosen with a datacenter to it
    (instances.service_deployer); an application's revision is recorded (instances.application_deployer)."""
    from instances import application_deployer, service_deployer

    if isinstance(target, ServiceInstance):
        service_deployer.succeeded(run, target)
    elif isinstance(target, Application):
        application_deployer.succeeded(run, target)
    elif run.kind == Run.Kind.DELETE:
        service_deployer.deleted_with(target)
        application_deployer.deleted_with(target)


def attempt_failed(run: Run, cluster, step: RunLog, exc: Exception) -> tuple[str, bool]:
    """Log a failed attempt and, unless the error is final or the attempts are used up, schedule the
    next one with a backoff on the cluster's agent. Returns (the reason, whether a retry is scheduled)."""
    from django_q.tasks import schedule

    message = (
        str(exc)
        if not isinstance(exc, templating.TemplateError)
        else "; ".join(m for ms in exc.errors.values() for m in ms)
    )
    step(f"Attempt {run.attempt} failed: {message}", level="error")
    final = isinstance(exc, (templating.TemplateError, UnexpectedError, RunAbandoned, SecretUnreadable))
    if run.attempt >= MAX_ATTEMPTS or final:
        return message, False
    delay = 5 * 2 ** (run.attempt - 1)
    Run.objects.filter(pk=run.pk).update(outcome=Run.Outcome.QUEUED, message=message)
    schedule(
        "instances.tasks.run_execute",
        run.pk,
        schedule_type="O",
        repeats=1,
        next_run=timezone.now() + timedelta(seconds=delay),
        cluster=queue_for_cluster(cluster),
        name=f"retry run {run.pk} attempt {run.attempt + 1}",
    )
    step(f"Retrying in {delay} s.")
    run_observed(run, "retrying")
    return message, True


def _failed(run: Run, instance, step: RunLog, exc: Exception) -> str:
    message, retrying = attempt_failed(run, instance.cluster, step, exc)
    if retrying:
        return "retrying"
    with transaction.atomic():
        instance = type(instance).objects.select_for_update().get(pk=instance.pk)
        if _superseded(run, instance, Run.Outcome.FAILED, message):
            return instance.state
        transition(instance, State.FAILED, message)
        Run.objects.filter(pk=run.pk).update(
            outcome=Run.Outcome.FAILED, message=message, finished_at=timezone.now()
        )
        run_observed(run, Run.Outcome.FAILED)
        if isinstance(instance, Application):
            from instances import application_deployer

            application_deployer.failed(run, instance, message)
        audit_log(
            actor=None,
            action=f"{_noun(instance)}.failed",
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


# --- worker side of access and of the reconcile (the services enqueue these through instances.tasks) ---


def access_apply(*, instance_id: int) -> None:
    """Apply the access part of the baseline (service accounts, role, binding) for current users."""
    instance = ComputeInstance.objects.select_related("cluster", "org", "project", "owner").get(
        pk=instance_id
    )
    if not instance.namespace or instance.state not in (State.READY, State.PROVISIONING, State.FAILED):
        return
    objects = [
        o
        for o in baseline_objects(instance, instance.namespace)
        if o["kind"] in ("ServiceAccount", "Role", "RoleBinding")
    ]
    kube.apply(
        instance.cluster.kubeconfig.reveal(),
        objects,
        namespace=instance.namespace,
        field_manager=baseline.FIELD_MANAGER,
    )


def baseline_apply(*, instance_id: int) -> list[str]:
    """Apply the whole isolation baseline of an instance as it should be now (after a warm pool's
    hand-over: the objects it left with the standby's labels). Returns what had to be replaced."""
    instance = ComputeInstance.objects.select_related("cluster", "org", "project", "owner").get(
        pk=instance_id
    )
    if not instance.namespace or instance.state not in (
        State.READY,
        State.PROVISIONING,
        State.FAILED,
        State.STOPPED,
    ):
        return []
    return drift.apply_baseline(
        instance.cluster.kubeconfig.reveal(), baseline_objects(instance, instance.namespace)
    )


def identity_remove(*, instance_id: int, username: str) -> None:
    """Worker side: delete a former collaborator's ServiceAccount (and so every token issued to it)."""
    instance = ComputeInstance.objects.select_related("cluster").get(pk=instance_id)
    account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": baseline.service_account_name(username), "namespace": instance.namespace},
    }
    kube.delete_objects(instance.cluster.kubeconfig.reveal(), [account])


def reconcile() -> int:
    """Re-enqueue every stale run on its cluster's agent; ``execute`` picks up where it stopped.

    Also enqueues, once per reachable cluster with ready instances, the check that repairs drift of
    their isolation baselines (``instances.drift.baseline_repair``, on the cluster's agent), unless
    one for that cluster is still waiting on the queue.
    Returns the number of runs re-driven.
    """
    count = 0
    for run in stale_runs().select_related("instance__cluster"):
        with transaction.atomic():
            Run.objects.filter(pk=run.pk).update(outcome=Run.Outcome.QUEUED, heartbeat_at=timezone.now())
            audit_log(
                actor=None,
                action="instance.reconcile",
                target=run.instance,
                project=run.instance.project,
                details={"run": run.pk, "attempt": run.attempt},
            )
            enqueue_for_cluster(run.instance.cluster, "instances.tasks.run_execute", run.pk)
        count += 1
    _enqueue_baseline_checks()
    return count


BASELINE_REPAIR = "instances.tasks.baseline_repair"


def _enqueue_baseline_checks() -> None:
    """One baseline check per cluster, unless one is queued already and not yet started (a slow or
    stopped agent would otherwise find a check per minute piled up on its queue)."""
    clusters = list(
        Cluster.objects.filter(instances__state=State.READY)
        .exclude(status=Cluster.Status.UNREACHABLE)
        .distinct()
    )
    queues = {cluster.pk: queue_for_cluster(cluster) for cluster in clusters}
    waiting = waiting_tasks(BASELINE_REPAIR, queues=set(queues.values()))
    for cluster in clusters:
        if (cluster.pk,) not in waiting:
            enqueue_for_cluster(cluster, BASELINE_REPAIR, cluster.pk)


def waiting_tasks(func: str, *, queues: set[str]) -> set[tuple]:
    """The argument tuples of ``func`` tasks queued on ``queues`` and not yet started.

    django-q2's ORM broker keeps a queued task as an ``OrmQ`` row whose ``lock`` is the time it was
    queued; a worker that takes it moves ``lock`` into the future (by ``retry`` seconds) and deletes
    the row when done. So a row whose lock has passed is waiting (or was taken by a worker that died
    and will be delivered again). Payloads are signed pickles: each waiting row of these queues is
    decoded (a queue holds a handful; this runs once a minute).
    """
    from django_q.models import OrmQ

    rows = OrmQ.objects.filter(key__in=queues).filter(Q(lock__isnull=True) | Q(lock__lte=timezone.now()))
    found = set()
    for row in rows.only("payload"):
        task = row.task
        if task.get("func") == func:
            found.add(tuple(task.get("args") or ()))
    return found
