"""The placeholder pods of a warm pool's standby instance, as plain manifests (pure: no Django, no client).

A standby instance holds its capacity for real: one Deployment ``paas-standby-<n>`` (one replica) per
resource group of the profile requests that group's GPUs (``nvidia.com/gpu`` on nodes of the group's
GPU model, the ``nvidia.com/gpu.product`` label GPU Feature Discovery puts on nodes and the platform's
node sync reads), MIG slices (``nvidia.com/mig-<profile>``), CPU and memory, requests equal to limits,
minus what the template's own objects already request (``instances.workloads``), so that together
they never ask beyond the namespace's ResourceQuota (the profile's totals). The scheduler binds them
(so the capacity is taken on a node), and a cluster autoscaler adds nodes for them where it is short.
The hand-over deletes them as the user's workloads arrive.

They run ``registry.k8s.io/pause`` under Pod Security ``restricted`` (non-root, seccomp
RuntimeDefault, every capability dropped, no privilege escalation, no ServiceAccount token), with no
grace period (a deleted placeholder stops counting against the quota at once), at the PriorityClass
:data:`PRIORITY_CLASS`:

* value :data:`PRIORITY_VALUE` (-10): below every ordinary pod (0), so a workload that needs the room
  preempts a placeholder instead of staying pending; and not below -10, the cluster autoscaler's default
  ``--expendable-pods-priority-cutoff``: pods under the cutoff never make it add nodes, which is the
  whole point of a placeholder left pending.
* ``preemptionPolicy: Never``: a placeholder never evicts anything to get scheduled.

Can a tenant abuse the class? Neither the template policy nor the guardrails restrict
``priorityClassName`` (a template or a tenant's own kubeconfig may name any existing class). Naming
this one only lowers the tenant's own pods: they can be preempted by anything and preempt nothing;
pods of equal priority never preempt one another, so they cannot displace a placeholder either (nor
can a placeholder displace them). Nothing is gained; the class grants no quota (the namespace's
ResourceQuota counts every pod whatever its priority). The class itself is cluster-scoped, created
by the platform, out of any tenant's reach (their Role is namespaced; templates may not declare
cluster-scoped kinds).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from instances import baseline
from instances.workloads import Usage, quantity

PRIORITY_CLASS = "gpu-paas-standby"
PRIORITY_VALUE = -10
PLACEHOLDER_PREFIX = f"{baseline.RESERVED_NAME_PREFIX}standby-"  # a name templates may not take
IMAGE = "registry.k8s.io/pause:3.10"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
#: On each placeholder Deployment and its pods (a platform label: the guardrails keep tenants off them).
LABEL_PLACEHOLDER = f"{baseline.LABEL_PREFIX}placeholder"


def priority_class() -> dict:
    """The cluster-scoped PriorityClass of every placeholder pod (ensured by ``standby_deploy``)."""
    return {
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": {
            "name": PRIORITY_CLASS,
            "labels": {baseline.LABEL_MANAGED_BY: baseline.MANAGED_BY},
        },
        "value": PRIORITY_VALUE,
        "preemptionPolicy": "Never",
        "globalDefault": False,
        "description": "Placeholder pods of GPU PaaS warm-pool standby instances: they hold capacity until "
        "a tenant's workload needs it, never preempt anything, and let a cluster autoscaler add nodes.",
    }


def placeholder_name(index: int) -> str:
    return f"{PLACEHOLDER_PREFIX}{index}"


def _mig_profile(name: str) -> str:
    return name.removeprefix("nvidia.com/").removeprefix("mig-")


def _cpu_millis(group: Mapping) -> int:
    value = group.get("cpu_cores", group.get("cpu")) or 0
    return int((Decimal(str(value)) * 1000).to_integral_value(rounding="ROUND_CEILING"))


def remaining(groups: list[Mapping], used: Usage) -> list[dict]:
    """Per resource group: what its placeholder must request so that the group's resources plus what
    the template's objects already use (``used``) make the profile's totals, never more.

    What the template uses cannot be told apart by group: it is taken from the groups in order (GPUs
    from the groups that have GPUs, slices of a MIG profile from the groups with that profile)."""
    left_gpus, left_cpu, left_memory = used.gpus, used.cpu_millis, used.memory_bytes
    left_mig = dict(used.mig_slices)
    result = []
    for group in groups:
        gpus = int(group.get("gpu_count") or 0)
        take = min(gpus, left_gpus)
        gpus, left_gpus = gpus - take, left_gpus - take
        mig = _mig_profile(str(group.get("mig_profile") or ""))
        slices = int(group.get("mig_count") or 0) if mig else 0
        take = min(slices, left_mig.get(mig, 0))
        slices = slices - take
        if mig:
            left_mig[mig] = left_mig.get(mig, 0) - take
        cpu = _cpu_millis(group)
        take = min(cpu, left_cpu)
        cpu, left_cpu = cpu - take, left_cpu - take
        memory = int(group.get("memory_gib") or 0) * 2**30
        take = min(memory, left_memory)
        memory, left_memory = memory - take, left_memory - take
        result.append(
            {
                "gpu_model": str(group.get("gpu_model") or "") if gpus else "",
                "gpus": gpus,
                "mig_profile": mig if slices else "",
                "mig_count": slices,
                "cpu_millis": cpu,
                "memory_bytes": memory,
            }
        )
    return result


def _overhead(runtime_class: Mapping | None) -> tuple[int, int]:
    """The pod overhead (CPU millis, memory bytes) a RuntimeClass adds to every pod's quota usage."""
    fixed = ((runtime_class or {}).get("overhead") or {}).get("podFixed") or {}
    cpu = int((quantity(fixed.get("cpu")) * 1000).to_integral_value(rounding="ROUND_CEILING"))
    return cpu, int(quantity(fixed.get("memory")))


