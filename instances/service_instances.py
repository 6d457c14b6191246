"""Every write on service instances (service profiles deployed onto compute instances): launch, delete,
the reveal of a secret output; and what a service shows and uses. The worker side is
``instances.service_deployer`` (through ``instances.deployer.execute``).

A service runs inside its compute instance's namespace and quota: a launch renders the profile's
template (locally, before anything is applied) to learn what it will use, and is refused (409
``instance_capacity``, with the numbers) when that does not fit what is left of the instance: its totals
minus what its own template uses, minus its services and applications (a stopped one keeps only its
storage).
Launches on one instance are serialised by a lock on its row.
"""

from decimal import Decimal

from django.db import transaction

from catalog import service_inputs, templating
from catalog.models import ServiceProfile
from catalog.pricing import price_snapshot
from catalog.selectors import catalog_for
from catalog.services import profile_snapshot
from instances import selectors, service_objects
from instances.launch_checks import launch_checks_run
from instances.models import Application, ComputeInstance, Run, ServiceInstance
from instances.secret_outputs import read_secret_output
from instances.service_render import service_host, service_render
from instances.service_selectors import can_deploy_services_on, can_manage_service
from instances.states import STORAGE_ONLY, State, transition
from instances.workloads import GIB, Usage, usage_of
from inventory import mig
from inventory.models import Datacenter, Storage
from inventory.routing import enqueue_for_cluster
from inventory.selectors import storage_for_datacenter
from paas import authz, metrics
from paas.audit import audit_log
from paas.errors import Conflict, Forbidden, NotFound, ValidationFailed
from paas.validation import is_dns_label

RUN_TASK = "instances.tasks.run_execute"


# --- names, datacenter and storage ------------------------------------------------------------------


def service_name_check(*, compute_instance: ComputeInstance, name: str) -> str:
    """The name, stripped, if it may name a new service on the instance (a DNS label, unique among its
    services that are not deleted, short enough for its host name)."""
    name = (name or "").strip()
    if not is_dns_label(name):
        raise ValidationFailed(
            "Invalid name.",
            fields={
                "name": "Lowercase letters, digits and hyphens, at most 63, "
                "starting and ending with a letter or digit."
            },
        )
    taken = ServiceInstance.objects.filter(compute_instance=compute_instance, name=name).exclude(
        state=State.DELETED
    )
    if taken.exists():
        raise ValidationFailed(
            "Invalid name.",
            fields={"name": f"A service named {name!r} exists on {compute_instance.name} already."},
        )
    if compute_instance.cluster_id and len(service_host(compute_instance, name)) > 253:
        raise ValidationFailed("Invalid name.", fields={"name": "Too long for the service's host name."})
    return name


def _datacenter(profile: ServiceProfile, compute_instance: ComputeInstance, datacenter) -> Datacenter | None:
    """The datacenter the service uses: the profile's, or the user's choice where the profile exposes it
    and lets it be overridden; it must be the datacenter of the instance's cluster."""
    if isinstance(datacenter, str):
        found = Datacenter.objects.filter(name=datacenter).first()
        if found is None:
            raise ValidationFailed(
                "Invalid datacenter.", fields={"datacenter": f"No datacenter {datacenter!r}."}
            )
        datacenter = found
    chosen = profile.datacenter
    if datacenter is not None and datacenter.pk != profile.datacenter_id:
        if not profile.datacenter_exposed:
            raise ValidationFailed(
                "Invalid datacenter.", fields={"datacenter": "This service profile sets the datacenter."}
            )
        if not profile.datacenter_overridable:
            raise ValidationFailed(
                "Invalid datacenter.",
                fields={"datacenter": "The datacenter of this service profile cannot be changed."},
            )
        chosen = datacenter
    cluster = compute_instance.cluster
    if chosen is not None and cluster is not None and cluster.datacenter_id != chosen.pk:
        where = f"datacenter {cluster.datacenter.name}" if cluster.datacenter_id else "no datacenter"
        raise ValidationFailed(
            "Invalid datacenter.",
            fields={
                "datacenter": f"{compute_instance.name} runs on cluster {cluster.name} in {where}: a service "
                f"on it runs there too, not in {chosen.name}."
            },
        )
    return chosen


