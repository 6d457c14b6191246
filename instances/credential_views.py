"""The instance page's "kubectl access" section: the live credentials of the instance's kubectl proxy
(your own, or everyone's for who may change the instance) with a Revoke button each.

Revoking posts a form (CSRF-protected); with htmx the section is swapped in place, without it the page
is loaded again with a message. A credential that expired or was revoked meanwhile and one the user
may not see get the same answer, shown on the form.
"""

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from instances import selectors
from instances.kubeproxy import credentials
from instances.kubeproxy import selectors as credential_selectors
from instances.models import ComputeInstance
from paas import authz
from paas.errors import NotFound
from paas.portal import FORM_ERRORS, portal_page

SECTION = "instances/_kube_credentials.html"


def kubeconfig_ttl_label() -> str:
    """How long a downloaded kubeconfig's credential lives (``PAAS_KUBECONFIG_TTL_MINUTES``), in words."""
    minutes = int(settings.PAAS_KUBECONFIG_TTL_MINUTES)
    if minutes % 60 == 0:
        hours = minutes // 60
        return "one hour" if hours == 1 else f"{hours} hours"
    return "one minute" if minutes == 1 else f"{minutes} minutes"


def instance_kube_credentials_context(
    request: HttpRequest, instance: ComputeInstance, error: str = ""
) -> dict:
    """What the section shows: the live credentials the user may see, whether they are everyone's."""
    user = request.user
    rows = credential_selectors.credentials_visible(actor=user, instance=instance)
    return {
        "kube_credentials": list(rows[: credential_selectors.MAX_LISTED]),
        "kube_credentials_all": authz.has_perm(user, "change_computeinstance", instance),
        "kube_credentials_error": error,
        "kube_credentials_shown": authz.has_perm(user, "use_instance", instance)
        or authz.has_perm(user, "change_computeinstance", instance),
    }


def _section(request: HttpRequest, instance: ComputeInstance, error: str = "") -> HttpResponse:
    context = {"instance": instance, "project": instance.project}
    response = render(request, SECTION, context | instance_kube_credentials_context(request, instance, error))
    response["Cache-Control"] = "no-store"
    return response


@portal_page
@require_GET
def kube_credentials(request: HttpRequest, instance_id: int) -> HttpResponse:
    """The section alone (htmx refreshes it)."""
    return _section(request, selectors.instance_get_for(request.user, instance_id))


@portal_page
@require_POST
def kube_credential_revoke(request: HttpRequest, instance_id: int, credential_id: int) -> HttpResponse:
    instance = selectors.instance_get_for(request.user, instance_id)
    error = ""
    try:
        credential = credential_selectors.access_credential(
            actor=request.user, instance=instance, credential_id=credential_id
        )
        credentials.credential_revoke(actor=request.user, credential=credential)
    except NotFound:
        error = "That credential is no longer live: it expired or was revoked already."
    except FORM_ERRORS as exc:
        error = exc.message
    if request.headers.get("HX-Request"):
        return _section(request, instance, error)
    if error:
        messages.error(request, error)
    else:
        holder = credential.user.email or credential.user.get_username()
        messages.success(request, f"The kubectl credential of {holder} is revoked.")
    return redirect(reverse("instances:detail", args=[instance.pk]) + "#kube-credentials")
