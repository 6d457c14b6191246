"""Portal pages of applications (a user's own Kubernetes YAML or Helm chart deployed onto a compute
instance): "My deployments → Applications" (the list with its search and filters, the DEBUG button),
"New Application", "New Application From Catalog" (the catalog's cards, then a form), and the
application page (deployment status live over htmx, its objects and their status, the debug view with
the failing objects' events and a "refresh status" button, revisions, update, roll back, retry,
delete, the run log).

Views stay thin: objects come from selectors (``instances.application_selectors``; 404 when missing or
not visible), every change goes through ``instances.applications``, which checks the permission again:
a control the page hides because the user may not use it is refused by the server as well.
"""

import time

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from catalog.app_catalog import catalog_applications_for
from catalog.integration_selectors import repositories_for_project
from catalog.models import ArtifactSync, PackageType
from catalog.readme import render_readmes
from instances import selectors
from instances.app_forms import (
    ApplicationFilterForm,
    ApplicationForm,
    ApplicationUpdateForm,
    CatalogDeployForm,
    RollbackForm,
)
from instances.application_models import Application
from instances.application_selectors import (
    application_get_for,
    application_list_filtered,
    can_manage_application,
)
from instances.applications import (
    application_create,
    application_delete,
    application_retry,
    application_rollback,
    application_status_refresh,
    application_update,
)
from instances.models import Run
from instances.service_views import deployable_instances, may_deploy_in
from instances.states import State
from paas import authz
from paas.errors import Forbidden, NotFound
from paas.forms import apply_error
from paas.portal import FORM_ERRORS, portal_page
from tenancy.portal import use_workspace

PAGE_SIZE = 50
REVISIONS_SHOWN = 50
LIVE_STATES = {State.PENDING, State.PROVISIONING, State.DELETING}
UNFINISHED = {Run.Outcome.QUEUED, Run.Outcome.RUNNING}
# After "refresh status", the page polls until the worker has read the status, for at most this long.
REFRESH_WAIT_SECONDS = 60
# How the service layer may name a field, mapped onto the page's field.
RENAMED = {
    "compute_instance_id": "compute_instance",
    "instance": "compute_instance",
    "repository_id": "repository",
}


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# --- the list ----------------------------------------------------------------------------------------------


@portal_page
def application_list(request: HttpRequest, project_id: int) -> HttpResponse:
    project = use_workspace(request, project_id)
    instances = list(selectors.instance_list_in(request.user, project).exclude(state=State.DELETED))
    filters = ApplicationFilterForm(request.GET or None, instances=instances)
    chosen, state, package_type, q = None, "", "", ""
    if filters.is_bound and filters.is_valid():
        chosen = next((i for i in instances if i.pk == filters.cleaned_data["instance"]), None)
        state = filters.cleaned_data["state"]
        package_type = filters.cleaned_data["package_type"]
        q = filters.cleaned_data["q"]
    rows = application_list_filtered(
        request.user, project=project, compute_instance=chosen, state=state or None, q=q or None
    )
    if package_type:
        rows = rows.filter(package_type=package_type)
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "instances/applications/list.html",
        {
            "nav": "deployments",
            "project": project,
            "filters": filters,
            "page": page,
            "query": query.urlencode(),
            "live": any(a.state in LIVE_STATES for a in page.object_list),
            "can_deploy": may_deploy_in(request.user, project),
        },
    )


# --- new application --------------------------------------------------------------------------------------


def _require_deploy(request, project) -> None:
    if not may_deploy_in(request.user, project):
        raise Forbidden("You may not deploy applications in this workspace.")


