"""Actions on compute and service instances (the template's declared actions: start, stop and any
other), and day-2 redeploys of services. The service side: checks, state changes, the run, the audit
event, all in one transaction; the work itself is queued on commit for the cluster's agent
(``instances.action_deployer``).

Variables. A template declares each action's variables with a type and a default. For a service, the
profile's ``action_settings`` decide per action and variable its alias, tooltip, default and whether
the user may override it; a variable without "allow override" is fixed at its configured default and
is neither shown nor accepted (sending it is refused, naming it). A compute profile has no action
settings: a compute instance's action variables are fixed at the template's defaults.

Stop and start (actions named ``stop`` and ``start``; a template without them offers none). A stopped
compute instance or service keeps its storage (still counted) and releases its GPUs, CPU and memory
(``instances.quota`` and ``instances.selectors.reservations`` count nothing else for it). Starting a
compute instance takes them again with the same checks and decision as a launch
(``instances.launch_decision``), on its own cluster (it cannot move), and is refused with the numbers
when they are gone.

Who may: on a compute instance its owner, its collaborators (``use_instance``) and the workspace's
admins (``manage_instances``); on a service whoever may manage it (``can_manage_service``: also the
workspace's read-write collaborators). Read-only members never.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import Q

from catalog import secret_inputs, templating
from instances import counters, launch_decision
from instances.launch_checks import launch_checks_run
from instances.models import ComputeInstance, Run, ServiceInstance
from instances.quota import start_totals
from instances.service_selectors import can_manage_service
from instances.states import State, transition
from inventory import mig
from inventory.matchmaker import PlacementRequest, ResourceGroup
from inventory.routing import enqueue_for_cluster
from paas import authz
from paas.audit import audit_log
from paas.errors import Conflict, Forbidden, NotFound, ValidationFailed
from paas.units import GIB

STOP, START = "stop", "start"
DAY2_LABEL = "ALLOW_DAY2_OPERATIONS"
RUN_TASK = "instances.tasks.run_execute"


@dataclass(frozen=True)
class ActionVariable:
    """A variable the user may set when running an action (fixed ones are never listed)."""

    name: str
    alias: str
    tooltip: str
    type: str
    options: list = field(default_factory=list)
    default: Any = None


@dataclass(frozen=True)
class ActionSpec:
    name: str
    description: str
    variables: list[ActionVariable] = field(default_factory=list)


# --- what a target declares -------------------------------------------------------------------------


def _compute_actions(instance: ComputeInstance) -> list[dict]:
    template = (instance.snapshot or {}).get("template") or {}
    if "actions" in template:
        return list(template["actions"] or [])
    # Snapshots taken before actions were snapshotted: the profile's template version, if it is still
    # the one the instance was launched from.
    version = instance.profile.template_version if instance.profile_id else None
    if (
        version
        and version.template.name == template.get("name")
        and version.version == template.get("version")
    ):
        return list(version.actions or [])
    return []


def _service_template(service: ServiceInstance) -> dict:
    return (service.snapshot or {}).get("template") or {}


def declared_actions(target) -> list[dict]:
    """The actions the target's template (as snapshotted) declares."""
    if isinstance(target, ServiceInstance):
        return list(_service_template(target).get("actions") or [])
    return _compute_actions(target)


def _action_settings(target) -> dict:
    if isinstance(target, ServiceInstance):
        settings = (target.snapshot or {}).get("action_settings")
        return settings if isinstance(settings, Mapping) else {}
    return {}  # compute profiles have no action settings: every variable is fixed


def _effective(target, action: dict) -> list[tuple[dict, dict, bool]]:
    """Per declared variable: (declaration with the effective default, the admin's setting, overridable)."""
    settings = _action_settings(target).get(action["name"]) or {}
    rows = []
    for variable in action.get("variables") or []:
        setting = settings.get(variable["name"]) if isinstance(settings, Mapping) else None
        setting = setting if isinstance(setting, Mapping) else {}
        declared = dict(variable)
        if setting.get("default") is not None:
            declared["default"] = setting["default"]
        rows.append((declared, setting, setting.get("allow_override") is True))
    return rows