def _storage(profile: ServiceProfile, datacenter: Datacenter | None, storage) -> list[Storage]:
    """The storage attached: the profile's, or the user's choice where the profile exposes it and lets it
    be overridden; only the datacenter's storage and open storage (open storage only without one)."""
    own = list(profile.storages.select_related("datacenter").order_by("name"))
    chosen = own
    if storage is not None:
        names = sorted({s.name if isinstance(s, Storage) else str(s) for s in storage})
        if names != [s.name for s in own]:
            if not profile.storage_exposed:
                raise ValidationFailed(
                    "Invalid storage.", fields={"storage": "This service profile sets the storage."}
                )
            if not profile.storage_overridable:
                raise ValidationFailed(
                    "Invalid storage.",
                    fields={"storage": "The storage of this service profile cannot be changed."},
                )
            chosen = list(
                Storage.objects.filter(name__in=names).select_related("datacenter").order_by("name")
            )
            missing = sorted(set(names) - {s.name for s in chosen})
            if missing:
                raise ValidationFailed(
                    "Invalid storage.", fields={"storage": f"No storage {', '.join(missing)}."}
                )
    visible = set(storage_for_datacenter(Storage.objects.all(), datacenter).values_list("pk", flat=True))
    outside = [s.name for s in chosen if s.pk not in visible]
    if outside:
        where = f"datacenter {datacenter.name}" if datacenter else "no datacenter (open storage only)"
        raise ValidationFailed(
            "Invalid storage.", fields={"storage": f"Not available with {where}: {', '.join(outside)}."}
        )
    return chosen


def service_snapshot(profile: ServiceProfile, *, datacenter, storage: list[Storage]) -> dict:
    """What the service keeps of its profile (edits of the profile only affect new services); never
    storage credentials."""
    version = profile.template_version
    return profile_snapshot(profile) | {
        "profile_id": profile.pk,
        "name": profile.name,
        "display_name": profile.display_name,
        "service_type": profile.service_type,
        "template": {
            "name": version.template.name,
            "version": version.version,
            "manifests": version.manifests,
            "inputs": version.inputs,
            "outputs": version.outputs,
            "actions": version.actions,
            "custom_resources": version.custom_resources,
            "kubernetes_version": version.kubernetes_version,
        },
        "labels": dict(profile.labels or {}),
        "annotations": dict(profile.annotations or {}),
        "extra_config": dict(profile.extra_config or {}),
        "input_settings": dict(profile.input_settings or {}),
        "price": price_snapshot(profile),
        "output_settings": dict(profile.output_settings or {}),
        "action_settings": dict(profile.action_settings or {}),
        "datacenter": datacenter.name if datacenter else None,
        "storage_details": [
            {
                "name": s.name,
                "kind": s.kind,
                "storage_class": s.storage_class,
                "bucket_endpoint": s.bucket_endpoint,
                "bucket_name": s.bucket_name,
                "datacenter": s.datacenter.name if s.datacenter_id else None,
            }
            for s in storage
        ],
    }


# --- what fits on an instance -----------------------------------------------------------------------


def usage_fields(usage: Usage) -> dict:
    """A ``Usage`` as the columns of ``UsedOfInstance`` (services and applications)."""
    return {
        "gpus": usage.gpus,
        "gpu_units": mig.gpu_units(gpus=usage.gpus, mig_slices=usage.mig_slices),
        "mig_slices": dict(usage.mig_slices),
        "cpu_millis": usage.cpu_millis,
        "memory_gib": usage.memory_gib,
        "storage_gib": usage.storage_gib,
    }


def _as_usage(row) -> Usage:
    return Usage(
        gpus=row.gpus,
        mig_slices=dict(row.mig_slices or {}),
        cpu_millis=row.cpu_millis,
        memory_bytes=int(Decimal(row.memory_gib) * GIB),
        storage_bytes=int(Decimal(row.storage_gib) * GIB),
    )


def own_usage(compute_instance: ComputeInstance, *, objects: list[dict] | None = None) -> Usage:
    """What the compute instance's own template uses of its namespace (e.g. its workspace volume):
    rendered as its deploy renders it (not validated again: only counted)."""
    return usage_of(objects if objects is not None else service_objects.own_objects(compute_instance))


def services_usage(compute_instance: ComputeInstance, *, exclude=None) -> Usage:
    """What the instance's services and applications use together (not deleted; a stopped one only its
    storage). ``exclude``: a service or an application not to count (the one being checked)."""
    total = Usage()
    for model in (ServiceInstance, Application):
        rows = model.objects.filter(compute_instance=compute_instance).exclude(state=State.DELETED)
        if isinstance(exclude, model) and exclude.pk:
            rows = rows.exclude(pk=exclude.pk)
        for row in rows.only("gpus", "mig_slices", "cpu_millis", "memory_gib", "storage_gib", "state"):
            usage = _as_usage(row)
            if row.state in STORAGE_ONLY:
                usage = Usage(storage_bytes=usage.storage_bytes)
            total.add(usage)
    return total


