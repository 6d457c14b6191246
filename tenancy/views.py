"""Tenancy pages of the developer hub: sign-in, the home redirect, a workspace's landing page, and
accepting an invitation."""

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from instances import selectors as instance_selectors
from paas.errors import ApplicationError, NotFound
from paas.forms import apply_error
from paas.portal import SESSION_WORKSPACE, portal_page, use_workspace, workspace_permissions
from tenancy import selectors, services
from tenancy.forms import InvitationAcceptForm
from tenancy.models import User


@require_http_methods(["GET", "POST"])
def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    try:
        invitation = services.invitation_for_token(token)
    except NotFound:
        return render(request, "tenancy/invitation_invalid.html", status=404)
    signed_in = request.user.is_authenticated
    has_account = User.objects.filter(email__iexact=invitation.email).exists()
    form = InvitationAcceptForm(
        request.POST or None, initial={"first_name": invitation.first_name, "last_name": invitation.last_name}
    )
    error = ""
    if request.method == "POST" and invitation.status == "pending":
        try:
            if signed_in:
                services.invitation_accept(token=token, user=request.user)
                messages.success(request, f"You joined {invitation.org}.")
                return redirect("/")
            if form.is_valid():
                data = form.cleaned_data
                user = services.invitation_accept(
                    token=token,
                    username=data["username"],
                    password=data["password"],
                    first_name=data["first_name"],
                    last_name=data["last_name"],
                )
                login(request, user, backend="django.contrib.auth.backends.ModelBackend")
                messages.success(request, f"Welcome! You joined {invitation.org}.")
                return redirect("/")
        except ApplicationError as exc:
            error = apply_error(form, exc)
    return render(
        request,
        "tenancy/invitation_accept.html",
        {
            "invitation": invitation,
            "form": form,
            "error": error,
            "signed_in": signed_in,
            "has_account": has_account,
            "login_url": f"{reverse('tenancy:login')}?next={request.path}",
        },
    )


class PortalLoginView(LoginView):
    """Password sign-in for local accounts, beside the single sign-on button when SSO is configured."""

    template_name = "tenancy/login.html"
    redirect_authenticated_user = True


@portal_page
def home(request: HttpRequest) -> HttpResponse:
    """``/``: the workspace used last, else the first one (personal first); else say why there is none
    (every org of theirs deactivated) or what to do."""
    workspaces = selectors.workspaces_for(request.user)
    remembered = request.session.get(SESSION_WORKSPACE)
    target = (remembered and workspaces.filter(pk=remembered).first()) or workspaces.first()
    if target is not None:
        return redirect("tenancy:workspace", target.pk)
    deactivated = list(selectors.deactivated_orgs_of(request.user))
    if deactivated:
        return render(request, "tenancy/org_deactivated.html", {"nav": "home", "orgs": deactivated})
    return render(request, "tenancy/no_workspace.html", {"nav": "home"})


@portal_page
def workspace(request: HttpRequest, project_id: int) -> HttpResponse:
    """The landing page of a workspace: what is active, resources in use against quota, activity.

    For the people who work in it; a PaaS admin of the workspace (who manages its catalog, not its
    work) gets the page without any of that, pointing to the studio.
    """
    project = use_workspace(request, project_id)
    can = workspace_permissions(request.user, project)
    context = {
        "nav": "home",
        "project": project,
        "can": can,
        "others": instance_selectors.workspaces_with_active_instances(request.user, exclude=project),
    }
    if not can["view_instances"]:
        return render(request, "tenancy/workspace.html", context)
    summary = instance_selectors.workspace_summary(request.user, project.pk)
    usage = [
        _usage_row("GPUs", summary["in_use"]["gpus"], summary["quota"]["gpus"])
        | {"note": "MIG slices count as fractions of a GPU: 1g.10gb = 1/7 GPU"},
        _usage_row("CPU cores", summary["in_use"]["cpu_cores"], summary["quota"]["cpu_cores"]),
        _usage_row("Memory (GiB)", summary["in_use"]["memory_gib"], summary["quota"]["memory_gib"]),
        _usage_row("Storage (GiB)", summary["in_use"]["storage_gib"], summary["quota"]["storage_gib"]),
        _usage_row("Instances", summary["in_use"]["instances"], summary["quota"]["instances"]),
    ]
    return render(
        request,
        "tenancy/workspace.html",
        context
        | {
            "summary": summary,
            "usage": usage,
            "states": [(state, n) for state, n in summary["instances"].items() if n and state != "deleted"],
            "recent": instance_selectors.instance_recent_in(request.user, project, limit=5),
            "activity": selectors.workspace_activity(request.user, project, limit=10),
        },
    )


def _usage_row(label: str, used, limit) -> dict:
    used = int(used) if float(used).is_integer() else used if label == "GPUs" else round(float(used), 1)
    percent = None if not limit else min(100, round(100 * float(used) / float(limit)))
    return {"label": label, "used": used, "limit": limit, "percent": percent}
