"""Permission-filtered reads of the inventory.

Operators see everything. Org admins and PaaS admins read what their orgs may use: every
datacenter and storage (names and types; never credentials), shared clusters and the clusters
dedicated to their orgs, and those clusters' nodes. Agents are operators' business.
"""

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from django.db.models import Count, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce, Concat

from inventory.matchmaker import (
    ClusterCapacity,
    NodeCapacity,
    Placement,
    PlacementRequest,
    normalize_mig_profile,
    place,
)
from inventory.models import Agent, Cluster, Datacenter, DatacenterAgent, MigChange, Node, Storage
from paas import authz
from paas.models import WorkerHeartbeat
from tenancy.models import Organization, Project


def _admin_org_ids(user) -> QuerySet:
    return Organization.objects.filter(
        authz.permission_q(user, "administer_organization", Organization)
        | authz.permission_q(user, "manage_catalog", Organization)
    ).values("pk")


def _reads_inventory(user) -> bool:
    # A PaaS admin held on one project only also picks the datacenter and storage of its profiles.
    return authz.is_operator(user) or authz.remembered(
        user,
        "reads_inventory",
        lambda: (
            _admin_org_ids(user).exists()
            or authz.filter_for(user, "manage_catalog", Project.objects.all()).exists()
        ),
    )


def datacenter_list_for(user) -> QuerySet[Datacenter]:
    return Datacenter.objects.all() if _reads_inventory(user) else Datacenter.objects.none()


def cluster_list_for(user) -> QuerySet[Cluster]:
    base = (
        Cluster.objects.select_related("datacenter", "dedicated_org")
        .annotate(node_count=Count("nodes"), gpu_total=Coalesce(Sum("nodes__gpu_count"), 0))
        .order_by("name")
    )  # GROUP BY queries do not use Meta.ordering
    if authz.is_operator(user):
        return base
    if not authz.is_active_user(user):
        return base.none()
    orgs = _admin_org_ids(user)
    if not orgs.exists():
        return base.none()
    return base.filter(Q(tenancy=Cluster.Tenancy.SHARED) | Q(dedicated_org__in=orgs))


def node_list_for(user) -> QuerySet[Node]:
    return Node.objects.filter(cluster__in=cluster_list_for(user)).select_related("cluster")


def storage_list_for(user) -> QuerySet[Storage]:
    base = Storage.objects.select_related("datacenter")
    return base if _reads_inventory(user) else base.none()


def storage_for_datacenter(queryset: QuerySet[Storage], datacenter: Datacenter | None) -> QuerySet[Storage]:
    """The reference's rule: no datacenter gives open storage only; a datacenter gives its own
    storage plus open storage."""
    if datacenter is None:
        return queryset.filter(datacenter__isnull=True)
    return queryset.filter(Q(datacenter__isnull=True) | Q(datacenter=datacenter))


def agent_list_for(user) -> QuerySet[Agent]:
    if not authz.is_operator(user):
        return Agent.objects.none()
    heartbeat = WorkerHeartbeat.objects.filter(cluster=Concat(Value("agent-"), OuterRef("name"))).values(
        "seen_at"
    )
    return Agent.objects.select_related("datacenter").annotate(last_heartbeat_at=Subquery(heartbeat[:1]))


def datacenter_agent_list_for(user) -> QuerySet[DatacenterAgent]:
    """Which agent serves each datacenter: a global setting, operators only (API and studio)."""
    if not authz.is_operator(user):
        return DatacenterAgent.objects.none()
    return DatacenterAgent.objects.select_related("datacenter", "agent")


def mig_change_list_for(user) -> QuerySet[MigChange]:
    base = MigChange.objects.select_related("cluster", "requested_by")
    return base if authz.is_operator(user) else base.none()


