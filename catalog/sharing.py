"""Sharing, the one rule for every catalog item and integration (templates, profiles, catalog
applications, repositories, registries): a system item (operators) is shared with none, all or selected
organizations; an org or project item with none, all or selected projects of its own org. Sharing never
crosses organizations."""

from collections.abc import Mapping

from catalog.models import Sharing, SystemSharing
from paas.errors import ValidationFailed

FIELDS = {"sharing": "sharing", "system_sharing": "sharing", "projects": "projects", "orgs": "orgs"}


def apply(item, *, sharing: str, projects=(), orgs=(), fields: Mapping[str, str] | None = None) -> dict:
    """Check and store ``item``'s sharing (the caller holds its row lock and has checked who may share).

    ``fields`` names the caller's form/API fields for the messages (keys of :data:`FIELDS`). Returns what
    the audit event records."""
    names = {**FIELDS, **(fields or {})}

    def refuse(key: str, message: str):
        raise ValidationFailed(message, fields={names[key]: message})

    if item.org_id is None:
        orgs = list(orgs or [])
        if sharing not in SystemSharing.values:
            refuse("system_sharing", "Choose none, all or selected.")
        if sharing == SystemSharing.SELECTED and not orgs:
            refuse("orgs", "Choose the organizations.")
        item.system_sharing = sharing
        item.save(update_fields=["system_sharing", "updated_at"])
        item.shared_orgs.set(orgs if sharing == SystemSharing.SELECTED else [])
        return {"sharing": sharing, "orgs": sorted(o.name for o in orgs)}
    projects = list(projects or [])
    if sharing not in Sharing.values:
        refuse("sharing", "Choose none, all or selected.")
    if sharing == Sharing.SELECTED and not projects:
        refuse("projects", "Choose the projects.")
    foreign = [str(p) for p in projects if p.org_id != item.org_id]
    if foreign:
        refuse("projects", f"Sharing never crosses organizations: not in {item.org}: {', '.join(foreign)}.")
    item.sharing = sharing
    item.save(update_fields=["sharing", "updated_at"])
    item.shared_projects.set(projects if sharing == Sharing.SELECTED else [])
    return {"sharing": sharing, "projects": sorted(str(p) for p in projects)}
