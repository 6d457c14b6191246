"""The application deployer (worker side): an application's deploy, retry and delete runs, driven by
``instances.deployer.execute`` (claims, retries, failure and the reconcile are the compute instances'
own); and the status read of ``instances.tasks.application_status``.

Deploy (a revision): fetch and render its source here, on the worker of the cluster's agent
(``catalog.sources.render``: an upload, a Git commit, a Helm chart rendered with ``helm template``;
cluster-scoped objects refused there by name); validate the objects for the compute instance's namespace
as a template's are (``catalog.templating.validate_objects``: the template policy, the Ingress host
suffix, the operators' custom resources); label every object and pod template ``gpu-paas.io/application:
<name>``; add the workspace's registries' image pull secrets (``instances.pull_secrets``); then, under
the compute instance's row lock, refuse objects another service or application (or the instance itself)
has and an application that does not fit what is left of the instance (naming what is short), and record
what it will use and the objects it applies; apply (server-side); delete the objects of the previous
revision the new one no longer has; wait until its objects are ready (by label); record each object's
status, with the events of those that are not ready. Delete: remove the applied objects (foreground) and
wait until they are gone.
"""

from django.db import transaction
from django.utils import timezone

from catalog import selectors as catalog_selectors
from catalog import sources, templating
from instances import deployer, pull_secrets, service_deployer, service_instances, service_objects, workloads
from instances.models import Application, ApplicationRevision, ComputeInstance, Run
from instances.service_deployer import as_objects, remove
from instances.service_instances import fit_problems, instance_totals, own_usage, services_usage
from instances.service_render import host_suffix
from instances.states import State
from instances.workloads import usage_of
from inventory import kube
from inventory.kube import status as kube_status
from paas.platform_owned import LABEL_APPLICATION, LABEL_SERVICE

DELETE_TIMEOUT = 120  # seconds a delete waits for the application's objects to be gone


def target(run: Run) -> Application:
    return Application.objects.select_related(
        "compute_instance__cluster",
        "compute_instance__org",
        "compute_instance__project",
        "owner",
        "project__org",
    ).get(pk=run.application_id)


def work(run: Run, application: Application, step: deployer.RunLog) -> None:
    if run.kind == Run.Kind.DELETE:
        delete(application, step)
    else:  # DEPLOY (create, update, rollback) or RETRY
        deploy(run, application, step)


def revision_of(run: Run, application: Application) -> ApplicationRevision:
    """The revision a run deploys (a retry's is the application's current revision)."""
    found = ApplicationRevision.objects.filter(run=run).select_related("repository").first()
    return found or application.revisions.select_related("repository").get(number=application.revision)


def selector(application: Application) -> str:
    return f"{LABEL_APPLICATION}={application.name}"


# --- what the deployer adds and checks ------------------------------------------------------------------


def _labelled(labels, name: str) -> dict:
    own = {k: v for k, v in (labels or {}).items() if k != LABEL_SERVICE}
    return {**own, LABEL_APPLICATION: name}


def label(objects: list[dict], name: str) -> list[dict]:
    """``gpu-paas.io/application: <name>`` on every object and pod template, over whatever the YAML said;
    a service's label dropped (a service's stop, start and readiness select its objects by it)."""
    for obj in objects:
        metadata = obj.setdefault("metadata", {})
        metadata["labels"] = _labelled(metadata.get("labels"), name)
        for template in workloads.pod_templates(obj):
            meta = template.setdefault("metadata", {})
            meta["labels"] = _labelled(meta.get("labels"), name)
    return objects


def _custom_kinds(objects: list[dict]) -> list[tuple[str, str]]:
    """(apiVersion, kind) of objects outside the core and ``*.k8s.io`` groups: custom resources."""
    kinds = set()
    for obj in objects:
        group = str(obj.get("apiVersion") or "").rpartition("/")[0]
        if "." in group and not group.endswith(".k8s.io"):
            kinds.add((obj["apiVersion"], obj["kind"]))
    return sorted(kinds)