@portal_page
@require_http_methods(["GET", "POST"])
def application_new(request: HttpRequest, project_id: int) -> HttpResponse:
    """The reference's "New Application": name, package type, artifact sync (upload files, or pull
    from a repository: repository, ref, path; Helm: chart, version, values file, value overrides) and
    the compute instance."""
    project = use_workspace(request, project_id)
    _require_deploy(request, project)
    instances = deployable_instances(request.user, project)
    repositories = list(repositories_for_project(project).order_by("name"))
    error, status = "", 200
    if request.method == "GET":
        initial = {"compute_instance": _int(request.GET.get("instance"))}
        if request.GET.get("package_type") in PackageType.values:
            initial["package_type"] = request.GET["package_type"]
        form = ApplicationForm(initial=initial, instances=instances, repositories=repositories)
    else:
        form = ApplicationForm(request.POST, request.FILES, instances=instances, repositories=repositories)
        status = 400
        if form.is_valid():
            data = form.cleaned_data
            instance = next(i for i in instances if i.pk == data["compute_instance"])
            try:
                application = application_create(
                    actor=request.user,
                    compute_instance=instance,
                    name=data["name"],
                    description=data["description"],
                    package_type=data["package_type"],
                    sync=data["sync"],
                    **form.source_changes(data["package_type"], data["sync"]),
                )
            except FORM_ERRORS as exc:
                error, status = apply_error(form, exc, renamed=RENAMED), exc.status
            else:
                messages.success(request, f"Deploying {application.name} on {instance.name}.")
                return redirect("instances:application-detail", application.pk)
    return render(
        request,
        "instances/applications/new.html",
        {
            "nav": "deployments",
            "project": project,
            "form": form,
            "instances": instances,
            "repositories": repositories,
            "error": error,
        },
        status=status,
    )


@portal_page
def application_catalog(request: HttpRequest, project_id: int) -> HttpResponse:
    """The reference's "New Application From Catalog": the catalog applications this workspace
    sees, as cards."""
    project = use_workspace(request, project_id)
    items = list(catalog_applications_for(project).order_by("display_name", "name"))
    readmes = render_readmes([i.readme for i in items])
    return render(
        request,
        "instances/applications/catalog.html",
        {
            "nav": "deployments",
            "project": project,
            "cards": [{"item": i, "readme_html": html} for i, html in zip(items, readmes, strict=True)],
            "can_deploy": may_deploy_in(request.user, project),
        },
    )


@portal_page
@require_http_methods(["GET", "POST"])
def application_from_catalog(request: HttpRequest, project_id: int, item_id: int) -> HttpResponse:
    """A catalog application's form: name, compute instance, value overrides prefilled with its
    defaults; its readme beside it."""
    project = use_workspace(request, project_id)
    item = catalog_applications_for(project).filter(pk=item_id).first()
    if item is None:
        raise NotFound("No such application in this workspace's catalog.")
    _require_deploy(request, project)
    instances = deployable_instances(request.user, project)
    error, status = "", 200
    if request.method == "GET":
        form = CatalogDeployForm(
            initial={"values": item.values, "compute_instance": _int(request.GET.get("instance"))},
            instances=instances,
        )
    else:
        form = CatalogDeployForm(request.POST, instances=instances)
        status = 400
        if form.is_valid():
            data = form.cleaned_data
            instance = next(i for i in instances if i.pk == data["compute_instance"])
            try:
                application = application_create(
                    actor=request.user,
                    compute_instance=instance,
                    name=data["name"],
                    description=data["description"],
                    catalog_item=item,
                    values=data["values"] or "",
                )
            except FORM_ERRORS as exc:
                error, status = apply_error(form, exc, renamed=RENAMED), exc.status
            else:
                messages.success(request, f"Deploying {application.name} on {instance.name}.")
                return redirect("instances:application-detail", application.pk)
    return render(
        request,
        "instances/applications/from_catalog.html",
        {
            "nav": "deployments",
            "project": project,
            "item": item,
            "readme_html": render_readmes([item.readme])[0],
            "form": form,
            "instances": instances,
            "error": error,
        },
        status=status,
    )


# --- the application page ---------------------------------------------------------------------------------


def revision_source(revision) -> str:
    """One line saying where a revision's (or a catalog application's) artifacts come from."""
    if revision.sync == ArtifactSync.UPLOAD:
        names = ", ".join(sorted(revision.files or {})) or "no files"
        return f"upload: {names}"
    repository = revision.repository
    where = (repository.display_name or repository.name) if repository is not None else "(deleted repository)"
    parts = [where]
    if revision.ref:
        parts.append(f"@ {revision.ref}")
    if revision.path:
        parts.append(f"path {revision.path}")
    if revision.chart:
        parts.append(f"chart {revision.chart}")
    return " ".join(parts)


