"""Tenancy pages of the developer hub: sign-in, the home redirect and accepting an invitation (a
workspace's landing page shows its instances: ``instances.views.workspace``)."""

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from paas.errors import ApplicationError, NotFound
from paas.forms import apply_error
from paas.portal import portal_page
from tenancy import selectors, services
from tenancy.forms import InvitationAcceptForm
from tenancy.models import User
from tenancy.portal import SESSION_WORKSPACE


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
        return redirect("instances:workspace", target.pk)  # the landing page, in instances
    deactivated = list(selectors.deactivated_orgs_of(request.user))
    if deactivated:
        return render(request, "tenancy/org_deactivated.html", {"nav": "home", "orgs": deactivated})
    return render(request, "tenancy/no_workspace.html", {"nav": "home"})