def mig_parent_models(mig_profiles: list[str], *, cluster_id: int | None = None) -> dict[str, list[str]]:
    """For each MIG profile, the GPU models (``nvidia.com/gpu.product``) of the nodes that offer slices
    of it: on one cluster (where an instance was placed) or on any. Quotas count a slice against the
    per-model limits of these models. One query."""
    wanted = {normalize_mig_profile(p) for p in mig_profiles}
    nodes = Node.objects.exclude(allocatable_mig={}).exclude(gpu_product="")
    if cluster_id is not None:
        nodes = nodes.filter(cluster_id=cluster_id)
    parents: dict[str, set[str]] = defaultdict(set)
    for product, allocatable in nodes.order_by().values_list("gpu_product", "allocatable_mig"):
        for resource, count in (allocatable or {}).items():
            profile = normalize_mig_profile(resource)
            if profile in wanted and count:
                parents[profile].add(product)
    return {profile: sorted(models) for profile, models in parents.items()}


@dataclass(frozen=True)
class Reservation:
    """What the platform has already placed on one cluster (instances' resource groups)."""

    gpus: Mapping[str, int] = field(default_factory=dict)  # per gpu_product
    mig: Mapping[str, int] = field(default_factory=dict)  # per MIG profile
    cpu_millis: int = 0
    memory_bytes: int = 0


def cluster_capacities(*, reserved: Mapping[int, Reservation] | None = None) -> list[ClusterCapacity]:
    """Every cluster as the matchmaker sees it: allocatable of its synced nodes minus ``reserved``.

    Reservations are per cluster (the platform places namespaces on clusters, the scheduler places
    pods on nodes), so they reduce the cluster's totals; the largest free chunk on one node is capped
    at what remains of the product. Two queries, whatever the number of clusters and nodes.
    """
    reserved = reserved or {}
    nodes_by_cluster: dict[int, list[NodeCapacity]] = defaultdict(list)
    fields = (
        "cluster_id",
        "name",
        "gpu_product",
        "gpu_count",
        "allocatable_gpus",
        "allocatable_mig",
        "allocatable_cpu_millis",
        "allocatable_memory_bytes",
        "schedulable",
    )
    for row in Node.objects.order_by().values_list(*fields):
        cluster_id, name, product, count, gpus, mig_free, cpu, memory, schedulable = row
        nodes_by_cluster[cluster_id].append(
            NodeCapacity(
                name=name,
                gpu_product=product,
                gpus_free=gpus,
                mig_free=mig_free or {},
                cpu_millis_free=cpu,
                memory_bytes_free=memory,
                schedulable=schedulable,
                gpus_total=count,
            )
        )
    capacities = []
    clusters = Cluster.objects.order_by("name").values_list(
        "pk", "name", "datacenter__name", "status", "dedicated_org_id"
    )
    for pk, name, datacenter, status, dedicated_org_id in clusters:
        capacity = ClusterCapacity.from_nodes(
            name,
            nodes_by_cluster.get(pk, []),
            datacenter=datacenter,
            dedicated_org_id=dedicated_org_id,
            reachable=status in (Cluster.Status.REACHABLE, Cluster.Status.DEGRADED),
        )
        if pk in reserved:
            capacity = _minus(capacity, reserved[pk])
        capacities.append(capacity)
    return capacities


def _minus(capacity: ClusterCapacity, used: Reservation) -> ClusterCapacity:
    gpus = {p: max(n - used.gpus.get(p, 0), 0) for p, n in capacity.gpus_free.items()}
    mig = {p: max(n - used.mig.get(p, 0), 0) for p, n in capacity.mig_free.items()}
    largest = {p: min(n, gpus.get(p, 0)) for p, n in capacity.largest_node_gpus_free.items()}
    return replace(
        capacity,
        gpus_free=gpus,
        mig_free=mig,
        largest_node_gpus_free=largest,
        cpu_millis_free=max(capacity.cpu_millis_free - used.cpu_millis, 0),
        memory_bytes_free=max(capacity.memory_bytes_free - used.memory_bytes, 0),
    )


def placement_for(
    request: PlacementRequest, *, reserved: Mapping[int, Reservation] | None = None
) -> Placement:
    """Where the matchmaker would place ``request`` now, with its explanation."""
    return place(request, cluster_capacities(reserved=reserved))
