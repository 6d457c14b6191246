"""The studio home's profile cards (reference 001): System Profiles and Custom Profiles, compute and
service, each card with its actions ("launch into projects" where the viewer may share it) and a
"new profile" start for both kinds. Only what the viewer's catalog selector returns is shown: their
projects' profiles, what is inherited into them and the system catalog shared with their orgs."""

from django.contrib import admin
from django.db.models import Q
from django.urls import reverse

from catalog import selectors
from catalog.models import ComputeProfile, ServiceProfile

CARDS_PER_GROUP = 12


def _card(user, profile) -> dict:
    meta = profile._meta
    allowed = selectors.allowed_actions(user, profile)
    kind = (
        f"Service · {profile.get_service_type_display()}"
        if isinstance(profile, ServiceProfile)
        else f"Compute · {profile.get_flavor_display()}"
    )
    if profile.org_id is None:
        sharing = profile.get_system_sharing_display()
    elif profile.project_id:
        sharing = profile.get_sharing_display()
    else:
        sharing = "your organization's copy"
    return {
        "profile": profile,
        "kind": kind,
        "scope": profile.scope_label,
        "sharing": sharing,
        "open_url": reverse(f"admin:catalog_{meta.model_name}_change", args=[profile.pk]),
        "launch_url": reverse(f"admin:catalog_{meta.model_name}_launch", args=[profile.pk])
        if "share" in allowed
        else None,
        "editable": "edit" in allowed,
    }


def _group(user, condition: Q) -> tuple[list[dict], int]:
    cards, total = [], 0
    for model in (ComputeProfile, ServiceProfile):
        rows = selectors.admin_list_for(user, model).filter(condition)
        # a tenant's copy of a system profile replaces the original in its catalogs: show the copy
        rows = rows.exclude(pk__in=rows.filter(origin__isnull=False).values("origin_id"))
        total += rows.count()
        cards += [_card(user, p) for p in rows.order_by("-created_at", "-pk")[:CARDS_PER_GROUP]]
    return cards, total


def profile_cards(request) -> dict | None:
    model_admin = admin.site._registry.get(ServiceProfile)
    if model_admin is None or not model_admin.has_module_permission(request):
        return None
    user = request.user
    system, system_total = _group(user, Q(org__isnull=True) | Q(origin__isnull=False))
    custom, custom_total = _group(user, Q(project__isnull=False))
    return {
        "template": "admin/catalog/home_profiles.html",
        "system_cards": system,
        "system_more": max(system_total - len(system), 0),
        "custom_cards": custom,
        "custom_more": max(custom_total - len(custom), 0),
        "can_add": model_admin.has_add_permission(request),
        "compute_list_url": reverse("admin:catalog_computeprofile_changelist"),
        "service_list_url": reverse("admin:catalog_serviceprofile_changelist"),
        "compute_add_url": reverse("admin:catalog_computeprofile_add"),
        "service_add_url": reverse("admin:catalog_serviceprofile_add"),
    }


admin.site.add_home_section(10, profile_cards)