def actions_for(target) -> list[ActionSpec]:
    """The actions of a compute instance or service, each with the variables the user may set."""
    specs = []
    for action in declared_actions(target):
        variables = [
            ActionVariable(
                name=declared["name"],
                alias=setting.get("alias") or declared["name"],
                tooltip=setting.get("tooltip") or declared.get("description") or "",
                type=declared["type"],
                options=list(declared.get("options") or []),
                default=None if declared["type"] == "secret" else declared.get("default"),
            )
            for declared, setting, overridable in _effective(target, action)
            if overridable
        ]
        specs.append(ActionSpec(action["name"], action.get("description") or "", variables))
    return specs


def _find_action(target, name: str) -> dict:
    for action in declared_actions(target):
        if action.get("name") == name:
            return action
    offered = ", ".join(a["name"] for a in declared_actions(target)) or "none"
    raise NotFound(f"{target.name} has no action {name!r} (its template offers: {offered}).")


def resolve_variables(target, action: dict, given: Any) -> dict:
    """The values an action runs with: fixed variables at their configured defaults, overridable ones
    as given (checked as inputs are). Sending a fixed or undeclared variable is refused, naming it."""
    if given is None:
        given = {}
    if not isinstance(given, Mapping):
        raise ValidationFailed("Invalid variables.", fields={"variables": "Must be an object."})
    rows = _effective(target, action)
    overridable = {declared["name"] for declared, _s, ok in rows if ok}
    declared_names = {declared["name"] for declared, _s, _ok in rows}
    errors = {}
    for name in given:
        if name not in declared_names:
            errors[str(name)] = f"{name!r} is not a variable of the {action['name']} action."
        elif name not in overridable:
            errors[str(name)] = f"{name!r} is fixed by the profile for the {action['name']} action."
    if errors:
        raise ValidationFailed("Invalid variables.", fields=errors)
    try:
        return templating.resolve_action_variables(
            {"variables": [declared for declared, _s, _ok in rows]},
            {k: v for k, v in given.items() if k in overridable},
        )
    except templating.TemplateError as exc:
        raise ValidationFailed(
            "Invalid variables.", fields={k: [f"{k} {m}" for m in ms] for k, ms in exc.errors.items()}
        ) from exc


def _sealed(action: dict, values: dict, *, org_id: int) -> dict:
    return secret_inputs.seal(action.get("variables") or [], values, org_id=org_id)


# --- who may ----------------------------------------------------------------------------------------


def may_act(user, target) -> bool:
    """Whether ``user`` may run actions on (and redeploy) ``target``."""
    if isinstance(target, ServiceInstance):
        return can_manage_service(user, target)
    return authz.has_perm(user, "use_instance", target) or authz.has_perm(
        user, "manage_instances", target.project
    )


def _require_may_act(user, target) -> None:
    if may_act(user, target):
        return
    if isinstance(target, ServiceInstance):
        visible = authz.has_perm(user, "view_serviceinstance", target)
    else:
        visible = authz.has_perm(user, "view_computeinstance", target)
    if not visible:
        raise NotFound("Not found.")
    raise Forbidden(f"You may not run actions on {target.name}.")


# --- runs ---------------------------------------------------------------------------------------------


def _queue(*, actor, target, kind: str, action: str = "", variables: dict | None = None) -> Run:
    service = target if isinstance(target, ServiceInstance) else None
    instance = target.compute_instance if service else target
    return Run.objects.create(
        instance=instance,
        service=service,
        kind=kind,
        action=action,
        variables=variables or {},
        requested_by=actor,
    )


def _audit(actor, target, action: str, details: dict) -> None:
    noun = "service" if isinstance(target, ServiceInstance) else "instance"
    audit_log(actor=actor, action=f"{noun}.{action}", target=target, project=target.project, details=details)


