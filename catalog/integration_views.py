"""Portal pages of a workspace's integrations: Repositories (the list of those the workspace may use,
new, edit, a connectivity check with its result, delete: the workspace's own ones) and Container
registries (those delivered to the workspace's instances; read-only here, administrators manage them
in the studio).

Views stay thin: repositories come from ``catalog.integration_selectors`` and change through
``catalog.repositories`` (which checks the permission and the URL again; a check runs on a worker, the
page polls until its result is stored). Credentials are write-only and never rendered.
"""

import time

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_http_methods, require_POST

from catalog.integration_forms import RepositoryForm
from catalog.integration_selectors import can_manage_repository, repositories_for_project, repository_get_for
from catalog.models import Repository
from catalog.registry_selectors import registries_for_project
from catalog.repositories import repository_check, repository_create, repository_delete, repository_update
from inventory.selectors import datacenter_list_for
from paas import authz
from paas.errors import Forbidden
from paas.forms import apply_error
from paas.portal import FORM_ERRORS, portal_page
from tenancy.portal import use_workspace

# After "Check", the list polls until the worker has stored the result, for at most this long.
CHECK_WAIT_SECONDS = 60


def may_manage_repositories(user, project) -> bool:
    """Workspace admins, read-write members and the workspace's PaaS admins add and manage the
    workspace's own repositories (the service layer decides again)."""
    return authz.has_perm(user, "manage_services", project) or authz.has_perm(user, "manage_catalog", project)


def _may_share(user, project) -> bool:
    """Sharing a workspace's repository with the org's other workspaces: its PaaS admins and the org's
    admins (``manage_catalog``), not every member who may add one."""
    return authz.has_perm(user, "manage_catalog", project)


def _manageable(user, repository: Repository) -> bool:
    """The workspace's own repositories, for those who may change them (``can_manage_repository``)."""
    return repository.project_id is not None and can_manage_repository(user, repository)


def _checking_since(request: HttpRequest) -> float | None:
    try:
        since = float(request.GET.get("checking", ""))
    except ValueError:
        return None
    return since if 0 <= time.time() - since < CHECK_WAIT_SECONDS else None


@portal_page
def repository_list(request: HttpRequest, project_id: int) -> HttpResponse:
    project = use_workspace(request, project_id)
    repositories = list(repositories_for_project(project).select_related("org", "project").order_by("name"))
    manage = may_manage_repositories(request.user, project)
    since = _checking_since(request)
    checking = _int(request.GET.get("repository")) if since is not None else None
    awaiting = any(
        r.pk == checking and (r.checked_at is None or r.checked_at.timestamp() < since) for r in repositories
    )
    return render(
        request,
        "catalog/integrations/repositories.html",
        {
            "nav": "integrations",
            "project": project,
            "rows": [
                {"repo": r, "manage": r.project_id == project.pk and can_manage_repository(request.user, r)}
                for r in repositories
            ],
            "can_create": manage,
            "live": awaiting,
            # where a check may run from (the agent serving a datacenter reaches what it reaches):
            # offered to those who may read the inventory, as the API does
            "datacenters": list(datacenter_list_for(request.user).order_by("display_name")) if manage else [],
        },
    )


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@portal_page
@require_http_methods(["GET", "POST"])
def repository_new(request: HttpRequest, project_id: int) -> HttpResponse:
    project = use_workspace(request, project_id)
    if not may_manage_repositories(request.user, project):
        raise Forbidden("You may not add repositories to this workspace.")
    form = RepositoryForm(request.POST or None, may_share=_may_share(request.user, project))
    error, status = "", 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                repository = repository_create(actor=request.user, project=project, **form.service_data())
            except FORM_ERRORS as exc:
                error, status = (
                    apply_error(form, exc, renamed={"credential": form.credential_field}),
                    exc.status,
                )
            else:
                messages.success(
                    request, f"Repository {repository.name} added. Check that it can be reached."
                )
                return redirect("catalog:repositories", project.pk)
    return render(
        request,
        "catalog/integrations/repository_form.html",
        {"nav": "integrations", "project": project, "form": form, "error": error, "repository": None},
        status=status,
    )