def instance_totals(compute_instance: ComputeInstance) -> Usage:
    """The instance's totals (its compute profile's resource groups)."""
    return Usage(
        gpus=compute_instance.gpus,
        mig_slices=dict(compute_instance.mig_slices or {}),
        cpu_millis=compute_instance.cpu_millis,
        memory_bytes=compute_instance.memory_gib * 2**30,
        storage_bytes=compute_instance.storage_gib * 2**30,
    )


def _gib(value) -> str:
    return f"{Decimal(value) / GIB:.3f}".rstrip("0").rstrip(".") + " GiB"


def _cpu(millis: int) -> str:
    return f"{millis / 1000:g} CPU"


def fit_problems(need: Usage, *, totals: Usage, own: Usage, services: Usage) -> list[str]:
    """What ``need`` lacks on an instance, one sentence per resource, with the numbers."""
    problems = []

    def check(what: str, wanted, total, used_own, used_services, show) -> None:
        left = total - used_own - used_services
        if wanted > left:
            problems.append(
                f"{what}: needs {show(wanted)}, {show(max(left, 0))} left of {show(total)} "
                f"(the instance's own objects use {show(used_own)}, its services and applications "
                f"{show(used_services)})."
            )

    check("GPUs", need.gpus, totals.gpus, own.gpus, services.gpus, str)
    for profile in sorted(need.mig_slices):
        check(
            f"MIG {profile} slices",
            need.mig_slices[profile],
            totals.mig_slices.get(profile, 0),
            own.mig_slices.get(profile, 0),
            services.mig_slices.get(profile, 0),
            str,
        )
    check("CPU", need.cpu_millis, totals.cpu_millis, own.cpu_millis, services.cpu_millis, _cpu)
    check("Memory", need.memory_bytes, totals.memory_bytes, own.memory_bytes, services.memory_bytes, _gib)
    check(
        "Storage", need.storage_bytes, totals.storage_bytes, own.storage_bytes, services.storage_bytes, _gib
    )
    return problems


def instance_service_usage(compute_instance: ComputeInstance) -> dict:
    """What the instance's services use against its totals (for its page): ``totals``, ``own`` (its
    template's objects), ``services`` and ``left``, each {gpus, mig_slices, cpu_millis, memory_gib,
    storage_gib}; ``count`` the services that are not deleted."""
    totals, own, services = (
        instance_totals(compute_instance),
        own_usage(compute_instance),
        services_usage(compute_instance),
    )
    left = Usage(
        gpus=max(totals.gpus - own.gpus - services.gpus, 0),
        mig_slices={
            p: max(n - own.mig_slices.get(p, 0) - services.mig_slices.get(p, 0), 0)
            for p, n in totals.mig_slices.items()
        },
        cpu_millis=max(totals.cpu_millis - own.cpu_millis - services.cpu_millis, 0),
        memory_bytes=max(totals.memory_bytes - own.memory_bytes - services.memory_bytes, 0),
        storage_bytes=max(totals.storage_bytes - own.storage_bytes - services.storage_bytes, 0),
    )

    def shown(usage: Usage) -> dict:
        fields = usage_fields(usage)
        fields.pop("gpu_units")
        return fields

    return {
        "totals": shown(totals),
        "own": shown(own),
        "services": shown(services),
        "left": shown(left),
        "count": ServiceInstance.objects.filter(compute_instance=compute_instance)
        .exclude(state=State.DELETED)
        .count(),
    }


# --- launch -----------------------------------------------------------------------------------------


