"""Permission-filtered reads of compute instances."""

from decimal import Decimal

from django.db.models import CharField, Count, Q, QuerySet, Sum
from django.db.models.fields.json import KT
from django.db.models.functions import Coalesce

from catalog.models import ComputeProfile
from instances.models import ComputeInstance, StandbyInstance
from instances.states import ACTIVE, STORAGE_ONLY, State
from inventory.matchmaker import PlacementRequest, ResourceGroup
from inventory.models import ClusterReservation
from inventory.selectors import Reservation
from paas import authz
from paas.errors import NotFound
from paas.units import GIB
from tenancy.models import Project

#: The states in which a standby instance holds capacity on its cluster (placeholder pods may exist).
STANDBY_HOLDING = (
    StandbyInstance.State.PROVISIONING,
    StandbyInstance.State.READY,
    StandbyInstance.State.RETIRING,
    StandbyInstance.State.FAILED,
)


def instance_list_for(user) -> QuerySet[ComputeInstance]:
    """Instances of workspaces the user may view, and those shared with them as collaborator."""
    visible = authz.permission_any_q(user, ("view_computeinstance", "use_instance"), ComputeInstance)
    return ComputeInstance.objects.filter(visible).select_related(
        "project__org", "owner", "cluster", "profile"
    )


def instance_get_for(user, pk) -> ComputeInstance:
    return authz.get_visible(instance_list_for(user), pk, user=user)


def _listing(queryset: QuerySet[ComputeInstance]) -> QuerySet[ComputeInstance]:
    """Rows for list pages: without the (large) snapshot, with the size's display name annotated."""
    return queryset.defer("snapshot", "placement", "outputs").annotate(
        size=Coalesce("profile__display_name", KT("snapshot__display_name"), output_field=CharField())
    )


def instance_list_in(user, project: Project) -> QuerySet[ComputeInstance]:
    """The instances of one workspace the user may see, newest first (list pages; filter further)."""
    return _listing(instance_list_for(user).filter(project=project)).order_by("-created_at", "-pk")


def instance_recent_in(user, project: Project, *, limit: int = 5) -> QuerySet[ComputeInstance]:
    return instance_list_in(user, project).exclude(state=State.DELETED)[:limit]


def instance_shared_with(user) -> QuerySet[ComputeInstance]:
    """Instances other people added the user to as collaborator (in any workspace), not deleted."""
    return (
        _listing(instance_list_for(user).filter(collaborators__user=user))
        .exclude(state=State.DELETED)
        .order_by("-created_at", "-pk")
    )


def instance_detail_for(user, pk) -> ComputeInstance:
    """One instance with what its page shows (collaborators and recent runs prefetched)."""
    from django.db.models import Prefetch

    from instances.models import Collaborator

    queryset = instance_list_for(user).prefetch_related(
        Prefetch("collaborators", queryset=Collaborator.objects.select_related("user").order_by("added_at")),
    )
    return authz.get_visible(queryset, pk, user=user)


def workspace_summary(user, project: "int | Project", *, with_limits: bool = False) -> dict:
    """Landing-page data: instances by state and resources in use against the workspace quota.

    For the people who work in the workspace (``view_instances``): a PaaS admin manages its catalog
    but does not see its activity (404, like a workspace they cannot see). GPUs in use count MIG slices
    as fractions of a GPU: ``gpu_units`` is exact (28ths of a GPU), ``gpus`` the same amount with two
    decimals. ``with_limits`` (the API's): ``instance_limits``, the limits bounding the user there and
    what their instances hold (the portal says it on the size cards). ``project`` is the workspace's id,
    or the workspace itself from a page that holds it already (the permission is asked all the same).
    """
    from instances import user_limits
    from instances.quota import UNIT_NOTE
    from inventory import mig
    from tenancy.selectors import project_get_for

    if not isinstance(project, Project):
        project = project_get_for(user, project)
    if not authz.has_perm(user, "view_instances", project):
        raise NotFound("No such project.")
    instances = ComputeInstance.objects.filter(project=project)
    by_state = dict(instances.values_list("state").annotate(n=Count("pk")).order_by())
    active = instances.filter(state__in=ACTIVE)
    computing = ~Q(state__in=STORAGE_ONLY)  # a stopped instance holds only its storage
    used = active.aggregate(
        units=Sum("gpu_units", filter=computing),
        cpu=Sum("cpu_millis", filter=computing),
        memory=Sum("memory_gib", filter=computing),
        storage=Sum("storage_gib"),
        count=Count("pk"),
    )
    units = used["units"] or 0
    quota = project.quota
    summary = {
        "project": project.pk,
        "instances": {state: by_state.get(state, 0) for state in State.values},
        "in_use": {
            "gpus": int(mig.format_gpus(units))
            if units % mig.UNITS_PER_GPU == 0
            else Decimal(mig.format_gpus(units)),
            "gpu_units": units,
            "cpu_cores": (used["cpu"] or 0) / 1000,
            "memory_gib": used["memory"] or 0,
            "storage_gib": used["storage"] or 0,
            "instances": used["count"],
        },
        "quota": {
            field: (float(v) if v is not None and field == "cpu_cores" else v)
            for field in quota.LIMIT_FIELDS
            for v in [getattr(quota, field)]
        },
        "gpu_unit": UNIT_NOTE,
    }
    if with_limits:
        summary["instance_limits"] = user_limits.limits_summary(project=project, user=user)
    return summary


