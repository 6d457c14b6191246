"""Permission-filtered reads of the inventory.

Operators see everything. Org admins and PaaS admins read what their orgs may use: every
datacenter and storage (names and types; never credentials), shared clusters and the clusters
dedicated to their orgs, and those clusters' nodes. Agents are operators' business.
"""

from django.db.models import Count, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce, Concat

from inventory.models import Agent, Cluster, Datacenter, MigChange, Node, Storage
from paas import authz
from paas.models import WorkerHeartbeat
from tenancy.models import Organization


def _admin_org_ids(user) -> QuerySet:
    return Organization.objects.filter(
        authz.permission_q(user, "administer_organization", Organization)
        | authz.permission_q(user, "manage_catalog", Organization)
    ).values("pk")


def _reads_inventory(user) -> bool:
    return authz.is_operator(user) or _admin_org_ids(user).exists()


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


def mig_change_list_for(user) -> QuerySet[MigChange]:
    base = MigChange.objects.select_related("cluster", "requested_by")
    return base if authz.is_operator(user) else base.none()
