"""Every write on applications (a user's Kubernetes YAML or Helm chart deployed onto a compute instance):
create (uploaded, pulled from a repository, or from the application catalog), update (a new revision),
roll back, retry, delete, and a status refresh. The worker side is ``instances.application_deployer``
(through ``instances.deployer.execute``).

Here, on the request: the permission (the workspace's admins and read-write members, the compute
instance's owner and collaborators; read-only members never), the compute instance ready, the name, and
the source: the package type, the uploaded files (``catalog.sources.validate_upload``), or a repository
the workspace sees, of a kind that fits the package type, a ref, path, chart and version that are plain
names, the value overrides a YAML mapping. Fetching and rendering happen on the worker of the cluster's
agent (private repositories behind a firewall are reached from there), which also checks the objects,
what they use of the instance and whose objects they would replace.

Each deploy (create, update, rollback) is a new numbered revision with its own run; a deploy in flight
makes the next one wait (409). Values given as overrides are kept with the revision: they are the
user's configuration, shown back to whoever may see the application (secrets belong in Secrets).
"""

import yaml
from django.db import transaction
from django.db.models import Max

from catalog import selectors as catalog_selectors
from catalog.models import ArtifactSync, CatalogApplication, Repository
from catalog.sources import spec
from instances import selectors, service_instances
from instances.application_selectors import application_list_for, can_manage_application
from instances.models import Application, ApplicationRevision, ComputeInstance, Run
from instances.service_selectors import can_deploy_services_on
from instances.states import State, transition
from inventory.routing import enqueue_for_cluster
from paas import authz
from paas.audit import audit_log
from paas.errors import Conflict, Forbidden, ValidationFailed
from paas.validation import is_dns_label

RUN_TASK = "instances.tasks.run_execute"
STATUS_TASK = "instances.tasks.application_status"
NAME_MAX = 53  # a Helm release name
_IN_FLIGHT = (Run.Outcome.QUEUED, Run.Outcome.RUNNING)


# --- checks -------------------------------------------------------------------------------------------


def application_name_check(*, compute_instance: ComputeInstance, name: str) -> str:
    """The name, stripped, if it may name a new application on the instance (a DNS label of at most 53
    characters, the Helm release name; unique among its applications that are not deleted)."""
    name = (name or "").strip()
    if not is_dns_label(name) or len(name) > NAME_MAX:
        raise ValidationFailed(
            "Invalid name.",
            fields={
                "name": f"Lowercase letters, digits and hyphens, at most {NAME_MAX}, starting and ending "
                "with a letter or digit."
            },
        )
    if (
        Application.objects.filter(compute_instance=compute_instance, name=name)
        .exclude(state=State.DELETED)
        .exists()
    ):
        raise ValidationFailed(
            "Invalid name.",
            fields={"name": f"An application named {name!r} exists on {compute_instance.name} already."},
        )
    return name


def _require_deploy(actor, compute_instance: ComputeInstance) -> None:
    if not can_deploy_services_on(actor, compute_instance):
        raise Forbidden("You may not deploy applications on this instance.")
    if compute_instance.state != State.READY:
        raise Conflict(
            f"{compute_instance.name} is {compute_instance.get_state_display().lower()}; applications are "
            "deployed on a ready instance.",
            code="instance_not_ready",
        )


def clean_source(*, project, package_type, **given) -> dict:
    """The source fields of a revision, checked for ``project`` (``catalog.sources.spec``): its
    repository must be one the workspace sees."""
    repositories = Repository.objects.filter(catalog_selectors.visible_in_project_q(Repository, project))
    return spec.clean(package_type=package_type, repositories=repositories, **given)


def _from_catalog(project, catalog_item, values: str) -> tuple[CatalogApplication, str, dict]:
    pk = catalog_item.pk if isinstance(catalog_item, CatalogApplication) else catalog_item
    item = (
        CatalogApplication.objects.filter(
            catalog_selectors.visible_in_project_q(CatalogApplication, project), published=True, pk=pk
        ).first()
        if pk is not None
        else None
    )
    if item is None:
        raise ValidationFailed(
            "Invalid catalog application.",
            fields={"catalog_item": "Choose an application of this workspace's catalog."},
        )
    overrides = spec.values_mapping(values)
    merged = spec.deep_merge(spec.values_mapping(item.values), overrides)
    text = yaml.safe_dump(merged, sort_keys=False) if merged else ""
    source = {field: getattr(item, field) for field in spec.SOURCE_FIELDS} | {"values": text}
    return item, item.package_type, source