def instance_pending_invitations(instance: ComputeInstance) -> list:
    """People invited to the instance by email who have not accepted yet (shown on its page)."""
    from instances.models import CollaboratorInvitation

    return list(
        CollaboratorInvitation.objects.filter(
            instance=instance, invitation__accepted_at__isnull=True, invitation__revoked_at__isnull=True
        ).select_related("invitation")
    )


def workspaces_with_active_instances(user, *, exclude: Project | None = None) -> QuerySet[Project]:
    """The user's workspaces (as the switcher lists them), each with its count of active instances
    (None where the user may not see them)."""
    from django.db.models import Case, Q, When

    from tenancy.selectors import workspaces_for

    workspaces = workspaces_for(user)
    if exclude is not None:
        workspaces = workspaces.exclude(pk=exclude.pk)
    # Counted only where the user may see the instances (a PaaS admin's workspaces show none).
    viewable = list(
        authz.filter_for(user, "view_instances", workspaces.order_by()).values_list("pk", flat=True)
    )
    return workspaces.annotate(
        active_instances=Case(
            When(
                pk__in=viewable,
                then=Count("compute_instances", filter=Q(compute_instances__state__in=ACTIVE), distinct=True),
            ),
            default=None,
        )
    )


# --- what a launch asks of the matchmaker ------------------------------------------------------------


def reservations() -> dict[int, Reservation]:
    """What the platform's instances and warm pools' standby instances hold on each cluster (subtracted
    from capacity before placing): the clusters' reservation rows (``inventory.ClusterReservation``,
    kept by ``instances.capacity``), one query whatever the number of instances. Clusters holding
    nothing are absent. A cluster without a row yet counts as holding nothing here; its first
    reservation creates the row from the exact re-sum and refuses what no longer fits."""
    rows = ClusterReservation.objects.values_list("cluster_id", "gpus", "mig", "cpu_millis", "memory_bytes")
    return {
        pk: Reservation(
            gpus={k: v for k, v in gpus.items() if v},
            mig={k: v for k, v in mig.items() if v},
            cpu_millis=cpu,
            memory_bytes=memory,
        )
        for pk, gpus, mig, cpu, memory in rows
        if any(gpus.values()) or any(mig.values()) or cpu or memory
    }


def placement_request(profile: ComputeProfile, org_id: int) -> PlacementRequest:
    groups = tuple(
        ResourceGroup(
            gpu_model=g.gpu_model if g.gpu_count else "",
            gpu_count=g.gpu_count,
            mig_profile=g.mig_profile if g.mig_count else "",
            mig_count=g.mig_count,
            cpu_millis=int(g.cpu_cores * 1000),
            memory_bytes=g.memory_gib * GIB,
        )
        for g in profile.resource_groups.all()
    )
    allowed = tuple(
        c.strip() for c in (profile.input_values.get("cluster_details") or "").split(",") if c.strip()
    )
    return PlacementRequest(groups=groups, allowed_clusters=allowed, flavor=profile.flavor, org_id=org_id)