def _unfinished(target) -> bool:
    """Whether a run of the target is queued or running: of a compute instance, its own runs and its
    services' (stopping it under a service's deploy would race it); of a service, its own and its
    compute instance's."""
    if isinstance(target, ServiceInstance):
        runs = Run.objects.filter(
            Q(service=target) | Q(instance_id=target.compute_instance_id, service__isnull=True)
        )
    else:
        runs = Run.objects.filter(instance=target)
    return runs.filter(outcome__in=(Run.Outcome.QUEUED, Run.Outcome.RUNNING)).exists()


@transaction.atomic
def action_run(*, actor, target, action: str, variables: dict | None = None) -> Run:
    """Run one of the target's declared actions (a compute instance or a service), as a queued run."""
    _require_may_act(actor, target)
    declared = _find_action(target, action)
    values = resolve_variables(target, declared, variables)
    if isinstance(target, ServiceInstance):
        return _service_action(actor=actor, service=target, action=declared, values=values)
    return _compute_action(actor=actor, instance=target, action=declared, values=values)


def _compute_action(*, actor, instance: ComputeInstance, action: dict, values: dict) -> Run:
    name, starting = action["name"], False
    instance = (
        ComputeInstance.objects.select_for_update(of=("self",))
        .select_related("cluster", "project")
        .get(pk=instance.pk)
    )
    if name == START:
        if instance.state not in (State.STOPPED, State.FAILED):
            raise Conflict(
                f"{instance.name} is {instance.get_state_display().lower()}; only a stopped (or failed) "
                "instance can be started."
            )
        starting = instance.state == State.STOPPED
        if starting:
            _start_checks(actor=actor, instance=instance)
        # (A failed instance, e.g. after a stop that failed half-way, holds its quota and capacity
        # already: its start only restores the namespace and scales back what a stop scaled down.)
        reason = f"Starting (requested by {actor})."
    elif name == STOP:
        if instance.state not in (State.READY, State.FAILED):
            raise Conflict(
                f"{instance.name} is {instance.get_state_display().lower()}; only a ready or "
                "failed instance can be stopped."
            )
        reason = f"Stopping (requested by {actor})."
    else:
        if instance.state != State.READY:
            raise Conflict(
                f"{instance.name} is {instance.get_state_display().lower()}; the {name} action "
                "runs on a ready instance."
            )
        reason = f"Running the {name} action (requested by {actor})."
    if _unfinished(instance):
        raise Conflict(
            f"{instance.name} (or one of its services) has a run in progress; wait for it to finish."
        )
    transition(instance, State.PROVISIONING, reason)
    if starting:
        _start_decision(actor=actor, instance=instance)
    run = _queue(
        actor=actor,
        target=instance,
        kind=Run.Kind.ACTION,
        action=name,
        variables=_sealed(action, values, org_id=instance.org_id),
    )
    _audit(
        actor,
        instance,
        "action",
        {"action": name, "variables": secret_inputs.masked(run.variables), "run": run.pk},
    )
    enqueue_for_cluster(instance.cluster, RUN_TASK, run.pk)
    return run


def snapshot_placement_request(instance: ComputeInstance) -> PlacementRequest:
    """What the instance's snapshot asks of the matchmaker, on its own cluster only (it cannot move)."""
    groups = []
    for g in (instance.snapshot or {}).get("resource_groups") or []:
        gpu_count, mig_count = int(g.get("gpu_count") or 0), int(g.get("mig_count") or 0)
        groups.append(
            ResourceGroup(
                gpu_model=g.get("gpu_model") or "" if gpu_count else "",
                gpu_count=gpu_count,
                mig_profile=g.get("mig_profile") or "" if mig_count else "",
                mig_count=mig_count,
                cpu_millis=int(float(g.get("cpu_cores") or 0) * 1000),
                memory_bytes=int(g.get("memory_gib") or 0) * GIB,
            )
        )
    return PlacementRequest(
        groups=tuple(groups),
        allowed_clusters=(instance.cluster.name,),
        flavor=(instance.snapshot or {}).get("flavor") or "namespace",
        org_id=instance.org_id,
    )


