"""The service deployer (worker side): a service instance's deploy and delete runs, driven by
``instances.deployer.execute`` (claims, retries, failure, abandon and the reconcile are the compute
instances' own).

Deploy: render the service template (``instances.service_render``: validated for the compute instance's
namespace, host suffix and allowed custom resources), add to every object the profile's labels and
annotations (also on pod templates) and the platform label ``gpu-paas.io/service: <name>``, and the
profile's extra configuration as environment variables of every container (names the template sets
win; the template also reads it as ``extra``); record the inventory of what it applies; server-side
apply into the instance's namespace; wait for the service's own objects (label selector) with a deadline;
read its outputs (secret outputs stay references, read on request). Delete: remove the inventory's
objects (foreground: their pods first) and wait until they are gone.
"""

import time
from collections.abc import Mapping

from django.db import transaction
from django.utils import timezone

from catalog import templating
from instances import deployer, pull_secrets, service_objects, workloads
from instances.models import ComputeInstance, Run, ServiceInstance
from instances.service_render import service_render
from instances.states import State, transition
from inventory import kube
from inventory.models import Datacenter, Storage
from paas.audit import audit_log
from paas.platform_owned import LABEL_SERVICE

DELETE_TIMEOUT = 120  # seconds a delete waits for the service's objects to be gone


def target(run: Run) -> ServiceInstance:
    return ServiceInstance.objects.select_related(
        "compute_instance__cluster",
        "compute_instance__org",
        "compute_instance__project",
        "owner",
        "project__org",
    ).get(pk=run.service_id)


def work(run: Run, service: ServiceInstance, step: deployer.RunLog) -> None:
    if run.kind == Run.Kind.DELETE:
        delete(service, step)
    else:  # (a run of a service being deleted is not claimed: instances.deployer._claim)
        deploy(service, step)


# --- what the deployer adds to the template's objects -----------------------------------------------


def _pod_specs(obj: dict) -> list[dict]:
    specs = workloads.pod_specs(obj)
    if obj.get("kind") == "InferenceService":  # and the components' model containers, for the env
        specs += [v for c in specs for v in c.values() if isinstance(v, dict) and "image" in v]
    return specs


def _label(metadata: dict, labels: Mapping, annotations: Mapping, service_name: str) -> None:
    metadata["labels"] = {**labels, **(metadata.get("labels") or {}), LABEL_SERVICE: service_name}
    if annotations:
        metadata["annotations"] = {**annotations, **(metadata.get("annotations") or {})}


def _env(container: dict, extra: Mapping) -> None:
    env = container.get("env") or []
    present = {e.get("name") for e in env if isinstance(e, dict)}
    container["env"] = [*env, *({"name": k, "value": str(v)} for k, v in extra.items() if k not in present)]


def decorate(objects: list[dict], service: ServiceInstance, *, pull_secret_names: list[str] | None = None):
    """Add the profile's labels and annotations (the template's own keys win, so selectors stay as the
    template wrote them), the platform's service label, the extra configuration as environment, and the
    container registries' pull secrets to every pod spec (``pull_secret_names``, default: the names the
    compute instance's namespace should hold, ``instances.pull_secrets.names``)."""
    snapshot = service.snapshot
    labels = {str(k): str(v) for k, v in (snapshot.get("labels") or {}).items()}
    annotations = {str(k): str(v) for k, v in (snapshot.get("annotations") or {}).items()}
    extra = dict(snapshot.get("extra_config") or {})
    for obj in objects:
        _label(obj.setdefault("metadata", {}), labels, annotations, service.name)
        for template in workloads.pod_templates(obj):
            _label(template.setdefault("metadata", {}), labels, annotations, service.name)
        if extra:
            for spec in _pod_specs(obj):
                containers = spec.get("containers") if "containers" in spec or "image" not in spec else [spec]
                for container in [*(containers or []), *(spec.get("initContainers") or [])]:
                    if isinstance(container, dict):
                        _env(container, extra)
    if pull_secret_names is None and service.compute_instance_id:
        pull_secret_names = pull_secrets.names(service.compute_instance)
    pull_secrets.inject(objects, pull_secret_names or [])
    return objects


def _ref(obj: dict) -> dict:
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"]}


def as_objects(refs: list[dict], namespace: str) -> list[dict]:
    return [
        {
            "apiVersion": r["apiVersion"],
            "kind": r["kind"],
            "metadata": {"name": r["name"], "namespace": namespace},
        }
        for r in refs
    ]


# --- deploy and delete ------------------------------------------------------------------------------


def selector(service: ServiceInstance) -> str:
    return f"{LABEL_SERVICE}={service.name}"