def _audit_source(source: dict) -> dict:
    """What the audit trail keeps of a source: never the files' text nor the values (they may hold a
    password), only their names and keys."""
    repository = source.get("repository")
    return {
        "sync": source["sync"],
        "files": sorted(source.get("files") or {}),
        "repository": repository.name if repository else None,
        "ref": source.get("ref", ""),
        "path": source.get("path", ""),
        "chart": source.get("chart", ""),
        "chart_version": source.get("chart_version", ""),
        "values_keys": sorted(str(k) for k in spec.values_mapping(source.get("values") or "")),
    }


# --- create -----------------------------------------------------------------------------------------


def application_create(
    *,
    actor,
    compute_instance: ComputeInstance,
    name: str,
    package_type=None,
    sync=None,
    files=None,
    repository=None,
    ref: str = "",
    path: str = "",
    chart: str = "",
    chart_version: str = "",
    values_file: str = "",
    values: str = "",
    catalog_item=None,
    description: str = "",
) -> Application:
    """Deploy an application onto a compute instance: revision 1 and its deploy run, enqueued on commit
    for the agent of the instance's cluster. From the catalog: the item's source, its default values
    deep-merged with ``values``."""
    compute_instance = authz.get_visible(selectors.instance_list_for(actor), compute_instance.pk, user=actor)
    _require_deploy(actor, compute_instance)
    name = application_name_check(compute_instance=compute_instance, name=name)
    item = None
    if catalog_item is not None:
        item, package_type, source = _from_catalog(compute_instance.project, catalog_item, values)
    else:
        source = clean_source(
            project=compute_instance.project,
            package_type=package_type,
            sync=sync,
            files=files,
            repository=repository,
            ref=ref,
            path=path,
            chart=chart,
            chart_version=chart_version,
            values_file=values_file,
            values=values,
        )
    return _create(
        actor=actor,
        compute_instance=compute_instance,
        name=name,
        description=description,
        package_type=package_type,
        source=source,
        item=item,
    )


@transaction.atomic
def _create(*, actor, compute_instance, name, description, package_type, source, item) -> Application:
    compute_instance = (
        ComputeInstance.objects.select_for_update(of=("self",), no_key=True)
        .select_related("project", "cluster")
        .get(pk=compute_instance.pk)
    )
    _require_deploy(actor, compute_instance)
    application_name_check(compute_instance=compute_instance, name=name)
    application = Application.objects.create(
        org_id=compute_instance.org_id,
        project_id=compute_instance.project_id,
        compute_instance=compute_instance,
        name=name,
        description=description or "",
        owner=actor,
        package_type=package_type,
        catalog_item=item,
        revision=1,
    )
    run = Run.objects.create(
        instance=compute_instance, application=application, kind=Run.Kind.DEPLOY, requested_by=actor
    )
    ApplicationRevision.objects.create(
        application=application, number=1, run=run, created_by=actor, package_type=package_type, **source
    )
    audit_log(
        actor=actor,
        action="application.create",
        target=application,
        project=compute_instance.project,
        details={
            "compute_instance": compute_instance.name,
            "package_type": package_type,
            "catalog_item": item.name if item else None,
            "revision": 1,
            "run": run.pk,
        }
        | _audit_source(source),
    )
    enqueue_for_cluster(compute_instance.cluster, RUN_TASK, run.pk)
    return application


# --- new revisions: update, roll back -----------------------------------------------------------------


def _visible(actor, application: Application) -> Application:
    return authz.get_visible(application_list_for(actor), application.pk, user=actor)


def _require_manage(actor, application: Application, message: str) -> Application:
    application = _visible(actor, application)
    if not can_manage_application(actor, application):
        raise Forbidden(message)
    return application


def _lock(application: Application) -> Application:
    return (
        Application.objects.select_for_update(of=("self",))
        .select_related("compute_instance__cluster", "project")
        .get(pk=application.pk)
    )


