"""Permission-filtered reads of the integrations (repositories here; registries add theirs).

Who sees a repository:

* operators: the system's (in no org); an org's only as below, through a support access;
* an org's admins (``manage_catalog`` on the org): every repository of their org (org and project
  scope) and the system ones shared with their org;
* the members of a project (``view_project``): what the project sees
  (:func:`catalog.selectors.visible_in_project_q`: its own, its org's shared with it, the system ones
  shared with its org).

Nobody else: a repository of another org looks missing (404), like every object one may not see.
"""

from __future__ import annotations

from django.db.models import Q, QuerySet

from catalog.models import Repository, Sharing, SystemSharing
from catalog.selectors import visible_in_project_q
from paas import authz
from tenancy.models import Organization, Project


def repositories_for_project(project: Project) -> QuerySet[Repository]:
    """The repositories ``project`` may deploy from (its own and those shared with it)."""
    return Repository.objects.filter(visible_in_project_q(Repository, project)).order_by("name")


def _visible_to_projects(projects: QuerySet) -> Q:
    through = Repository.shared_projects.through
    selected = through.objects.filter(project__in=projects).values("repository_id")
    orgs = projects.values("org_id")
    system_selected = Repository.shared_orgs.through.objects.filter(organization__in=orgs).values(
        "repository_id"
    )
    return (
        Q(project__in=projects)
        | Q(org__in=orgs, sharing=Sharing.ALL)  # org- and project-scoped, shared with all projects
        | Q(org__in=orgs, sharing=Sharing.SELECTED, pk__in=selected)
        | (Q(org__isnull=True) & (Q(system_sharing=SystemSharing.ALL) | Q(pk__in=system_selected)))
    )


def repository_list_for(user) -> QuerySet[Repository]:
    """Every repository ``user`` may see (studio, API, portal lists): operators the system's, an org's
    only through a support access (as its members and admins see them)."""
    base = Repository.objects.select_related("org", "project").order_by("name", "pk")
    if not authz.is_active_user(user):
        return base.none()
    projects = authz.filter_for(user, "view_project", Project.objects.all())
    admin_orgs = Organization.objects.filter(authz.permission_q(user, "manage_catalog", Organization))
    system_to_admin_orgs = Repository.shared_orgs.through.objects.filter(organization__in=admin_orgs).values(
        "repository_id"
    )
    condition = (
        _visible_to_projects(projects)
        | Q(org__in=admin_orgs)
        | (Q(org__isnull=True) & (Q(system_sharing=SystemSharing.ALL) | Q(pk__in=system_to_admin_orgs)))
    )
    if authz.is_operator(user):
        condition |= Q(org__isnull=True, project__isnull=True)
    return base.filter(condition).distinct()


def repository_get_for(user, pk) -> Repository:
    """One repository ``user`` may see; missing and forbidden look alike (NotFound)."""
    return authz.get_visible(repository_list_for(user), pk, user=user)


def can_manage_repository(user, repository: Repository) -> bool:
    """Change, share, delete: operators (system), the org's admins (``manage_catalog`` on the org: org
    scope, and every project scope of their org), for a project scope also ``manage_catalog`` or
    ``manage_services`` on the project (workspace admins and read-write members)."""
    if repository.org_id is None:
        return authz.is_operator(user)
    if authz.has_perm(user, "manage_catalog", repository.org):
        return True
    if repository.project_id is None:
        return False
    return authz.has_perm(user, "manage_catalog", repository.project) or authz.has_perm(
        user, "manage_services", repository.project
    )