def _start_checks(*, actor, instance: ComputeInstance) -> None:
    """A start takes the instance's compute again, as a launch does: the higher layers' launch checks
    first (no lock); then, in the transition to PROVISIONING, the free capacity of its own cluster
    (``instances.capacity``'s receiver: the cluster's row first) and the decision on the usage
    counters against the quotas and the owner's per-user limits (``instances.launch_decision``, via
    :func:`_start_decision`): the counters hold the started instance before the transition moves it,
    so the counters' receiver moves nothing more."""
    launch_checks_run(
        actor=actor,
        project=instance.project,
        profile=instance.profile,
        cluster=instance.cluster,
        totals=start_totals(instance),
        instance=instance,
    )
    counters.mark_counted(instance, State.PROVISIONING)


def _start_decision(*, actor, instance: ComputeInstance) -> None:
    """The start's decision (after the cluster's capacity was taken in its transition)."""
    launch_decision.take(
        project=instance.project,
        user=instance.owner,
        want=start_totals(instance),
        limits=launch_decision.limits_for(project=instance.project),
        rows=counters.difference(
            counters.holds(instance, State.PROVISIONING), counters.holds(instance, State.STOPPED)
        ),
        actor=actor,
        what="this start",
        prefix=f"{instance.name} cannot start: over quota: ",
    )


# --- services -----------------------------------------------------------------------------------------


def _service_action(*, actor, service: ServiceInstance, action: dict, values: dict) -> Run:
    name = action["name"]
    service = (
        ServiceInstance.objects.select_for_update(of=("self",))
        .select_related("compute_instance")
        .get(pk=service.pk)
    )
    what = service.get_state_display().lower()
    if name == START:
        if service.state != State.STOPPED:
            raise Conflict(f"{service.name} is {what}; only a stopped service can be started.")
        compute = service.compute_instance
        if compute.state != State.READY:
            raise Conflict(
                f"{service.name} cannot start: its compute instance {compute.name} is "
                f"{compute.get_state_display().lower()} (it must be ready)."
            )
        reason = f"Starting (requested by {actor})."
    elif name == STOP:
        if service.state not in (State.READY, State.FAILED):
            raise Conflict(f"{service.name} is {what}; only a ready or failed service can be stopped.")
        reason = f"Stopping (requested by {actor})."
    else:
        if service.state != State.READY:
            raise Conflict(f"{service.name} is {what}; the {name} action runs on a ready service.")
        reason = f"Running the {name} action (requested by {actor})."
    if _unfinished(service):
        raise Conflict(
            f"{service.name} (or its compute instance) has a run in progress; wait for it to finish."
        )
    if name != STOP:
        # What it will run with the action must fit what is left of its instance (itself excluded).
        usage = _render_usage(service, action={"name": name, "variables": values})
        _service_fits(service, usage)
        _store_usage(service, usage)
    transition(service, State.PROVISIONING, reason)
    run = _queue(
        actor=actor,
        target=service,
        kind=Run.Kind.ACTION,
        action=name,
        variables=_sealed(action, values, org_id=service.org_id),
    )
    _audit(
        actor,
        service,
        "action",
        {"action": name, "variables": secret_inputs.masked(run.variables), "run": run.pk},
    )
    enqueue_for_cluster(service.compute_instance.cluster, RUN_TASK, run.pk)
    return run


def _render_usage(service: ServiceInstance, *, action: dict | None = None):
    """What the service would use as it is (inputs included; rendered with ``action`` if given)."""
    from instances.service_render import service_render
    from instances.workloads import usage_of

    try:
        objects, _context = service_render(service, action=action)
    except templating.TemplateError as exc:
        errors = {key if key != "manifests" else "inputs": messages for key, messages in exc.errors.items()}
        raise ValidationFailed(
            "The service's template does not render with these inputs: " + exc.summary()[:500], fields=errors
        ) from exc
    from instances import service_objects

    taken = service_objects.conflicts(
        service.compute_instance, [service_objects.ref(obj) for obj in objects], exclude=service
    )
    if taken:
        raise ValidationFailed("The service's objects collide with others.", fields={"inputs": taken})
    return usage_of(objects)