def _require_idle(application: Application) -> None:
    """No run of the application in flight, nor a compute instance's own (a stop, a redeploy)."""
    compute = application.compute_instance
    if application.state in (State.DELETING, State.DELETED):
        raise Conflict(f"{application.name} is {application.get_state_display().lower()}.")
    busy = Run.objects.filter(outcome__in=_IN_FLIGHT).filter(application=application).exists() or (
        Run.objects.filter(
            outcome__in=_IN_FLIGHT, instance=compute, service__isnull=True, application__isnull=True
        ).exists()
    )
    if busy or application.state in (State.PENDING, State.PROVISIONING):
        raise Conflict(
            f"{application.name} (or its compute instance) has a deploy in progress; wait for it to finish.",
            code="deploy_in_progress",
        )
    if compute.state != State.READY:
        raise Conflict(
            f"Its compute instance {compute.name} is {compute.get_state_display().lower()} "
            "(it must be ready).",
            code="instance_not_ready",
        )


def _new_revision(
    *, actor, application: Application, source: dict, action: str, reason: str, rollback_of=None, details=None
) -> ApplicationRevision:
    """Inside the caller's transaction, the application locked and idle: revision n+1 and its run."""
    number = (application.revisions.aggregate(n=Max("number"))["n"] or 0) + 1
    run = Run.objects.create(
        instance=application.compute_instance,
        application=application,
        kind=Run.Kind.DEPLOY,
        requested_by=actor,
    )
    revision = ApplicationRevision.objects.create(
        application=application,
        number=number,
        run=run,
        rollback_of=rollback_of,
        created_by=actor,
        package_type=application.package_type,
        **source,
    )
    application.revision = number
    application.save(update_fields=["revision"])
    transition(application, State.PROVISIONING, reason)
    audit_log(
        actor=actor,
        action=f"application.{action}",
        target=application,
        project=application.project,
        details={"revision": number, "run": run.pk} | _audit_source(source) | (details or {}),
    )
    enqueue_for_cluster(application.compute_instance.cluster, RUN_TASK, run.pk)
    return revision


def _source_of(revision: ApplicationRevision) -> dict:
    return {field: getattr(revision, field) for field in spec.SOURCE_FIELDS}


@transaction.atomic
def application_update(*, actor, application: Application, **source_changes) -> ApplicationRevision:
    """Deploy a new revision: the current revision's source with ``source_changes`` (any of
    ``spec.SOURCE_FIELDS``, and ``description``). Objects the new revision no longer has are deleted by
    its run. Changing the artifact sync starts from an empty source of that kind."""
    application = _require_manage(actor, application, "You may not update this application.")
    unknown = sorted(set(source_changes) - set(spec.SOURCE_FIELDS) - {"description", "package_type"})
    if unknown:
        raise ValidationFailed(
            "Invalid update.", fields={k: "Not a field of an application's source." for k in unknown}
        )
    if source_changes.get("package_type") not in (None, application.package_type):
        raise ValidationFailed(
            "Invalid package type.",
            fields={"package_type": "The package type of an application stays as created."},
        )
    application = _lock(application)
    _require_idle(application)
    current = application.revisions.order_by("-number").first()
    base = _source_of(current) if current else {}
    if current is None or source_changes.get("sync", base.get("sync")) != base.get("sync"):
        base = {"sync": source_changes.get("sync")}
    changes = {k: v for k, v in source_changes.items() if k in spec.SOURCE_FIELDS}
    source = clean_source(
        project=application.project, package_type=application.package_type, **(base | changes)
    )
    if "description" in source_changes:
        application.description = source_changes["description"] or ""
        application.save(update_fields=["description"])
    return _new_revision(
        actor=actor,
        application=application,
        source=source,
        action="update",
        reason=f"Updating to a new revision (requested by {actor}).",
        details={"changed": sorted(changes)},
    )