def _refresh_requested(request: HttpRequest) -> float | None:
    """The time "refresh status" was pressed (``?refresh=<epoch>``), while it is recent."""
    try:
        requested = float(request.GET.get("refresh", ""))
    except ValueError:
        return None
    return requested if 0 <= time.time() - requested < REFRESH_WAIT_SECONDS else None


def _application_context(request: HttpRequest, application: Application) -> dict:
    user = request.user
    manage = can_manage_application(user, application) and application.state not in (
        State.DELETING,
        State.DELETED,
    )
    runs = list(
        application.runs.select_related("requested_by", "revision").order_by("-created_at", "-pk")[:10]
    )
    revisions = list(  # the most recent ones: what the page shows and what a rollback may pick from
        application.revisions.select_related("repository", "created_by", "rollback_of").order_by("-number")[
            :REVISIONS_SHOWN
        ]
    )
    current = next(
        (r for r in revisions if r.number == application.revision), revisions[0] if revisions else None
    )
    # Rolling back deploys again a revision that deployed once (the service pins its commit and chart).
    earlier = [r for r in revisions if r.deployed_at is not None and r.number != application.revision]
    refresh = _refresh_requested(request)
    awaiting_status = refresh is not None and (
        application.status_checked_at is None or application.status_checked_at.timestamp() < refresh
    )
    objects = list(application.object_status or [])
    if not objects:  # no status read yet: the objects applied, status unknown
        objects = [o | {"ready": None} for o in application.objects_applied or []]
    busy = application.state in LIVE_STATES or any(r.outcome in UNFINISHED for r in runs)
    return {
        "nav": "deployments",
        "application": application,
        "instance": application.compute_instance,
        "project": application.project,
        "revisions": [{"rev": r, "source": revision_source(r)} for r in revisions],
        "current": current,
        "objects": objects,
        "failing": [o for o in objects if o.get("ready") is False],
        "runs": runs,
        "run": runs[0] if runs else None,
        "live": busy or awaiting_status,
        "busy": busy,
        "refresh": f"{refresh:.3f}" if awaiting_status else "",
        "can_manage": manage,
        "can_refresh": application.state != State.DELETED,
        "can_retry": manage and application.state == State.FAILED and not busy,
        "rollback_form": RollbackForm(revisions=earlier) if manage and earlier and not busy else None,
        "can_view_instance": authz.has_perm(user, "view_computeinstance", application.compute_instance),
    }


@portal_page
def application_detail(request: HttpRequest, application_id: int) -> HttpResponse:
    application = application_get_for(request.user, application_id)
    if authz.has_perm(request.user, "view_project", application.project):
        use_workspace(request, application.project_id)
    return render(request, "instances/applications/detail.html", _application_context(request, application))


@portal_page
def application_status(request: HttpRequest, application_id: int) -> HttpResponse:
    """The live part of the application page (htmx polls it while the application changes)."""
    application = application_get_for(request.user, application_id)
    response = render(
        request, "instances/applications/_status.html", _application_context(request, application)
    )
    response["Cache-Control"] = "no-store"
    return response


def _managed(request: HttpRequest, application_id: int, what: str) -> Application:
    application = application_get_for(request.user, application_id)
    if not can_manage_application(request.user, application):
        raise Forbidden(f"You may not {what} this application.")
    return application


def _back(application: Application, *, refresh: bool = False) -> HttpResponse:
    response = redirect("instances:application-detail", application.pk)
    if refresh:
        response["Location"] += f"?refresh={time.time():.3f}#debug"
    return response


@portal_page
@require_POST
def application_refresh_view(request: HttpRequest, application_id: int) -> HttpResponse:
    """The "refresh status" button: the worker reads the objects' status and events again; the page
    polls. Whoever sees the application may ask (it is how the debug view is brought up to date)."""
    application = application_get_for(request.user, application_id)
    try:
        application_status_refresh(actor=request.user, application=application)
    except FORM_ERRORS as exc:
        messages.error(request, exc.message)
        return _back(application)
    messages.info(request, f"Reading the status of {application.name}'s objects.")
    return _back(application, refresh=True)