def _service_fits(service: ServiceInstance, usage=None) -> None:
    """Refuse (naming the numbers) when the service would not fit what is left of its compute instance,
    itself excluded (the fit check of ``instances.service_instances``)."""
    from instances.service_instances import fit_problems, own_usage, services_usage
    from instances.workloads import Usage

    compute = service.compute_instance
    need = usage if usage is not None else _render_usage(service)
    totals = Usage(
        gpus=compute.gpus,
        mig_slices=dict(compute.mig_slices or {}),
        cpu_millis=compute.cpu_millis,
        memory_bytes=compute.memory_gib * GIB,
        storage_bytes=compute.storage_gib * GIB,
    )
    problems = fit_problems(
        need, totals=totals, own=own_usage(compute), services=services_usage(compute, exclude=service)
    )
    if problems:
        raise Conflict(
            f"{service.name} does not fit on {compute.name} any more: " + " ".join(problems),
            code="instance_capacity",
        )


def _store_usage(service: ServiceInstance, usage) -> None:
    """What the service uses of its instance, as its next render will (the fit checks sum these)."""
    service.gpus, service.mig_slices, service.cpu_millis = (
        usage.gpus,
        dict(usage.mig_slices),
        usage.cpu_millis,
    )
    service.gpu_units = mig.gpu_units(gpus=usage.gpus, mig_slices=usage.mig_slices)
    service.memory_gib, service.storage_gib = usage.memory_gib, usage.storage_gib
    service.save(update_fields=["gpus", "gpu_units", "mig_slices", "cpu_millis", "memory_gib", "storage_gib"])


def day2_refusal(service: ServiceInstance) -> str | None:
    """Why this service cannot be redeployed now (None when it can)."""
    labels = (service.snapshot or {}).get("labels") or {}
    value = labels.get(DAY2_LABEL)
    if not (isinstance(value, str) and value.strip().lower() == "true") and value is not True:
        return (
            f"Its profile does not allow day-2 operations: redeploying a running service needs the label "
            f'{DAY2_LABEL}: "true" on the service profile (ask a PaaS admin).'
        )
    if service.state != State.READY:
        return f"Only a ready service can be redeployed (this one is {service.get_state_display().lower()})."
    return None


@transaction.atomic
def service_redeploy(*, actor, service: ServiceInstance, inputs: dict) -> Run:
    """Deploy a ready service again with changed overridable inputs (the profile must allow day-2
    operations): the same input rules as a launch, the fit re-checked without the service itself;
    objects the new render no longer has are deleted."""
    _require_may_act(actor, service)
    service = (
        ServiceInstance.objects.select_for_update(of=("self",))
        .select_related("compute_instance")
        .get(pk=service.pk)
    )
    refusal = day2_refusal(service)
    if refusal:
        raise Conflict(refusal, code="day2_not_allowed")
    if _unfinished(service):
        raise Conflict(
            f"{service.name} (or its compute instance) has a run in progress; wait for it to finish."
        )
    if service.compute_instance.state != State.READY:
        raise Conflict(f"Its compute instance {service.compute_instance.name} is not ready.")
    if inputs is not None and not isinstance(inputs, Mapping):
        raise ValidationFailed("Invalid inputs.", fields={"inputs": "Must be an object."})
    from catalog import service_inputs  # (lazily: the service instances' modules)

    previous = dict(service.input_values or {})
    service.input_values = service_inputs.resolve_inputs(
        snapshot=service.snapshot, given=dict(inputs or {}), org_id=service.org_id, previous=previous
    )
    usage = _render_usage(service)
    _service_fits(service, usage)
    service.save(update_fields=["input_values"])
    _store_usage(service, usage)
    changed = sorted(k for k in service.input_values if service.input_values[k] != previous.get(k))
    transition(service, State.PROVISIONING, f"Redeploying (requested by {actor}).")
    run = _queue(actor=actor, target=service, kind=Run.Kind.REDEPLOY)
    _audit(actor, service, "redeploy", {"run": run.pk, "changed_inputs": changed})
    enqueue_for_cluster(service.compute_instance.cluster, RUN_TASK, run.pk)
    return run
