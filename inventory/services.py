"""Every write of the inventory. Operators manage infrastructure; the checks and the node sync run
as tasks (routed to the agent that reaches the cluster) and record what they observe.

Over 600 lines, kept whole for now: datacenters, clusters, MIG changes, storage and agents share the
naming and kubeconfig helpers at the top (routing work to agents is ``inventory/routing.py``); the next
subject added splits it into a package by subject, as ``tenancy/services/`` was.
"""

import logging
import time
from collections.abc import Callable

from django.db import transaction
from django.utils import timezone
from django_q.models import Schedule
from django_q.tasks import async_task

from inventory import kube, kubeconfig_policy, mig
from inventory.guardrail_services import (
    clean_ingress_domain,
    cluster_guardrails_sync,
    require_guardrails_support,
)
from inventory.models import Agent, Cluster, Datacenter, DatacenterAgent, MigChange, Node, Storage
from inventory.prometheus import clean_prometheus_url
from inventory.routing import enqueue_for_cluster, queue_for_cluster
from paas import authz
from paas.audit import apply_changes, audit_log
from paas.errors import Conflict, ValidationFailed
from paas.validation import is_dns_label
from tenancy.models import Organization
from tenancy.validation import clean_slug

log = logging.getLogger(__name__)

GFD = kube.GFD


def _unique(model, field: str, value: str, exclude_pk=None) -> None:
    qs = model.objects.filter(**{field: value})
    if exclude_pk:
        qs = qs.exclude(pk=exclude_pk)
    if qs.exists():
        raise ValidationFailed(
            "Invalid input.", fields={field: f"A {model._meta.verbose_name} named {value!r} already exists."}
        )


# --- datacenters ------------------------------------------------------------------------------------

DATACENTER_FIELDS = (
    "display_name",
    "kind",
    "provider",
    "region",
    "kubernetes_version",
    "instance_types",
    "infrastructure_type",
    "operating_system",
    "gpu_types",
)