@portal_page
@require_POST
def application_retry_view(request: HttpRequest, application_id: int) -> HttpResponse:
    application = _managed(request, application_id, "retry")
    try:
        application_retry(actor=request.user, application=application)
    except FORM_ERRORS as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Retrying {application.name}.")
    return _back(application)


@portal_page
@require_POST
def application_rollback_view(request: HttpRequest, application_id: int) -> HttpResponse:
    application = _managed(request, application_id, "roll back")
    revisions = application.revisions.filter(deployed_at__isnull=False).exclude(number=application.revision)
    form = RollbackForm(request.POST, revisions=list(revisions))
    if not form.is_valid():
        messages.error(request, " ".join(e for errors in form.errors.values() for e in errors))
        return _back(application)
    try:
        revision = application_rollback(
            actor=request.user, application=application, to=form.cleaned_data["revision"]
        )
    except FORM_ERRORS as exc:
        messages.error(request, exc.message)
    else:
        back_to = revision.rollback_of.number if revision.rollback_of_id else form.cleaned_data["revision"]
        messages.success(
            request, f"Rolling {application.name} back to revision {back_to} (as revision {revision.number})."
        )
    return _back(application)


@portal_page
@require_http_methods(["GET", "POST"])
def application_update_view(request: HttpRequest, application_id: int) -> HttpResponse:
    """A new revision: the current source, to change (ref, chart version, values, files)."""
    application = _managed(request, application_id, "update")
    current = application.revisions.select_related("repository").order_by("-number").first()
    if current is None:
        raise NotFound("This application has no revision to update.")
    repositories = list(repositories_for_project(application.project).order_by("name"))
    kwargs = {"sync": current.sync, "package_type": current.package_type, "repositories": repositories}
    error, status = "", 200
    if request.method == "GET":
        initial = {
            "repository": current.repository_id,
            "ref": current.ref,
            "path": current.path,
            "chart": current.chart,
            "chart_version": current.chart_version,
            "values_file": current.values_file,
            "values": current.values,
        }
        form = ApplicationUpdateForm(initial=initial, **kwargs)
    else:
        form = ApplicationUpdateForm(request.POST, request.FILES, **kwargs)
        status = 400
        if form.is_valid():
            try:
                revision = application_update(
                    actor=request.user,
                    application=application,
                    **form.source_changes(current.package_type, current.sync),
                )
            except FORM_ERRORS as exc:
                error, status = apply_error(form, exc, renamed=RENAMED), exc.status
            else:
                messages.success(request, f"Updating {application.name} to revision {revision.number}.")
                return _back(application)
    return render(
        request,
        "instances/applications/update.html",
        {
            "nav": "deployments",
            "application": application,
            "project": application.project,
            "current": current,
            "current_source": revision_source(current),
            "form": form,
            "error": error,
        },
        status=status,
    )


@portal_page
@require_http_methods(["GET", "POST"])
def application_delete_view(request: HttpRequest, application_id: int) -> HttpResponse:
    """A confirmation page (type the name), then the delete (a run removing every object)."""
    application = _managed(request, application_id, "delete")
    error = ""
    if request.method == "POST":
        if request.POST.get("confirm_name", "").strip() != application.name:
            error = f"Type {application.name} to confirm."
        else:
            try:
                application_delete(actor=request.user, application=application)
            except FORM_ERRORS as exc:
                error = exc.message
            else:
                messages.success(request, f"Deleting {application.name}. Its objects are being removed.")
                return _back(application)
    return render(
        request,
        "instances/applications/delete.html",
        {"nav": "deployments", "application": application, "project": application.project, "error": error},
        status=400 if error else 200,
    )


# --- the compute instance page's applications part ----------------------------------------------------------


def instance_applications_context(request: HttpRequest, instance) -> dict:
    """What a compute instance's page shows of its applications (one query)."""
    return {"applications": list(application_list_filtered(request.user, compute_instance=instance))}