def placeholders(
    *,
    namespace: str,
    groups: list[Mapping],
    used: Usage | None = None,
    labels: Mapping[str, str],
    runtime_class: Mapping | None = None,
) -> list[dict]:
    """The placeholder Deployments of a standby namespace, one per resource group that still has
    something to hold (``groups``: the snapshot's resource groups; ``used``: what the template's own
    objects request). ``runtime_class``: the RuntimeClass the pods must run in (the cluster's sandbox,
    as the guardrails require), as read from the API; its pod overhead counts against the quota too,
    so it is taken off each placeholder's CPU and memory."""
    overhead_cpu, overhead_memory = _overhead(runtime_class)
    objects = []
    for index, want in enumerate(remaining(groups, used or Usage())):
        cpu = max(want["cpu_millis"] - overhead_cpu, 0)
        memory = max(want["memory_bytes"] - overhead_memory, 0)
        resources: dict[str, str] = {}
        if cpu:
            resources["cpu"] = f"{cpu}m"
        if memory:
            resources["memory"] = str(memory)
        if want["gpus"]:
            resources[baseline.GPU_RESOURCE] = str(want["gpus"])
        if want["mig_count"]:
            resources[f"{baseline.MIG_PREFIX}{want['mig_profile']}"] = str(want["mig_count"])
        if not resources:
            continue  # the template's own pods hold all of this group
        name = placeholder_name(index)
        pod_labels = {**labels, LABEL_PLACEHOLDER: name}
        spec: dict = {
            "priorityClassName": PRIORITY_CLASS,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 0,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 65535,
                "runAsGroup": 65535,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "placeholder",
                    "image": IMAGE,
                    "imagePullPolicy": "IfNotPresent",
                    # Requests equal limits: the quota counts both, and the LimitRange defaults
                    # (1 CPU, 1 GiB) must not cap a limit below its request.
                    "resources": {"requests": dict(resources), "limits": dict(resources)},
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        }
        if runtime_class:
            spec["runtimeClassName"] = runtime_class["metadata"]["name"]
        if want["gpu_model"]:
            spec["nodeSelector"] = {GPU_PRODUCT_LABEL: want["gpu_model"]}
        objects.append(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "labels": {**pod_labels, baseline.LABEL_MANAGED_BY: baseline.MANAGED_BY},
                },
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {LABEL_PLACEHOLDER: name}},
                    # Replaced whole: a changed placeholder never needs room for two at once.
                    "strategy": {"type": "Recreate"},
                    "template": {
                        "metadata": {
                            "labels": {**pod_labels, baseline.LABEL_MANAGED_BY: baseline.MANAGED_BY}
                        },
                        "spec": spec,
                    },
                },
            }
        )
    return objects
