"""The web shell's page: ``/instances/<id>/shell/`` (the terminal; the WebSocket does the rest)."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from instances.shell import sandbox, sessions
from paas import authz
from paas.errors import Conflict
from paas.portal import portal_page
from tenancy.portal import use_workspace


@portal_page
def shell_page(request: HttpRequest, instance_id: int) -> HttpResponse:
    """The terminal of an instance the user may use (missing and forbidden alike: 404)."""
    try:
        instance = sessions.shell_instance(actor=request.user, instance_id=instance_id)
    except Conflict as exc:
        messages.error(request, exc.message)
        return redirect("instances:detail", instance_id)
    if authz.has_perm(request.user, "view_project", instance.project):
        use_workspace(request, instance.project_id)
    programs = sandbox.binaries()
    response = render(
        request,
        "instances/shell.html",
        {
            "instance": instance,
            "project": instance.project,
            "helm": "helm" in programs,
            "ws_path": f"/ws/instances/{instance.pk}/shell/",
        },
    )
    response["Cache-Control"] = "no-store"
    return response
