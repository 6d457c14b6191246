"""Permission-filtered reads of applications (a user's YAML or Helm chart deployed onto a compute
instance). Seen like services: workspace readers see every application of the workspace, an instance's
collaborators those on that instance; missing and forbidden look alike (NotFound)."""

from django.db.models import Q, QuerySet

from instances.models import Application
from instances.selectors import instance_list_for
from instances.states import State
from paas import authz


def application_list_for(user) -> QuerySet[Application]:
    """Applications on the compute instances the user may see."""
    return Application.objects.filter(
        authz.among("compute_instance_id", instance_list_for(user).values("pk"))
    ).select_related("project__org", "owner", "compute_instance__cluster", "catalog_item")


def application_get_for(user, pk) -> Application:
    """One application the user may see; missing and forbidden look alike (NotFound)."""
    return authz.get_visible(application_list_for(user), pk, user=user)


def application_list_filtered(
    user,
    *,
    project=None,
    compute_instance=None,
    state: str | None = None,
    q: str | None = None,
    include_deleted: bool = False,
) -> QuerySet[Application]:
    """List rows (newest first), narrowed by workspace, compute instance, state and a text (name or
    description); deleted ones only when asked for by state or ``include_deleted``."""
    queryset = application_list_for(user).defer("object_status", "objects_applied")
    if project is not None:
        queryset = queryset.filter(project=project)
    if compute_instance is not None:
        queryset = queryset.filter(compute_instance=compute_instance)
    if state:
        queryset = queryset.filter(state=state)
    elif not include_deleted:
        queryset = queryset.exclude(state=State.DELETED)
    if q:
        queryset = queryset.filter(Q(name__icontains=q) | Q(description__icontains=q))
    return queryset.order_by("-created_at", "-pk")


def can_manage_application(user, application: Application) -> bool:
    """Whether the user may update, roll back, retry and delete this application: the workspace's admins
    and read-write members (``manage_services``) and the compute instance's owner and collaborators
    (``use_instance``). Read-only members never."""
    return authz.has_perm(user, "change_application", application)