def _own(request: HttpRequest, repository_id: int, what: str) -> Repository:
    repository = repository_get_for(request.user, repository_id)
    if not _manageable(request.user, repository):
        raise Forbidden(f"You may not {what} this repository.")
    use_workspace(request, repository.project_id)
    return repository


@portal_page
@require_http_methods(["GET", "POST"])
def repository_edit(request: HttpRequest, repository_id: int) -> HttpResponse:
    repository = _own(request, repository_id, "change")
    form = RepositoryForm(
        request.POST or None, repository=repository, may_share=_may_share(request.user, repository.project)
    )
    error, status = "", 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                repository_update(actor=request.user, repository=repository, **form.service_data())
            except FORM_ERRORS as exc:
                error, status = (
                    apply_error(form, exc, renamed={"credential": form.credential_field}),
                    exc.status,
                )
            else:
                messages.success(request, f"Repository {repository.name} saved.")
                return redirect("catalog:repositories", repository.project_id)
    return render(
        request,
        "catalog/integrations/repository_form.html",
        {
            "nav": "integrations",
            "project": repository.project,
            "form": form,
            "error": error,
            "repository": repository,
        },
        status=status,
    )


@portal_page
@require_POST
def repository_check_view(request: HttpRequest, repository_id: int) -> HttpResponse:
    """Queue a connectivity check on the worker of the agent serving the chosen datacenter (none: a
    global agent, else the default workers); the list polls until its result is stored."""
    repository = _own(request, repository_id, "check")
    datacenter = None
    if request.POST.get("datacenter"):
        chosen = _int(request.POST["datacenter"])
        datacenter = datacenter_list_for(request.user).filter(pk=chosen).first() if chosen else None
        if datacenter is None:
            messages.error(request, "Choose a datacenter you may use, or any agent.")
            return redirect("catalog:repositories", repository.project_id)
    try:
        repository_check(actor=request.user, repository=repository, datacenter=datacenter)
    except FORM_ERRORS as exc:
        messages.error(request, exc.message)
        return redirect("catalog:repositories", repository.project_id)
    messages.info(request, f"Checking {repository.name}…")
    url = reverse("catalog:repositories", args=[repository.project_id])
    return redirect(f"{url}?repository={repository.pk}&checking={time.time():.3f}")


@portal_page
@require_http_methods(["GET", "POST"])
def repository_delete_view(request: HttpRequest, repository_id: int) -> HttpResponse:
    repository = _own(request, repository_id, "delete")
    error = ""
    if request.method == "POST":
        if request.POST.get("confirm_name", "").strip() != repository.name:
            error = f"Type {repository.name} to confirm."
        else:
            project_id = repository.project_id
            try:
                repository_delete(actor=request.user, repository=repository)
            except FORM_ERRORS as exc:
                error = exc.message
            else:
                messages.success(request, f"Repository {repository.name} deleted.")
                return redirect("catalog:repositories", project_id)
    return render(
        request,
        "catalog/integrations/repository_delete.html",
        {"nav": "integrations", "project": repository.project, "repository": repository, "error": error},
        status=400 if error else 200,
    )


@portal_page
def registry_list(request: HttpRequest, project_id: int) -> HttpResponse:
    """The container registries whose pull credential is delivered to this workspace's instances."""
    project = use_workspace(request, project_id)
    registries = list(
        registries_for_project(project)
        .select_related("org", "project")
        .defer("credential", "token")
        .order_by("name")
    )
    studio_url = ""
    if authz.has_perm(request.user, "manage_catalog", project) and request.user.is_staff:
        try:
            studio_url = reverse("admin:catalog_containerregistry_changelist")
        except NoReverseMatch:  # no registry page in the studio: its home
            studio_url = reverse("admin:index")
    return render(
        request,
        "catalog/integrations/registries.html",
        {"nav": "integrations", "project": project, "registries": registries, "studio_url": studio_url},
    )
