"""Portal page of the service catalog: the service profiles a workspace may launch, as cards, each
with a Launch button to the new-service page of its type (``instances.service_views``; the link is by
URL name, so the catalog imports nothing of instances)."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from catalog.models import ServiceProfile
from catalog.pricing import COST_FIELDS
from catalog.readme import render_readmes
from catalog.selectors import catalog_for
from paas import authz
from paas.portal import portal_page
from tenancy.portal import use_workspace


@portal_page
def service_catalog(request: HttpRequest, project_id: int) -> HttpResponse:
    project = use_workspace(request, project_id)
    profiles = list(
        catalog_for(ServiceProfile, project).only(
            "id", "name", "display_name", "description", "icon_url", "readme", "service_type", *COST_FIELDS
        )
    )
    readmes = render_readmes([p.readme for p in profiles])
    cards = [{"profile": p, "readme_html": html} for p, html in zip(profiles, readmes, strict=True)]
    # Workspace admins and read-write collaborators deploy services; read-only members see no button
    # (and the new-service page and the service layer refuse them).
    can_launch = authz.has_perm(request.user, "manage_services", project)
    return render(
        request,
        "catalog/services.html",
        {"nav": "services", "project": project, "cards": cards, "can_launch": can_launch},
    )