@metrics.observe_launch("service")
def service_launch(
    *,
    actor,
    compute_instance: ComputeInstance,
    profile: ServiceProfile,
    name: str,
    description: str = "",
    inputs: dict | None = None,
    datacenter=None,
    storage=None,
) -> ServiceInstance:
    """Deploy a service profile onto a compute instance.

    First, without any lock (this is the expensive part: rendering and validating the template): the
    instance must be visible to the actor (else 404), ready, and one they may deploy onto; the profile
    in its workspace's catalog; the inputs, datacenter and storage pass the profile's rules; the
    template renders and validates for the instance's namespace, which says what the service will use.
    Then, in one short transaction with the instance's row locked (launches on one instance are
    serialised only there): the instance is still ready, the name still free, the permission still
    held, and what the service uses fits what is left of the instance now; the service, its deploy run
    and the audit event are written and the deploy is enqueued on commit for the agent of the
    instance's cluster.
    """
    compute_instance = authz.get_visible(selectors.instance_list_for(actor), compute_instance.pk, user=actor)
    _require_deploy(actor, compute_instance)
    name = service_name_check(compute_instance=compute_instance, name=name)
    if (
        profile is None
        or not catalog_for(ServiceProfile, compute_instance.project).filter(pk=profile.pk).exists()
    ):
        raise ValidationFailed(
            "That service profile is not in this workspace's catalog.",
            fields={"profile": "Choose a published service profile of this workspace's catalog."},
        )
    profile = ServiceProfile.objects.select_related("template_version__template", "datacenter").get(
        pk=profile.pk
    )
    chosen_datacenter = _datacenter(profile, compute_instance, datacenter)
    chosen_storage = _storage(profile, chosen_datacenter, storage)
    snapshot = service_snapshot(profile, datacenter=chosen_datacenter, storage=chosen_storage)
    values = service_inputs.resolve_inputs(snapshot=snapshot, given=inputs, org_id=compute_instance.org_id)
    service = ServiceInstance(
        org_id=compute_instance.org_id,
        project_id=compute_instance.project_id,
        compute_instance=compute_instance,
        name=name,
        description=description or "",
        owner=actor,
        profile=profile,
        service_type=profile.service_type,
        snapshot=snapshot,
        input_values=values,
        datacenter=chosen_datacenter,
        storage=[s.name for s in chosen_storage],
        host=service_host(compute_instance, name),
    )
    try:
        objects, _context = service_render(service)
    except templating.TemplateError as exc:
        errors = {key if key != "manifests" else "inputs": messages for key, messages in exc.errors.items()}
        raise ValidationFailed(
            "The service's template does not render with these inputs: " + exc.summary()[:500], fields=errors
        ) from exc
    need = usage_of(objects)
    own_objects = service_objects.own_objects(compute_instance)  # its snapshot never changes
    for key, value in usage_fields(need).items():
        setattr(service, key, value)
    return _service_create(
        actor=actor,
        service=service,
        need=need,
        own=own_usage(compute_instance, objects=own_objects),
        refs=[service_objects.ref(obj) for obj in objects],
        own_objects=own_objects,
    )


def _require_deploy(actor, compute_instance: ComputeInstance) -> None:
    if not can_deploy_services_on(actor, compute_instance):
        raise Forbidden("You may not deploy services on this instance.")
    if compute_instance.state != State.READY:
        raise Conflict(
            f"{compute_instance.name} is {compute_instance.get_state_display().lower()}; services are "
            "deployed on a ready instance.",
            code="instance_not_ready",
        )


@transaction.atomic
def _service_create(
    *, actor, service: ServiceInstance, need: Usage, own: Usage, refs: list[dict], own_objects: list[dict]
) -> ServiceInstance:
    """The launch decision, under the compute instance's row lock: the checks that can change between
    the render and now are made again, then the rows are written."""
    compute_instance = (
        ComputeInstance.objects.select_for_update(of=("self",), no_key=True)
        .select_related("project", "cluster")
        .get(pk=service.compute_instance_id)
    )
    _require_deploy(actor, compute_instance)
    service_name_check(compute_instance=compute_instance, name=service.name)
    taken = service_objects.conflicts(compute_instance, refs, own=own_objects)
    if taken:
        raise ValidationFailed("The service's objects collide with others.", fields={"name": taken})
    problems = fit_problems(
        need,
        totals=instance_totals(compute_instance),
        own=own,
        services=services_usage(compute_instance),
    )
    if problems:
        raise Conflict(
            f"{service.name} does not fit on {compute_instance.name}: " + " ".join(problems),
            code="instance_capacity",
        )
    # Higher layers' rules (budgets), under the compute instance's lock (instances.launch_checks).
    launch_checks_run(
        actor=actor,
        project=compute_instance.project,
        profile=service.profile,
        cluster=compute_instance.cluster,
        totals=usage_fields(need),
        kind="service",
    )
    service.compute_instance = compute_instance
    service.save()
    run = Run.objects.create(
        instance=compute_instance, service=service, kind=Run.Kind.DEPLOY, requested_by=actor
    )
    audit_log(
        actor=actor,
        action="service.launch",
        target=service,
        project=compute_instance.project,
        details={
            "profile": service.snapshot.get("name", ""),
            "compute_instance": compute_instance.name,
            "inputs": service_inputs.shown_values(service.snapshot, service.input_values),
            "datacenter": service.datacenter.name if service.datacenter_id else None,
            "storage": service.storage,
            "gpus": service.gpus,
            "mig_slices": service.mig_slices,
            "cpu_millis": service.cpu_millis,
            "memory_gib": str(service.memory_gib),
            "storage_gib": str(service.storage_gib),
        },
    )
    enqueue_for_cluster(compute_instance.cluster, RUN_TASK, run.pk)
    return service


