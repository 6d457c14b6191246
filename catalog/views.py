"""Portal page of the service catalog: the service profiles a workspace may launch, as cards, each
with a Launch button to the new-service page of its type (``instances.service_views``; the link is by
URL name, so the catalog imports nothing of instances)."""

from types import SimpleNamespace

from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.safestring import mark_safe

from catalog import pricing
from catalog.models import ServiceProfile
from catalog.readme import render_readmes
from catalog.selectors import catalog_for, catalog_generation_and_perm
from paas.portal import portal_page
from tenancy.models import Project
from tenancy.portal import use_workspace

SERVICE_TYPES = dict(ServiceProfile.ServiceType.choices)


def service_cards(project: Project) -> list[dict]:
    """The workspace's service catalog as the page shows it: what each card says, prices worded and
    readmes rendered (through their memo: an edit renders one readme again)."""
    rows = list(
        catalog_for(ServiceProfile, project).values(
            "id", "display_name", "description", "icon_url", "readme", "service_type", *pricing.COST_FIELDS
        )
    )
    readmes = render_readmes([row["readme"] for row in rows])
    cards = []
    for row, html in zip(rows, readmes, strict=True):
        price = pricing.price_snapshot(SimpleNamespace(**row))
        cards.append(
            {
                "id": row["id"],
                "display_name": row["display_name"],
                "description": row["description"],
                "icon_url": row["icon_url"],
                "service_type_label": SERVICE_TYPES.get(row["service_type"], row["service_type"]),
                "price_label": pricing.price_label(price),
                "stopped_label": pricing.stopped_label(price),
                "readme_html": html,
            }
        )
    return cards


def service_cards_html(project: Project, *, generation: int, can_launch: bool) -> str:
    """The cards, rendered, cached under the catalog generation (which every catalog write bumps in its
    own transaction), as the API's catalog pages are: a served page reads one counter, not the catalog,
    and renders no card. The key holds all the fragment depends on: the workspace (what it sees, its
    launch URL), the generation and whether the reader may launch (the buttons)."""
    key = f"catalog:service-cards:{project.pk}:{generation}:{int(can_launch)}"
    html = cache.get(key)
    if html is None:
        html = render_to_string(
            "catalog/_service_cards.html",
            {
                "cards": service_cards(project),
                "can_launch": can_launch,
                "launch_url": reverse("instances:service-launch", args=[project.pk]),
            },
        )
        cache.set(key, html, timeout=3600)
    return mark_safe(html)  # noqa: S308 (our template's output, every value escaped there)


@portal_page
def service_catalog(request: HttpRequest, project_id: int) -> HttpResponse:
    project = use_workspace(request, project_id)
    # Workspace admins and read-write collaborators deploy services; read-only members see no button
    # (and the new-service page and the service layer refuse them). Read with the catalog generation.
    generation, can_launch = catalog_generation_and_perm(request.user, "manage_services", project)
    return render(
        request,
        "catalog/services.html",
        {
            "nav": "services",
            "project": project,
            "cards_html": service_cards_html(project, generation=generation, can_launch=can_launch),
        },
    )