def validate(objects: list[dict], compute: ComputeInstance, kubeconfig: str) -> list[dict]:
    """The objects checked as a template's are at apply; the custom resources among them count as
    declared with the scope the cluster serves them at (a cluster-scoped one is refused), and must be
    on the operators' allow-list. Returns the custom resource declarations (for the readiness wait)."""
    kinds = _custom_kinds(objects)
    served = kube_status.scopes(kubeconfig, kinds) if kinds else {}
    declared = [
        {"apiVersion": api_version, "kind": kind, "scope": scope}
        for (api_version, kind), scope in served.items()
        if scope is not None
    ]
    templating.validate_objects(
        objects,
        namespace=compute.namespace,
        custom_resources=declared,
        host_suffix=host_suffix(compute),
        allowed_custom_resources=catalog_selectors.allowed_custom_resource_kinds(),
    )
    return [d for d in declared if d["scope"] == "Namespaced"]


def add_pull_secrets(compute: ComputeInstance, kubeconfig: str, objects: list[dict]) -> list[str]:
    """The workspace's container registries: their pull secrets in the namespace (made current) and
    referenced from every pod spec, the YAML's own entries kept. Returns the secrets' names."""
    names = pull_secrets.ensure(compute, kubeconfig)
    pull_secrets.inject(objects, names)
    return names


def _claim_room(
    application: Application, objects: list[dict], refs: list[dict], previous: list[dict]
) -> None:
    """Under the compute instance's row lock (so two deploys on one instance cannot both take the same
    object or the same room): conflicts, the fit, then what it uses and will apply is recorded (before
    applying: a delete after a failed apply still finds whatever was created)."""
    compute = application.compute_instance
    with transaction.atomic():
        list(
            ComputeInstance.objects.select_for_update(of=("self",), no_key=True)
            .filter(pk=compute.pk)
            .values_list("pk")
        )
        taken = service_objects.conflicts(compute, refs, exclude=application)
        if taken:
            raise templating.TemplateError({"objects": taken})
        need = usage_of(objects)
        problems = fit_problems(
            need,
            totals=instance_totals(compute),
            own=own_usage(compute),
            services=services_usage(compute, exclude=application),
        )
        if problems:
            raise templating.TemplateError(
                {"objects": [f"{application.name} does not fit on {compute.name}: " + " ".join(problems)]}
            )
        Application.objects.filter(pk=application.pk).update(
            objects_applied=refs + [r for r in previous if r not in refs],
            **service_instances.usage_fields(usage_of(objects)),
        )


# --- deploy and delete ------------------------------------------------------------------------------


def _describe(revision: ApplicationRevision, rendered: sources.Rendered) -> str:
    if revision.sync != "repository":
        return "the uploaded files"
    where = revision.repository.name if revision.repository_id else "a deleted repository"
    parts = [where]
    if rendered.commit:
        parts.append(f"commit {rendered.commit[:12]}")
    if revision.chart:
        parts.append(
            f"chart {revision.chart}" + (f" {rendered.chart_version}" if rendered.chart_version else "")
        )
    return ", ".join(parts)


def deploy(run: Run, application: Application, step: deployer.RunLog) -> None:
    compute = application.compute_instance
    kubeconfig, namespace = compute.cluster.kubeconfig.reveal(), compute.namespace
    revision = revision_of(run, application)
    rendered = sources.render(
        revision,
        release=application.name,
        namespace=namespace,
        kube_version=compute.cluster.kubernetes_version or "",
    )
    objects = rendered.objects
    ApplicationRevision.objects.filter(pk=revision.pk).update(
        commit=rendered.commit or "",
        resolved_chart_version=rendered.chart_version or "",
        digest=rendered.digest or "",
        notes=list(rendered.notes or []),
    )
    step(
        f"Rendered {len(objects)} objects from {_describe(revision, rendered)} (revision {revision.number})."
    )
    for note in rendered.notes or []:
        step(f"Note: {note}", level="warning")
    custom = validate(objects, compute, kubeconfig)
    label(objects, application.name)
    refs = [service_objects.ref(o) for o in objects]
    previous = list(application.objects_applied or [])
    _claim_room(application, objects, refs, previous)  # (refused before the cluster is touched)
    add_pull_secrets(compute, kubeconfig, objects)
    kube.apply(kubeconfig, objects, namespace=namespace)
    step(f"Applied {len(objects)} objects to namespace {namespace} (server-side apply).")
    stale = [r for r in previous if r not in refs]
    if stale:
        kube.delete_objects(kubeconfig, as_objects(stale, namespace))
        step(
            f"Removed {len(stale)} objects revision {revision.number} no longer has: "
            + ", ".join(f"{r['kind']}/{r['name']}" for r in stale)
            + "."
        )
    Application.objects.filter(pk=application.pk).update(objects_applied=refs)
    ApplicationRevision.objects.filter(pk=revision.pk).update(applied=refs)
    try:
        notes = kube.wait_ready(
            kubeconfig,
            namespace,
            timeout=deployer.READY_TIMEOUT,
            poll=0.2,
            label_selector=selector(application),
            custom_resources=[(d["apiVersion"], d["kind"]) for d in custom],
        )
    except TimeoutError:
        record_status(application.pk, kubeconfig, namespace, refs)
        raise
    step("Ready." + (" " + "; ".join(notes) if notes else ""))
    record_status(application.pk, kubeconfig, namespace, refs)