# --- delete -----------------------------------------------------------------------------------------


def _require_manage(actor, service: ServiceInstance, message: str) -> None:
    if not can_manage_service(actor, service):
        raise Forbidden(message)


@transaction.atomic
def service_delete(*, actor, service: ServiceInstance) -> Run:
    """Irreversible: the objects the service applied (its stored inventory) are removed by its delete
    run; it keeps its history (runs, audit)."""
    _require_manage(actor, service, "You may not delete this service.")
    service = (
        ServiceInstance.objects.select_for_update(of=("self",))
        .select_related("compute_instance__cluster")
        .get(pk=service.pk)
    )
    if service.state in (State.DELETING, State.DELETED):
        raise Conflict(f"{service.name} is {service.state} already.")
    transition(service, State.DELETING, f"Deleted by {actor}.")
    run = Run.objects.create(
        instance=service.compute_instance, service=service, kind=Run.Kind.DELETE, requested_by=actor
    )
    audit_log(actor=actor, action="service.delete", target=service, project=service.project, details={})
    enqueue_for_cluster(service.compute_instance.cluster, RUN_TASK, run.pk)
    return run


def deleting_with(model, *, actor, compute_instance: ComputeInstance) -> list[str]:
    """Inside ``instance_delete``'s transaction: the instance's services (``model`` ServiceInstance) or
    applications go DELETING with it (its delete run removes their objects first, then the namespace,
    and marks them DELETED). Returns their names."""
    noun = model._meta.model_name.removesuffix("instance")  # service, application
    names = []
    rows = model.objects.select_for_update().filter(compute_instance=compute_instance)
    for row in rows.exclude(state__in=(State.DELETING, State.DELETED)).order_by("pk"):
        transition(row, State.DELETING, f"Its compute instance {compute_instance.name} is being deleted.")
        audit_log(
            actor=actor,
            action=f"{noun}.delete",
            target=row,
            project=row.project,
            details={"with_instance": compute_instance.name},
        )
        names.append(row.name)
    return names


def services_deleting_with(*, actor, compute_instance: ComputeInstance) -> list[str]:
    return deleting_with(ServiceInstance, actor=actor, compute_instance=compute_instance)


# --- outputs ----------------------------------------------------------------------------------------


def _output_settings(service: ServiceInstance) -> dict:
    return dict(service.snapshot.get("output_settings") or {})


def shown_outputs(service: ServiceInstance) -> list[dict]:
    """The outputs the profile shows, under its labels, in the template's order: ``name``, ``label``,
    ``value`` (None for a secret: revealed on request) and ``secret``. Outputs without settings are
    hidden."""
    settings = _output_settings(service)
    shown = []
    for output in service.snapshot.get("template", {}).get("outputs") or []:
        setting = settings.get(output["name"])
        if not isinstance(setting, dict) or not setting.get("shown"):
            continue
        value = (service.outputs or {}).get(output["name"])
        secret = output["source"]["type"] == "secret" or (
            isinstance(value, dict) and bool(value.get("secret"))
        )
        shown.append(
            {
                "name": output["name"],
                "label": setting.get("label") or output["name"],
                "value": None if secret else value,
                "secret": secret,
            }
        )
    return shown


@transaction.atomic
def service_output_reveal(*, actor, service: ServiceInstance, name: str) -> str:
    """The value of a shown secret output, read from its Secret in the namespace now (audited, never
    stored)."""
    _require_manage(actor, service, "Only those who manage this service see its secrets.")
    if not any(o["name"] == name and o["secret"] for o in shown_outputs(service)):
        raise NotFound("No such secret output.")
    reference = (service.outputs or {}).get(name)
    if service.state != State.READY or not isinstance(reference, dict):
        raise Conflict(f"{service.name} is {service.state}; its secrets are readable once it is ready.")
    compute = service.compute_instance
    value = read_secret_output(
        cluster=compute.cluster, namespace=compute.namespace, name=name, reference=reference
    )
    audit_log(
        actor=actor,
        action="service.output_reveal",
        target=service,
        project=service.project,
        details={"output": name},
    )
    return value
