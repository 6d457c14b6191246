"""The isolation baseline stays the engine's on live instances (worker side).

:func:`apply_baseline` applies an instance's baseline objects under their own field manager
(:data:`instances.baseline.FIELD_MANAGER`, conflicts forced) and verifies what the API server
stored; the deployer calls it before the template's objects (so the quota and policies are in force
when the first pod is admitted) and again after them (so nothing a template rendered outlives it).

:func:`baseline_repair` is the periodic check of one cluster (enqueued per cluster by
``instances.deployer.reconcile``): one list call per baseline kind for the whole cluster, every ready
instance's desired baseline compared with what is live, and only the instances that drifted are
repaired: missing objects are applied again, changed ones replaced whole (a PUT drops fields any
other manager added, e.g. an ``ingress`` rule slipped into the default-deny policy). The per-user
ServiceAccounts of people who no longer have access (``instances.access.stale_accounts``) are deleted
too, should the access task queued when they lost it never have run. Each repaired instance gets an
audit event naming what was repaired (``revoked_accounts``: the ServiceAccounts deleted).
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction

from instances import access, baseline
from instances.models import ComputeInstance
from instances.namespace import COLLABORATOR_USERS, baseline_objects
from instances.states import State
from inventory import kube
from inventory.models import Cluster
from paas.audit import audit_log

log = logging.getLogger(__name__)

#: Kinds whose content (everything but metadata) must equal the desired one exactly; for the rest
#: (the Namespace, the sandbox binding) the desired content must be contained in the live one, as
#: the API server defaults fields there.
EXACT_KINDS = frozenset(
    {"ResourceQuota", "LimitRange", "NetworkPolicy", "ServiceAccount", "Role", "RoleBinding"}
)
QUANTITY_KINDS = frozenset({"ResourceQuota", "LimitRange"})


def _key(obj: dict) -> tuple[str, str, str]:
    metadata = obj["metadata"]
    return (obj["kind"], metadata.get("namespace") or "", metadata["name"])


def _label(obj: dict) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def _normalized(value: Any, quantities: bool) -> Any:
    if isinstance(value, dict):
        return {k: _normalized(v, quantities) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_normalized(v, quantities) for v in value]
    if quantities and isinstance(value, (str, int)) and not isinstance(value, bool):
        return kube.quantity(value)
    return value


def _contained(desired: Any, live: Any) -> bool:
    if isinstance(desired, dict):
        return isinstance(live, dict) and all(_contained(v, live.get(k)) for k, v in desired.items())
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(desired) == len(live)
            and all(_contained(d, v) for d, v in zip(desired, live, strict=True))
        )
    return desired == live


def difference(desired: dict, live: dict | None) -> str | None:
    """How ``live`` differs from the ``desired`` baseline object, in a few words; None if it does not."""
    if live is None:
        return "missing"
    metadata = live.get("metadata") or {}
    if metadata.get("deletionTimestamp"):
        return "being deleted"
    live_labels = metadata.get("labels") or {}
    changed_labels = sorted(
        k for k, v in desired["metadata"].get("labels", {}).items() if live_labels.get(k) != v
    )
    content = [key for key in desired if key not in ("apiVersion", "kind", "metadata")]
    if desired["kind"] in EXACT_KINDS:
        quantities = desired["kind"] in QUANTITY_KINDS
        content += [key for key in live if key not in ("apiVersion", "kind", "metadata", "status", *content)]
        changed = [
            key
            for key in dict.fromkeys(content)
            if _normalized(desired.get(key), quantities) != _normalized(live.get(key), quantities)
        ]
        if desired["kind"] == "ResourceQuota" and "spec" in changed:
            changed = _quota_changes(desired["spec"], live.get("spec") or {})
    else:
        changed = [key for key in content if not _contained(desired[key], live.get(key))]
    changed += [f"label {key}" for key in changed_labels]
    return f"changed ({', '.join(changed)})" if changed else None


def _quota_changes(desired: dict, live: dict) -> list[str]:
    want, have = desired.get("hard") or {}, live.get("hard") or {}
    changes = [
        f"spec.hard[{key}] {'removed' if key not in have else 'changed'}"
        for key, value in want.items()
        if key not in have or _normalized(value, True) != _normalized(have[key], True)
    ]
    changes += [f"spec.hard[{key}] added" for key in have if key not in want]
    changes += [f"spec.{key} added" for key in live if key != "hard"]
    return changes or ["spec"]


def _release_old_manager(kubeconfig: str, applied: list[dict]) -> list[dict]:
    """Objects applied before the baseline had a field manager of its own: let the old one go, so
    that fields the baseline drops later (a removed collaborator) really disappear."""
    stale = [
        {
            "apiVersion": obj["apiVersion"],
            "kind": obj["kind"],
            "metadata": {k: v for k, v in obj["metadata"].items() if k in ("name", "namespace")},
        }
        for obj in applied
        if any(
            entry.get("manager") == kube.FIELD_MANAGER and entry.get("operation") == "Apply"
            for entry in obj["metadata"].get("managedFields") or []
        )
    ]
    # An empty configuration: the old manager owns nothing any more. Returns the objects as stored then.
    return kube.apply(kubeconfig, stale) if stale else []


def apply_baseline(kubeconfig: str, objects: list[dict]) -> list[str]:
    """Apply ``objects`` (cluster-scoped and namespaced, each declaring where it goes) under the
    baseline's field manager; replace any that still differ afterwards. Returns what was replaced."""
    applied = kube.apply(kubeconfig, objects, field_manager=baseline.FIELD_MANAGER)
    stored = {_key(obj): obj for obj in applied}
    stored |= {_key(obj): obj for obj in _release_old_manager(kubeconfig, applied)}
    drifted = [obj for obj in objects if difference(obj, stored.get(_key(obj)))]
    return _replace(kubeconfig, drifted)