def _check_datacenter(data: dict) -> None:
    errors = {}
    kind = data.get("kind")
    if kind == Datacenter.Kind.PUBLIC_CLOUD:
        if not data.get("provider"):
            errors["provider"] = "A public cloud needs its provider."
        if not data.get("region"):
            errors["region"] = "A public cloud needs its region."
        if data.get("infrastructure_type"):
            errors["infrastructure_type"] = "Only data centers have an infrastructure type."
    elif kind == Datacenter.Kind.DATA_CENTER:
        if not data.get("infrastructure_type"):
            errors["infrastructure_type"] = "A data center needs its infrastructure type."
        for field in ("provider", "region"):
            if data.get(field):
                errors[field] = "Only public clouds have this."
    else:
        errors["kind"] = "Choose public_cloud or data_center."
    for field in ("instance_types", "gpu_types"):
        value = data.get(field, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            errors[field] = "A list of names."
    if errors:
        raise ValidationFailed("Invalid datacenter.", fields=errors)


@transaction.atomic
def datacenter_create(*, actor, name: str, credentials: str = "", **data) -> Datacenter:
    authz.require_operator(actor)
    name = clean_slug("name", name)
    _unique(Datacenter, "name", name)
    data.setdefault("display_name", name)
    _check_datacenter(data)
    datacenter = Datacenter.objects.create(name=name, credentials=credentials or "", **data)
    audit_log(
        actor=actor,
        action="datacenter.create",
        target=datacenter,
        details={**{k: v for k, v in data.items()}, "credentials": "set" if credentials else "none"},
    )
    return datacenter


@transaction.atomic
def datacenter_update(*, actor, datacenter: Datacenter, credentials: str | None = None, **data) -> Datacenter:
    """Change fields; ``credentials`` None keeps them, "" clears them, text replaces them."""
    authz.require_operator(actor)
    unknown = set(data) - set(DATACENTER_FIELDS)
    if unknown:
        raise ValidationFailed("Unknown fields.", fields={k: "Unknown field." for k in unknown})
    merged = {field: getattr(datacenter, field) for field in DATACENTER_FIELDS} | data
    _check_datacenter(merged)
    changes = apply_changes(datacenter, data)
    if credentials is not None:
        changes["credentials"] = "replaced" if credentials else "cleared"
        datacenter.credentials = credentials
    if changes:
        datacenter.save()
        audit_log(actor=actor, action="datacenter.update", target=datacenter, details={"changes": changes})
    return datacenter


@transaction.atomic
def datacenter_delete(*, actor, datacenter: Datacenter) -> None:
    authz.require_operator(actor)
    if datacenter.clusters.exists() or datacenter.storages.exists() or datacenter.agents.exists():
        raise Conflict("The datacenter still has clusters, storage or agents; move or delete them first.")
    audit_log(actor=actor, action="datacenter.delete", target=datacenter, details={"name": datacenter.name})
    datacenter.delete()


# --- clusters ---------------------------------------------------------------------------------------


def _resolve_kubeconfig(kubeconfig: str, server: str, ca_data: str, token: str, name: str) -> str:
    if kubeconfig and (server or token):
        raise ValidationFailed(
            "Give a kubeconfig, or a server with its CA and token, not both.",
            fields={"kubeconfig": "Give one way of reaching the cluster."},
        )
    if not kubeconfig:
        missing = {
            f: "Required without a kubeconfig." for f, v in (("server", server), ("token", token)) if not v
        }
        if missing:
            raise ValidationFailed("The cluster needs a kubeconfig, or a server and a token.", fields=missing)
        kubeconfig = kube.kubeconfig_from_token(server=server, ca_data_b64=ca_data, token=token, name=name)
    # What the kubeconfig may carry and where its server may be: inventory/kubeconfig_policy.py and the
    # outbound-address policy (paas/outbound.py). Only the current context is stored.
    field = "server" if server else "kubeconfig"
    try:
        data = kube.parse_kubeconfig(kubeconfig)
        return kubeconfig_policy.vetted(kubeconfig, data, field=field)
    except (kube.KubeconfigInvalid, kubeconfig_policy.KubeconfigRefused) as exc:
        raise ValidationFailed("Invalid kubeconfig.", fields={field: str(exc)}) from exc


def _check_tenancy(tenancy: str, dedicated_org: Organization | None) -> None:
    if tenancy == Cluster.Tenancy.DEDICATED and dedicated_org is None:
        raise ValidationFailed(
            "Invalid tenancy.", fields={"dedicated_org": "A dedicated cluster needs its org."}
        )
    if tenancy == Cluster.Tenancy.SHARED and dedicated_org is not None:
        raise ValidationFailed("Invalid tenancy.", fields={"dedicated_org": "A shared cluster has no org."})


@transaction.atomic
def cluster_register(
    *,
    actor,
    name: str,
    display_name: str = "",
    datacenter: Datacenter | None = None,
    kubeconfig: str = "",
    server: str = "",
    ca_data: str = "",
    token: str = "",
    labels: dict | None = None,
    tenancy: str = Cluster.Tenancy.SHARED,
    dedicated_org: Organization | None = None,
    ingress_domain: str = "",
    ingress_class: str = "",
    ingress_tls: bool = False,
    prometheus_url: str = "",
) -> Cluster:
    """Register a cluster; its reachability check and node sync are enqueued for its agent.

    A cluster that answers with a Kubernetes version that cannot enforce the guardrails (admission
    policies, :mod:`inventory.guardrails`) is refused; one that does not answer yet is registered
    and checked by the refresh (which installs the guardrails)."""
    authz.require_operator(actor)
    name = clean_slug("name", name)
    _unique(Cluster, "name", name)
    _check_tenancy(tenancy, dedicated_org)
    prometheus_url = clean_prometheus_url(prometheus_url)
    kubeconfig = _resolve_kubeconfig(kubeconfig, server, ca_data, token, name)
    require_guardrails_support(kubeconfig, field="kubeconfig" if not server else "server")
    cluster = Cluster.objects.create(
        name=name,
        display_name=display_name or name,
        datacenter=datacenter,
        kubeconfig=kubeconfig,
        server=kube.kubeconfig_server(kubeconfig),
        labels=labels or {},
        tenancy=tenancy,
        dedicated_org=dedicated_org,
        ingress_domain=clean_ingress_domain(ingress_domain),
        ingress_class=clean_ingress_class(ingress_class),
        ingress_tls=bool(ingress_tls),
        prometheus_url=prometheus_url,
    )
    audit_log(
        actor=actor,
        action="cluster.register",
        target=cluster,
        org=dedicated_org,
        details={
            "server": cluster.server,
            "datacenter": datacenter.name if datacenter else None,
            "tenancy": tenancy,
            "labels": cluster.labels,
            "prometheus_url": prometheus_url,
        },
    )
    enqueue_for_cluster(cluster, "inventory.tasks.cluster_refresh", cluster.pk)
    return cluster


def clean_ingress_class(name: str) -> str:
    """An IngressClass name (a DNS subdomain; empty: the cluster's default class). It is a platform
    setting injected into every service render, never a template input."""
    name = (name or "").strip()
    if name and (len(name) > 253 or not all(is_dns_label(part) for part in name.split("."))):
        raise ValidationFailed(
            "Invalid ingress class.",
            fields={"ingress_class": "An IngressClass name: lowercase letters, digits, '-' and '.'."},
        )
    return name


@transaction.atomic
def cluster_update(*, actor, cluster: Cluster, kubeconfig: str | None = None, **data) -> Cluster:
    """Change a cluster; a new kubeconfig replaces the stored one (write-only) and triggers a check."""
    authz.require_operator(actor)
    allowed = {
        "display_name",
        "datacenter",
        "labels",
        "tenancy",
        "dedicated_org",
        "ingress_domain",
        "ingress_class",
        "ingress_tls",
        "prometheus_url",
    }
    unknown = set(data) - allowed
    if unknown:
        raise ValidationFailed("Unknown fields.", fields={k: "Unknown field." for k in unknown})
    _check_tenancy(data.get("tenancy", cluster.tenancy), data.get("dedicated_org", cluster.dedicated_org))
    if "ingress_domain" in data:
        data["ingress_domain"] = clean_ingress_domain(data["ingress_domain"])
    if "ingress_class" in data:
        data["ingress_class"] = clean_ingress_class(data["ingress_class"])
    if "ingress_tls" in data:
        data["ingress_tls"] = bool(data["ingress_tls"])
    if "prometheus_url" in data:
        data["prometheus_url"] = clean_prometheus_url(data["prometheus_url"])
    changes = apply_changes(cluster, data)
    if kubeconfig:
        kubeconfig = _resolve_kubeconfig(kubeconfig, "", "", "", cluster.name)
        require_guardrails_support(kubeconfig, field="kubeconfig")
        cluster.kubeconfig = kubeconfig
        cluster.server = kube.kubeconfig_server(kubeconfig)
        changes["kubeconfig"] = "replaced"
    if changes:
        cluster.save()
        audit_log(actor=actor, action="cluster.update", target=cluster, details={"changes": changes})
        enqueue_for_cluster(cluster, "inventory.tasks.cluster_refresh", cluster.pk)
    return cluster


@transaction.atomic
def cluster_delete(*, actor, cluster: Cluster) -> None:
    authz.require_operator(actor)
    audit_log(actor=actor, action="cluster.delete", target=cluster, details={"name": cluster.name})
    cluster.delete()


@transaction.atomic
def cluster_refresh_request(*, actor, cluster: Cluster) -> Cluster:
    """An operator asks for a reachability check and node sync now (the studio's refresh action)."""
    authz.require_operator(actor)
    audit_log(actor=actor, action="cluster.refresh_request", target=cluster, details={"name": cluster.name})
    enqueue_for_cluster(cluster, "inventory.tasks.cluster_refresh", cluster.pk)
    return cluster


def cluster_check(*, cluster_id: int) -> Cluster:
    """Probe the API server; record version, health and the sandbox runtime. Audits status flips."""
    cluster = Cluster.objects.get(pk=cluster_id)
    now = timezone.now()
    try:
        result = kube.probe(cluster.kubeconfig.reveal())
    except kube.KubeUnreachable as exc:
        status, message, fields = Cluster.Status.UNREACHABLE, str(exc), {}
    else:
        status = Cluster.Status.REACHABLE if result.healthy else Cluster.Status.DEGRADED
        message = "" if result.healthy else result.health_detail
        fields = {
            "kubernetes_version": result.version,
            "offers_sandbox_runtime": "kata" in result.runtime_classes,
            "last_seen_at": now,
        }
    with transaction.atomic():
        cluster = Cluster.objects.select_for_update().get(pk=cluster_id)
        previous = cluster.status
        Cluster.objects.filter(pk=cluster_id).update(
            status=status, status_message=message, last_checked_at=now, **fields
        )
        cluster.refresh_from_db()
        if previous != status:
            audit_log(
                actor=None,
                action="cluster.status",
                target=cluster,
                org=cluster.dedicated_org,
                details={"from": previous, "to": status, "message": message[:300]},
            )
    if status != Cluster.Status.UNREACHABLE:
        cluster_guardrails_sync(cluster_id=cluster_id)
        cluster.refresh_from_db()
    return cluster


def cluster_sync_nodes(*, cluster_id: int) -> int:
    """Mirror the cluster's nodes (observed data: no audit event). Returns the number of nodes.

    An unreachable cluster is marked so (through :func:`cluster_check`) and its nodes are kept as
    last seen, marked unschedulable, so placement avoids them.
    """
    cluster = Cluster.objects.get(pk=cluster_id)
    try:
        facts = kube.list_nodes(cluster.kubeconfig.reveal())
    except kube.KubeUnreachable:
        Node.objects.filter(cluster=cluster).update(schedulable=False, ready=False)
        cluster_check(cluster_id=cluster_id)
        return 0
    now = timezone.now()
    with transaction.atomic():
        existing = {node.name: node for node in Node.objects.select_for_update().filter(cluster=cluster)}
        to_create, to_update = [], []
        for fact in facts:
            values = {field: getattr(fact, field) for field in NODE_SYNC_FIELDS}
            node = existing.pop(fact.name, None)
            if node is None:
                to_create.append(Node(cluster=cluster, name=fact.name, synced_at=now, **values))
            elif any(getattr(node, field) != value for field, value in values.items()):
                for field, value in values.items():
                    setattr(node, field, value)
                to_update.append(node)
        Node.objects.bulk_create(to_create, batch_size=500)
        if to_update:  # only nodes whose observed state changed are rewritten
            Node.objects.bulk_update(to_update, NODE_SYNC_FIELDS, batch_size=500)
        if existing:
            Node.objects.filter(pk__in=[node.pk for node in existing.values()]).delete()
        Node.objects.filter(cluster=cluster).update(synced_at=now)
        Cluster.objects.filter(pk=cluster_id).update(last_seen_at=now)
    return len(facts)


NODE_SYNC_FIELDS = (
    "gpu_product",
    "gpu_count",
    "gpu_memory_mib",
    "mig_capable",
    "mig_strategy",
    "mig_config",
    "mig_config_state",
    "allocatable_cpu_millis",
    "allocatable_memory_bytes",
    "allocatable_gpus",
    "allocatable_mig",
    "ready",
    "schedulable",
    "labels",
)


def inventory_sync_all(*, enqueue: Callable = async_task) -> int:
    """Scheduled: refresh every cluster through its own agent's workers. Returns how many."""
    count = 0
    for cluster in Cluster.objects.select_related("datacenter").order_by("name"):
        enqueue("inventory.tasks.cluster_refresh", cluster.pk, cluster=queue_for_cluster(cluster))
        count += 1
    return count


# --- GPU partitioning -------------------------------------------------------------------------------


@transaction.atomic
def mig_change_request(
    *, actor, cluster: Cluster, config: str, node_names: list[str] | None = None, node_selector: str = ""
) -> MigChange:
    """Ask for a MIG configuration on some nodes (by name, or by a label selector over the synced
    labels); refuses a configuration that is not valid for every chosen node's GPU model."""
    authz.require_operator(actor)
    if bool(node_names) == bool(node_selector):
        raise ValidationFailed(
            "Choose nodes by name or by label selector.",
            fields={"node_names": "Give node names or a label selector (one of them)."},
        )
    nodes = list(Node.objects.filter(cluster=cluster).order_by("name"))
    if node_names:
        chosen = [n for n in nodes if n.name in set(node_names)]
        missing = sorted(set(node_names) - {n.name for n in chosen})
        if missing:
            raise ValidationFailed(
                "Unknown nodes.", fields={"node_names": f"Not in {cluster.name}: {', '.join(missing)}"}
            )
    else:
        chosen = [n for n in nodes if _selector_matches(node_selector, n.labels)]
        if not chosen:
            raise ValidationFailed(
                "No node matches.", fields={"node_selector": f"No node of {cluster.name} matches."}
            )
    problems = []
    for node in chosen:
        valid = mig.valid_configs(node.gpu_product)
        if not valid or not node.mig_capable:
            problems.append(f"{node.name} ({node.gpu_product or 'no GPU'}) does not support MIG")
        elif config not in valid:
            problems.append(
                f"{config!r} is not valid for {node.name} ({node.gpu_product}); choose one of: "
                f"{', '.join(valid)}"
            )
    if problems:
        raise ValidationFailed("Invalid MIG configuration.", fields={"config": problems})
    chosen_names = {n.name for n in chosen}
    pending = MigChange.objects.filter(cluster=cluster, state=MigChange.State.PENDING)
    if any(chosen_names & set(change.node_names) for change in pending):
        raise Conflict("A partitioning change is still being applied to some of these nodes.")
    change = MigChange.objects.create(
        cluster=cluster,
        node_names=[n.name for n in chosen],
        node_selector=node_selector,
        config=config,
        previous_configs={n.name: n.mig_config for n in chosen},
        requested_by=actor,
    )
    audit_log(
        actor=actor,
        action="mig.request",
        target=change,
        details={"cluster": cluster.name, "nodes": change.node_names, "config": config},
    )
    enqueue_for_cluster(cluster, "inventory.tasks.mig_change_apply", change.pk)
    return change


def _selector_matches(selector: str, labels: dict) -> bool:
    """Equality-based label selectors (``a=b,c!=d,e``), as kubectl accepts them."""
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = (s.strip() for s in term.split("!=", 1))
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = (s.strip() for s in term.replace("==", "=").split("=", 1))
            if labels.get(key) != value:
                return False
        elif term not in labels:
            return False
    return True


def mig_change_apply(
    *, change_id: int, poll_seconds: float = 2.0, deadline_seconds: float = 540
) -> MigChange:
    """Worker side: set the config label (and the state to ``pending``) on the nodes, then follow
    ``nvidia.com/mig.config.state`` until every node reports success, one fails, or the deadline."""
    change = MigChange.objects.select_related("cluster").get(pk=change_id)
    if change.state != MigChange.State.PENDING:
        return change
    kubeconfig = change.cluster.kubeconfig.reveal()
    try:
        kube.label_nodes(
            kubeconfig,
            change.node_names,
            {f"{GFD}mig.config": change.config, f"{GFD}mig.config.state": "pending"},
        )
    except kube.KubeUnreachable as exc:
        return _mig_finish(change, MigChange.State.FAILED, f"Could not label the nodes: {exc}")
    deadline = time.monotonic() + deadline_seconds
    while True:
        try:
            states = {
                n.name: n.mig_config_state for n in kube.list_nodes(kubeconfig) if n.name in change.node_names
            }
        except kube.KubeUnreachable as exc:
            states, error = {}, str(exc)
        else:
            error = ""
        failed = sorted(name for name, state in states.items() if state == "failed")
        if failed:
            return _mig_finish(
                change, MigChange.State.FAILED, f"The MIG manager reported failure on {', '.join(failed)}."
            )
        if states and all(states.get(name) == "success" for name in change.node_names):
            cluster_sync_nodes(cluster_id=change.cluster_id)
            return _mig_finish(change, MigChange.State.SUCCESS, "")
        if time.monotonic() > deadline:
            waiting = sorted(n for n in change.node_names if states.get(n) != "success")
            detail = f" ({error})" if error else ""
            return _mig_finish(
                change,
                MigChange.State.FAILED,
                f"Timed out waiting for the MIG manager on {', '.join(waiting)}{detail}.",
            )
        time.sleep(poll_seconds)


@transaction.atomic
def _mig_finish(change: MigChange, state: str, message: str) -> MigChange:
    change.state, change.message, change.finished_at = state, message, timezone.now()
    change.save(update_fields=["state", "message", "finished_at"])
    audit_log(
        actor=None,
        action=f"mig.{state}",
        target=change,
        details={
            "cluster": change.cluster.name,
            "nodes": change.node_names,
            "config": change.config,
            "message": message,
        },
    )
    return change


# --- storage ----------------------------------------------------------------------------------------


def _check_storage(kind: str, storage_class: str, bucket_endpoint: str, bucket_name: str) -> None:
    errors = {}
    if kind == Storage.Kind.HIGH_SPEED:
        if not storage_class:
            errors["storage_class"] = "High-speed storage needs its StorageClass."
        if bucket_endpoint or bucket_name:
            errors["bucket_name"] = "Only object storage has a bucket."
    elif kind == Storage.Kind.OBJECT:
        if not bucket_name:
            errors["bucket_name"] = "Object storage needs its bucket."
        if not bucket_endpoint:
            errors["bucket_endpoint"] = "Object storage needs its endpoint."
        if storage_class:
            errors["storage_class"] = "Only high-speed storage has a StorageClass."
    else:
        errors["kind"] = "Choose high-speed-storage or object-storage."
    if errors:
        raise ValidationFailed("Invalid storage.", fields=errors)


@transaction.atomic
def storage_create(
    *,
    actor,
    name: str,
    kind: str,
    datacenter: Datacenter | None = None,
    storage_class: str = "",
    bucket_endpoint: str = "",
    bucket_name: str = "",
    credentials: str = "",
) -> Storage:
    authz.require_operator(actor)
    name = clean_slug("name", name)
    _unique(Storage, "name", name)
    _check_storage(kind, storage_class, bucket_endpoint, bucket_name)
    storage = Storage.objects.create(
        name=name,
        kind=kind,
        datacenter=datacenter,
        storage_class=storage_class,
        bucket_endpoint=bucket_endpoint,
        bucket_name=bucket_name,
        credentials=credentials or "",
    )
    audit_log(
        actor=actor,
        action="storage.create",
        target=storage,
        details={"kind": kind, "datacenter": datacenter.name if datacenter else None},
    )
    return storage


@transaction.atomic
def storage_update(*, actor, storage: Storage, credentials: str | None = None, **data) -> Storage:
    authz.require_operator(actor)
    allowed = {"kind", "datacenter", "storage_class", "bucket_endpoint", "bucket_name"}
    unknown = set(data) - allowed
    if unknown:
        raise ValidationFailed("Unknown fields.", fields={k: "Unknown field." for k in unknown})
    merged = {f: getattr(storage, f) for f in ("kind", "storage_class", "bucket_endpoint", "bucket_name")}
    merged |= {k: v for k, v in data.items() if k != "datacenter"}
    _check_storage(**merged)
    changes = apply_changes(storage, data)
    if credentials is not None:
        storage.credentials = credentials
        changes["credentials"] = "replaced" if credentials else "cleared"
    if changes:
        storage.save()
        audit_log(actor=actor, action="storage.update", target=storage, details={"changes": changes})
    return storage


@transaction.atomic
def storage_delete(*, actor, storage: Storage) -> None:
    authz.require_operator(actor)
    audit_log(actor=actor, action="storage.delete", target=storage, details={"name": storage.name})
    storage.delete()


# --- agents -----------------------------------------------------------------------------------------


@transaction.atomic
def agent_create(*, actor, name: str, datacenter: Datacenter | None = None) -> Agent:
    authz.require_operator(actor)
    name = clean_slug("name", name)
    _unique(Agent, "name", name)
    agent = Agent.objects.create(name=name, datacenter=datacenter)
    Schedule.objects.create(
        name=f"agent heartbeat: {agent.name}",
        func="paas.tasks.worker_heartbeat",
        cluster=agent.queue,
        schedule_type=Schedule.MINUTES,
        minutes=1,
        repeats=-1,
    )
    audit_log(
        actor=actor,
        action="agent.create",
        target=agent,
        details={"datacenter": datacenter.name if datacenter else None, "queue": agent.queue},
    )
    return agent


@transaction.atomic
def agent_delete(*, actor, agent: Agent) -> None:
    authz.require_operator(actor)
    if agent.mappings.exists():
        raise Conflict("The agent serves datacenters in the global settings; remap them first.")
    audit_log(actor=actor, action="agent.delete", target=agent, details={"name": agent.name})
    Schedule.objects.filter(cluster=agent.queue).delete()
    agent.delete()


@transaction.atomic
def datacenter_agent_set(*, actor, datacenter: Datacenter, agent: Agent | None) -> DatacenterAgent | None:
    """Global settings: route the datacenter's work to ``agent`` (None: back to global agents)."""
    authz.require_operator(actor)
    if agent is not None and agent.datacenter_id not in (None, datacenter.pk):
        raise ValidationFailed(
            "That agent serves another datacenter.",
            fields={"agent": f"{agent.name} serves {agent.datacenter}."},
        )
    current = DatacenterAgent.objects.filter(datacenter=datacenter).first()
    before = current.agent.name if current else None
    if agent is None:
        if current:
            current.delete()
        mapping = None
    else:
        mapping, _ = DatacenterAgent.objects.update_or_create(
            datacenter=datacenter, defaults={"agent": agent}
        )
    if before != (agent.name if agent else None):
        audit_log(
            actor=actor,
            action="datacenter.agent",
            target=datacenter,
            details={"from": before, "to": agent.name if agent else None},
        )
    return mapping
