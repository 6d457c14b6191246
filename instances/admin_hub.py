"""The studio home's Developer Hub section (registered on the studio site; ``paas`` cannot import
instances): developers, profiles in use, running compute instances and services by workspace, for the
viewer's scope (instances/hub_selectors.py)."""

from django.contrib import admin
from django.urls import reverse

from instances.hub_selectors import developer_hub_for


def developer_hub(request) -> dict:
    hub = developer_hub_for(request.user)
    return {
        "template": "admin/instances/home_hub.html",
        "hub": hub,
        "instances_url": reverse("admin:instances_computeinstance_changelist") if hub is not None else None,
    }


admin.site.add_home_section(20, developer_hub)


def usage_check(request) -> dict | None:
    """Operators: the newest drift check of the usage counters and capacity reservations."""
    from instances.counters import last_check
    from paas import authz

    if not authz.is_operator(request.user):
        return None
    return {"template": "admin/instances/home_usage_check.html", "check": last_check()}


admin.site.add_home_section(40, usage_check)