def deploy(service: ServiceInstance, step: deployer.RunLog, *, action: dict | None = None) -> None:
    compute = service.compute_instance
    namespace = compute.namespace
    objects, context = service_render(service, action=action)
    decorate(objects, service, pull_secret_names=[])  # the pull secrets after the checks below
    template = service.snapshot["template"]
    step(f"Rendered {len(objects)} objects from {template['name']}@{template['version']}.")
    refs = [_ref(o) for o in objects]
    previous = list(service.objects_applied or [])
    with transaction.atomic():
        # Checked and recorded under the instance's row lock, so two services deploying at once cannot
        # both claim an object. Recorded before applying: a delete after a failed apply still finds
        # whatever was created. FOR NO KEY UPDATE: it excludes the other claims (and state changes) but
        # not the rows that reference the instance (a service delete's run, written while it holds the
        # service's row: with FOR UPDATE the two waited on each other, a deadlock the load test found).
        list(
            ComputeInstance.objects.select_for_update(of=("self",), no_key=True)
            .filter(pk=compute.pk)
            .values_list("pk")
        )
        taken = service_objects.conflicts(compute, refs, exclude=service)
        if taken:  # another service (or the instance) has these objects: applying would take them over
            raise templating.TemplateError({"manifests": taken})
        ServiceInstance.objects.filter(pk=service.pk).update(
            objects_applied=refs + [r for r in previous if r not in refs]
        )
    # The cluster's client and the registries' pull secrets once the checks passed: a refused service
    # never touches the cluster.
    kubeconfig = kube.shared_session(compute.cluster.kubeconfig.reveal())
    pull_secrets.inject(objects, pull_secrets.ensure(compute, kubeconfig))
    kube.apply(kubeconfig, objects, namespace=namespace)
    step(f"Applied {len(objects)} objects to namespace {namespace} (server-side apply).")
    stale = [r for r in previous if r not in refs]
    if stale:
        kube.delete_objects(kubeconfig, as_objects(stale, namespace))
        step(f"Removed {len(stale)} objects the template no longer renders.")
    ServiceInstance.objects.filter(pk=service.pk).update(objects_applied=refs)
    # Watched (one list per kind by label, then a watch on each kind not ready yet).
    notes = kube.wait_ready(
        kubeconfig,
        namespace,
        timeout=deployer.READY_TIMEOUT,
        poll=0.2,
        label_selector=selector(service),
        custom_resources=template.get("custom_resources", []),  # ready as their operators report
    )
    step("Ready." + (" " + "; ".join(notes) if notes else ""))
    outputs = deployer.read_outputs(service, kubeconfig, namespace, context)
    ServiceInstance.objects.filter(pk=service.pk).update(outputs=outputs)


def remove(kubeconfig: str, namespace: str, refs: list[dict], *, timeout: float) -> None:
    objects = as_objects(refs, namespace)
    kube.delete_objects(kubeconfig, objects, propagation="Foreground")
    deadline = time.monotonic() + timeout
    while left := kube.existing(kubeconfig, objects):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{', '.join(left)} still exist(s) after {timeout:.0f} s.")
        time.sleep(0.3)


def delete(service: ServiceInstance, step: deployer.RunLog, *, timeout: float = DELETE_TIMEOUT) -> None:
    compute = service.compute_instance
    refs = list(service.objects_applied or [])
    if compute.namespace and refs:
        remove(compute.cluster.kubeconfig.reveal(), compute.namespace, refs, timeout=timeout)
    step(f"Removed {len(refs)} objects from namespace {compute.namespace}.")


def delete_services_of(compute: ComputeInstance, kubeconfig: str, step: deployer.RunLog) -> None:
    """A compute instance's delete run, before its namespace goes: its services' and applications'
    objects (foreground, so their pods go first)."""
    services = list(compute.services.exclude(state=State.DELETED).only("name", "objects_applied"))
    applications = list(compute.applications.exclude(state=State.DELETED).only("name", "objects_applied"))
    refs = [r for s in [*services, *applications] for r in (s.objects_applied or [])]
    if compute.namespace and refs:
        remove(kubeconfig, compute.namespace, refs, timeout=DELETE_TIMEOUT)
    for noun, items in (("services", services), ("applications", applications)):
        if items:
            step(f"Removed the objects of {len(items)} {noun} ({', '.join(s.name for s in items)}).")


# --- in the success's transaction (instances.deployer._succeeded) ------------------------------------


def deleted_with(compute: ComputeInstance, model=ServiceInstance) -> None:
    """The compute instance is deleted: so are its services (``model``: or its applications); their
    rows, runs and audit stay."""
    noun = model._meta.model_name.removesuffix("instance")  # service, application
    for row in (
        model.objects.select_for_update().filter(compute_instance=compute).exclude(state=State.DELETED)
    ):
        if row.state != State.DELETING:
            transition(row, State.DELETING, f"Its compute instance {compute.name} was deleted.")
        transition(row, State.DELETED, f"Deleted with its compute instance {compute.name}.")
        Run.objects.filter(**{noun: row}, outcome__in=(Run.Outcome.QUEUED, Run.Outcome.RUNNING)).update(
            outcome=Run.Outcome.FAILED,
            message="The compute instance was deleted.",
            finished_at=timezone.now(),
        )
        audit_log(
            actor=None,
            action=f"{noun}.deleted",
            target=row,
            project=row.project,
            details={"with_instance": compute.name},
        )


def succeeded(run: Run, service: ServiceInstance) -> None:
    """After a successful deploy: open storage chosen together with a datacenter becomes that
    datacenter's storage (the reference's dynamic storage-to-datacenter mapping)."""
    if run.kind == Run.Kind.DELETE or not service.datacenter_id or not service.storage:
        return
    datacenter = Datacenter.objects.get(pk=service.datacenter_id)
    for storage in Storage.objects.select_for_update().filter(
        name__in=service.storage, datacenter__isnull=True
    ):
        storage.datacenter = datacenter
        storage.save(update_fields=["datacenter"])
        audit_log(
            actor=None,
            action="storage.datacenter_mapped",
            target=storage,
            details={"datacenter": datacenter.name, "service": str(service), "run": run.pk},
        )
