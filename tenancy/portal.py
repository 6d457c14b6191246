"""The workspace a developer-hub (portal) page is about, and the workspace switcher of every page.

Tenancy owns workspaces, so this lives here rather than in ``paas.portal`` (the bottom layer, which
imports no app).
"""

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from tenancy.models import Project
from tenancy.selectors import project_get_for, workspaces_for

SESSION_WORKSPACE = "portal_workspace"


def use_workspace(request: HttpRequest, project_id) -> Project:
    """The workspace a page is about (404 unless the user may view it); remembered for ``/``."""
    project = project_get_for(request.user, project_id)
    request.workspace = project
    if request.session.get(SESSION_WORKSPACE) != project.pk:
        request.session[SESSION_WORKSPACE] = project.pk
    return project


def portal(request: HttpRequest) -> dict:
    """Template context for every page: the current workspace and the switcher's list (the sign-in
    options come from ``tenancy.sso.template_context``)."""
    user = getattr(request, "user", None)
    data = {"current_workspace": getattr(request, "workspace", None)}
    if user is not None and user.is_authenticated:
        # Lazy: pages that show no switcher cost no query.
        data["workspaces"] = SimpleLazyObject(lambda: list(workspaces_for(user)))
    return data
