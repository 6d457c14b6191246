"""Permission-filtered reads of service instances (services deployed onto compute instances)."""

from django.db.models import QuerySet

from instances.models import ServiceInstance
from instances.selectors import instance_list_for
from instances.states import State
from paas import authz


def service_list_for(user) -> QuerySet[ServiceInstance]:
    """Services on the compute instances the user may see (workspace readers see every service of the
    workspace; an instance's collaborators see the services on that instance)."""
    return ServiceInstance.objects.filter(
        authz.among("compute_instance_id", instance_list_for(user).values("pk"))
    ).select_related("project__org", "owner", "profile", "compute_instance__cluster")


def service_get_for(user, pk) -> ServiceInstance:
    """One service the user may see; missing and forbidden look alike (NotFound)."""
    return authz.get_visible(service_list_for(user), pk, user=user)


def service_list_filtered(
    user,
    *,
    project=None,
    service_type: str | None = None,
    compute_instance=None,
    state: str | None = None,
    include_deleted: bool = False,
) -> QuerySet[ServiceInstance]:
    """List rows (newest first), narrowed by workspace, type, compute instance and state."""
    queryset = service_list_for(user).defer("snapshot", "outputs", "objects_applied")
    if project is not None:
        queryset = queryset.filter(project=project)
    if service_type:
        queryset = queryset.filter(service_type=service_type)
    if compute_instance is not None:
        queryset = queryset.filter(compute_instance=compute_instance)
    if state:
        queryset = queryset.filter(state=state)
    elif not include_deleted:
        queryset = queryset.exclude(state=State.DELETED)
    return queryset.order_by("-created_at", "-pk")


def can_manage_service(user, service: ServiceInstance) -> bool:
    """Whether the user may run actions on, redeploy and delete this service."""
    return authz.has_perm(user, "change_serviceinstance", service)


def can_deploy_services_on(user, compute_instance) -> bool:
    """Whether the user may deploy services onto this compute instance: workspace admins and read-write
    collaborators of its workspace (``manage_services``), and the instance's owner and collaborators
    (``use_instance``). Read-only members never."""
    return authz.has_perm(user, "manage_services", compute_instance.project) or authz.has_perm(
        user, "use_instance", compute_instance
    )