def _replace(kubeconfig: str, objects: list[dict]) -> list[str]:
    replaceable = [obj for obj in objects if obj["kind"] in EXACT_KINDS]
    if replaceable:
        kube.apply(kubeconfig, replaceable, field_manager=baseline.FIELD_MANAGER, replace=True)
    return [_label(obj) for obj in replaceable]


def baseline_repair(*, cluster_id: int) -> dict[int, list[str]]:
    """Check the baseline of every ready instance on the cluster; repair and audit the ones that drifted.

    Returns ``{instance id: ["Kind/name: what differed", ...]}`` for the repaired instances. An
    unreachable cluster is skipped (the next reconcile tries again); an instance whose namespace is
    gone or terminating is reported but not repaired (recreating an empty namespace helps no one).
    """
    cluster = Cluster.objects.get(pk=cluster_id)
    instances = list(
        ComputeInstance.objects.filter(cluster=cluster, state=State.READY)
        .exclude(namespace="")
        .select_related("cluster", "org", "project", "owner")
        .prefetch_related(COLLABORATOR_USERS)  # the baselines' users: one query, not one each
    )
    if not instances or cluster.status == Cluster.Status.UNREACHABLE:
        return {}
    kubeconfig = cluster.kubeconfig.reveal()
    desired = {instance.pk: baseline_objects(instance, instance.namespace) for instance in instances}
    kinds = sorted(
        {(obj["apiVersion"], obj["kind"]) for objects in desired.values() for obj in objects}
        | {("v1", "ServiceAccount")}  # listed even when no one may have one: stale ones must go
    )
    try:
        live = kube.list_objects(kubeconfig, kinds)
    except kube.KubeUnreachable as exc:
        log.warning("baseline check of cluster %s skipped: %s", cluster.name, exc)
        return {}
    accounts: dict[str, list[dict]] = {}
    for (kind, namespace, _name), obj in live.items():
        if kind == "ServiceAccount":
            accounts.setdefault(namespace, []).append(obj)
    report: dict[int, list[str]] = {}
    for instance in instances:
        differences = {_key(obj): difference(obj, live.get(_key(obj))) for obj in desired[instance.pk]}
        drifted = [obj for obj in desired[instance.pk] if differences[_key(obj)]]
        # People who lost their access while the access task could not run (the agent was down, the
        # task was lost): their ServiceAccounts, and with them every token issued, go now.
        stale = access.stale_accounts(instance, accounts.get(instance.namespace, []))
        if not drifted and not stale:
            continue
        found = [f"{_label(obj)}: {differences[_key(obj)]}" for obj in drifted]
        found += [f"ServiceAccount/{name}: no longer has access (deleted)" for name in stale]
        if differences[("Namespace", "", instance.namespace)]:
            log.warning(
                "instance %s: namespace %s is gone or changed: %s", instance.pk, instance.namespace, found
            )
            if differences[("Namespace", "", instance.namespace)] in ("missing", "being deleted"):
                report[instance.pk] = [*found, "not repaired: the namespace is gone"]
                continue
        try:
            if stale:
                access.delete_accounts(kubeconfig, instance, stale)
            missing = [obj for obj in drifted if differences[_key(obj)] == "missing"]
            if missing:
                kube.apply(kubeconfig, missing, field_manager=baseline.FIELD_MANAGER)
            changed = [obj for obj in drifted if differences[_key(obj)] != "missing"]
            _replace(kubeconfig, [obj for obj in changed if obj["kind"] in EXACT_KINDS])
            others = [obj for obj in changed if obj["kind"] not in EXACT_KINDS]
            if others:
                kube.apply(kubeconfig, others, field_manager=baseline.FIELD_MANAGER)
        except (kube.KubeUnreachable, kube.ApplyError) as exc:
            log.error("instance %s: baseline repair failed: %s", instance.pk, exc)
            found.append(f"repair failed: {exc}")
        report[instance.pk] = found
        with transaction.atomic():
            audit_log(
                actor=None,
                action="instance.baseline_repaired",
                target=instance,
                project=instance.project,
                details={
                    "cluster": cluster.name,
                    "namespace": instance.namespace,
                    "repaired": found[:50],
                    "revoked_accounts": stale[:50],
                },
            )
        log.warning("instance %s: baseline repaired: %s", instance.pk, "; ".join(found))
    return report
