"""Permission-filtered reads of container registries (the API, the studio and the portal use these).

A user sees the registries they may manage (system ones: operators; an org's: ``manage_catalog`` on
the org; a project's: ``manage_catalog`` on the project or its org) and, read-only, the registries
visible in the workspaces they can view (``catalog.selectors.visible_in_project_q``). Never the
credential: it is write-only everywhere (``has_credential`` is all that is shown).
"""

from django.db.models import Q, QuerySet

from catalog.models import ContainerRegistry
from catalog.selectors import visible_in_project_q
from paas import authz
from tenancy.models import Organization, Project

#: More workspaces than this and the read-only part of a list is left to each workspace's own list.
MAX_PROJECTS = 50


def manageable_q(user) -> Q:
    """System registries (operators) and those of the orgs and projects ``user`` manages the catalog of
    (an operator's only through a support access)."""
    orgs = authz.filter_for(user, "manage_catalog", Organization.objects.all()).values("pk")
    projects = authz.filter_for(user, "manage_catalog", Project.objects.all()).values("pk")
    condition = Q(org__in=orgs, project__isnull=True) | Q(project__in=projects)
    if authz.is_operator(user):
        condition |= Q(org__isnull=True, project__isnull=True)
    return condition


def registry_list_for(user) -> QuerySet:
    """The registries ``user`` may manage or that are visible in a workspace they can view."""
    if not authz.is_active_user(user):
        return ContainerRegistry.objects.none()
    condition = manageable_q(user)
    projects = authz.filter_for(user, "view_project", Project.objects.all())[:MAX_PROJECTS]
    for project in projects:
        condition |= visible_in_project_q(ContainerRegistry, project)
    return ContainerRegistry.objects.filter(condition).select_related("org", "project").order_by("name", "pk")


def registry_get_for(user, pk) -> ContainerRegistry:
    """One registry ``user`` may see; missing and forbidden both raise ``NotFound``."""
    return authz.get_visible(registry_list_for(user), pk, user=user)


def registries_for_project(project: Project) -> QuerySet:
    """The registries ``project`` sees (whose pull secrets its instances receive)."""
    return ContainerRegistry.objects.filter(visible_in_project_q(ContainerRegistry, project)).order_by("name")


def can_manage_registry(user, registry: ContainerRegistry) -> bool:
    if registry.org_id is None:
        return authz.is_operator(user)
    if registry.project_id is None:
        return authz.has_perm(user, "manage_catalog", registry.org)
    return authz.has_perm(user, "manage_catalog", registry.project)