def delete(application: Application, step: deployer.RunLog, *, timeout: float = DELETE_TIMEOUT) -> None:
    compute = application.compute_instance
    refs = list(application.objects_applied or [])
    if compute.namespace and refs:
        remove(compute.cluster.kubeconfig.reveal(), compute.namespace, refs, timeout=timeout)
    Application.objects.filter(pk=application.pk).update(objects_applied=[], object_status=[])
    step(f"Removed {len(refs)} objects from namespace {compute.namespace}.")


# --- status -------------------------------------------------------------------------------------------


def record_status(application_id: int, kubeconfig: str, namespace: str, refs: list[dict]) -> list[dict]:
    rows = kube_status.object_status(kubeconfig, namespace, refs) if refs else []
    Application.objects.filter(pk=application_id).update(object_status=rows, status_checked_at=timezone.now())
    return rows


def status(application_id: int) -> dict:
    """Task body: read the status (and the events of the objects that are not ready) of the
    application's objects now. Returns ``{"objects": n, "not_ready": [Kind/name, ...]}``."""
    application = Application.objects.select_related("compute_instance__cluster").get(pk=application_id)
    compute = application.compute_instance
    if application.state == State.DELETED or not compute.namespace or compute.state == State.DELETED:
        return {"objects": 0, "not_ready": []}
    rows = record_status(
        application.pk,
        compute.cluster.kubeconfig.reveal(),
        compute.namespace,
        list(application.objects_applied or []),
    )
    return {"objects": len(rows), "not_ready": [f"{r['kind']}/{r['name']}" for r in rows if not r["ready"]]}


# --- in the run's final transaction (instances.deployer) ------------------------------------------------


def succeeded(run: Run, application: Application) -> None:
    """The revision deployed: it is DEPLOYED (the commit and chart version were recorded when it
    rendered), the ones before it SUPERSEDED."""
    if run.kind == Run.Kind.DELETE:
        return
    revision = revision_of(run, application)
    now = timezone.now()
    ApplicationRevision.objects.filter(
        application=application, outcome=ApplicationRevision.Outcome.DEPLOYED
    ).exclude(pk=revision.pk).update(outcome=ApplicationRevision.Outcome.SUPERSEDED)
    ApplicationRevision.objects.filter(pk=revision.pk).update(
        outcome=ApplicationRevision.Outcome.DEPLOYED, message="", deployed_at=now
    )


def failed(run: Run, application: Application, message: str) -> None:
    """The revision did not deploy: FAILED with the reason (the objects' status and events were read
    when the wait gave up)."""
    if run.kind == Run.Kind.DELETE:
        return
    revision = revision_of(run, application)
    ApplicationRevision.objects.filter(pk=revision.pk).update(
        outcome=ApplicationRevision.Outcome.FAILED, message=message[:2000]
    )


def deleted_with(compute: ComputeInstance) -> None:
    """The compute instance is deleted (in its delete run's success transaction): so are its
    applications (their rows, revisions, runs and audit stay)."""
    service_deployer.deleted_with(compute, Application)
    Application.objects.filter(compute_instance=compute).update(objects_applied=[], object_status=[])
