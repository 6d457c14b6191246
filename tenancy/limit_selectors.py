"""Reads of instance limits (``tenancy.limit_models``), filtered by what the user may see."""

from django.db.models import Q, QuerySet

from paas import authz
from tenancy.models import InstanceLimit, Project


def instance_limit_list_for(user) -> QuerySet[InstanceLimit]:
    """Org admins: every limit of their orgs. A workspace's members: its limit. Operators: the
    organizations' limits (which they set), a workspace's only through what they hold in it (a support
    access): the model's operator codenames hold on every row, a workspace is the tenant's."""
    base = InstanceLimit.objects.select_related("org", "project", "updated_by")
    visible = authz.filter_for(user, "view_instancelimit", base)
    if authz.is_operator(user):
        in_workspace = authz.permission_q(user, "view_project", Project, prefix="project__")
        visible = visible.filter(Q(project__isnull=True) | in_workspace)
    return visible


def instance_limit_get_for(user, pk) -> InstanceLimit:
    return authz.get_visible(instance_limit_list_for(user), pk, user=user)


def instance_limits_applying(project: Project) -> list[InstanceLimit]:
    """The policy rows bounding a user of ``project``: its org's and its own (no permission: the launch
    decision and the size cards of someone who may launch there read them)."""
    return list(
        InstanceLimit.objects.filter(
            Q(org_id=project.org_id, project__isnull=True) | Q(project_id=project.pk)
        ).order_by("project_id")
    )
