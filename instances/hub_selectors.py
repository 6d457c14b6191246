"""The studio home's Developer Hub: per workspace the viewer administers, its developers, the profiles
in use and the compute instances and services running. Operators see every workspace, an org admin
those of their orgs; a PaaS admin (profiles and templates only) sees none of it."""

from dataclasses import dataclass, field

from django.db.models import Count, Q

from instances.selectors import instance_list_for
from instances.service_selectors import service_list_for
from instances.states import ACTIVE, State
from paas import authz
from tenancy.models import Project, RoleAssignment
from tenancy.roles import Role
from tenancy.selectors import administers_any_org

DEVELOPER_ROLES = (Role.WORKSPACE_ADMIN, Role.COLLABORATOR_RW, Role.COLLABORATOR_RO)


@dataclass
class WorkspaceRow:
    project: Project
    developers: int = 0
    profiles_in_use: int = 0
    instances_running: int = 0
    instances_active: int = 0
    services_running: int = 0
    services_active: int = 0


@dataclass
class Hub:
    rows: list[WorkspaceRow] = field(default_factory=list)
    developers: int = 0
    profiles_in_use: int = 0
    instances_running: int = 0
    services_running: int = 0
    more: int = 0


def _per_project(queryset, profile_field: str) -> dict[int, dict]:
    active = Q(state__in=ACTIVE)
    rows = (
        queryset.order_by()
        .values("project_id")
        .annotate(
            running=Count("pk", filter=Q(state=State.READY)),
            active=Count("pk", filter=active),
            profiles=Count(profile_field, filter=active, distinct=True),
        )
    )
    return {row["project_id"]: row for row in rows}


def developer_hub_for(user, *, limit: int = 50) -> Hub | None:
    """None for a viewer who administers no org (a PaaS admin): the hub is not theirs to see."""
    if not administers_any_org(user):
        return None
    projects = authz.filter_for(user, "view_instances", Project.objects.select_related("org")).order_by(
        "org__name", "name"
    )
    instances = instance_list_for(user).filter(project__in=projects.values("pk"))
    services = service_list_for(user).filter(project__in=projects.values("pk"))
    by_instances = _per_project(instances, "profile")
    by_services = _per_project(services, "profile")
    members = RoleAssignment.objects.filter(project__in=projects.values("pk"), role__in=DEVELOPER_ROLES)
    developers = dict(
        members.order_by()
        .values("project_id")
        .annotate(n=Count("user", distinct=True))
        .values_list("project_id", "n")
    )
    hub = Hub(
        developers=members.values("user").distinct().count(),
        profiles_in_use=(
            instances.filter(state__in=ACTIVE, profile__isnull=False).values("profile").distinct().count()
            + services.filter(state__in=ACTIVE, profile__isnull=False).values("profile").distinct().count()
        ),
        instances_running=instances.filter(state=State.READY).count(),
        services_running=services.filter(state=State.READY).count(),
    )
    total = projects.count()
    hub.more = max(total - limit, 0)
    for project in projects[:limit]:
        i, s = by_instances.get(project.pk, {}), by_services.get(project.pk, {})
        hub.rows.append(
            WorkspaceRow(
                project=project,
                developers=developers.get(project.pk, 0),
                profiles_in_use=i.get("profiles", 0) + s.get("profiles", 0),
                instances_running=i.get("running", 0),
                instances_active=i.get("active", 0),
                services_running=s.get("running", 0),
                services_active=s.get("active", 0),
            )
        )
    return hub