@transaction.atomic
def application_rollback(*, actor, application: Application, to=None) -> ApplicationRevision:
    """Deploy an earlier revision again as a new revision, pinned to what it deployed (its Git commit and
    chart version). ``to``: a revision number (or row) that deployed; default the last revision that
    deployed before the current one."""
    application = _require_manage(actor, application, "You may not roll back this application.")
    application = _lock(application)
    _require_idle(application)
    deployed = application.revisions.filter(deployed_at__isnull=False)
    if to is None:
        target = deployed.filter(number__lt=application.revision).order_by("-number").first()
        if target is None:
            raise Conflict(f"{application.name} has no earlier revision that deployed.", code="no_revision")
    else:
        number = to.number if isinstance(to, ApplicationRevision) else to
        target = deployed.filter(number=number).first() if isinstance(number, int) else None
        if target is None:
            raise ValidationFailed(
                "Invalid revision.",
                fields={"revision": f"{application.name} has no revision {to} that deployed."},
            )
    if target.sync == ArtifactSync.REPOSITORY and target.repository_id is None:
        raise Conflict(f"Revision {target.number}'s repository was deleted: it cannot be pulled again.")
    source = _source_of(target)
    if target.commit:
        source["ref"] = target.commit
    if target.resolved_chart_version:
        source["chart_version"] = target.resolved_chart_version
    return _new_revision(
        actor=actor,
        application=application,
        source=source,
        action="rollback",
        reason=f"Rolling back to revision {target.number} (requested by {actor}).",
        rollback_of=target,
        details={"rollback_of": target.number},
    )


@transaction.atomic
def application_retry(*, actor, application: Application) -> Run:
    """Run the current revision's deploy again (a failed application)."""
    application = _require_manage(actor, application, "You may not retry this application.")
    application = _lock(application)
    if application.state != State.FAILED:
        raise Conflict(
            f"Only a failed application is retried (this one is {application.get_state_display().lower()})."
        )
    _require_idle(application)
    revision = application.revisions.get(number=application.revision)
    run = Run.objects.create(
        instance=application.compute_instance,
        application=application,
        kind=Run.Kind.RETRY,
        requested_by=actor,
    )
    revision.run, revision.outcome, revision.message = run, ApplicationRevision.Outcome.PENDING, ""
    revision.save(update_fields=["run", "outcome", "message"])
    transition(
        application, State.PROVISIONING, f"Retrying revision {revision.number} (requested by {actor})."
    )
    audit_log(
        actor=actor,
        action="application.retry",
        target=application,
        project=application.project,
        details={"revision": revision.number, "run": run.pk},
    )
    enqueue_for_cluster(application.compute_instance.cluster, RUN_TASK, run.pk)
    return run


# --- delete, status -----------------------------------------------------------------------------------


@transaction.atomic
def application_delete(*, actor, application: Application) -> Run:
    """Irreversible: the objects the application applied are removed by its delete run; it keeps its
    history (revisions, runs, audit)."""
    application = _require_manage(actor, application, "You may not delete this application.")
    application = _lock(application)
    if application.state in (State.DELETING, State.DELETED):
        raise Conflict(f"{application.name} is {application.state} already.")
    compute = application.compute_instance
    if compute.state in (State.DELETING, State.DELETED):
        raise Conflict(
            f"{application.name} goes with its compute instance {compute.name}, which is being deleted."
        )
    transition(application, State.DELETING, f"Deleted by {actor}.")
    run = Run.objects.create(
        instance=compute, application=application, kind=Run.Kind.DELETE, requested_by=actor
    )
    audit_log(
        actor=actor, action="application.delete", target=application, project=application.project, details={}
    )
    enqueue_for_cluster(compute.cluster, RUN_TASK, run.pk)
    return run


@transaction.atomic
def application_status_refresh(*, actor, application: Application) -> None:
    """Read the status and events of the application's objects again, on the cluster's agent
    (``instances.tasks.application_status``). Whoever sees the application may ask."""
    application = _visible(actor, application)
    if application.state == State.DELETED:
        raise Conflict(f"{application.name} is deleted.")
    audit_log(
        actor=actor,
        action="application.status_refresh",
        target=application,
        project=application.project,
        details={},
    )
    enqueue_for_cluster(application.compute_instance.cluster, STATUS_TASK, application.pk)


def applications_deleting_with(*, actor, compute_instance: ComputeInstance) -> list[str]:
    """Inside ``instance_delete``'s transaction: the instance's applications go DELETING with it."""
    return service_instances.deleting_with(Application, actor=actor, compute_instance=compute_instance)
