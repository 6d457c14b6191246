"""What rendered objects will use of a namespace: GPUs, MIG slices, CPU, memory and storage.

Read from the pod templates of the workload kinds (Pod, Deployment, StatefulSet, ReplicaSet, DaemonSet,
Job, CronJob) and of the known custom kinds (KubeRay RayCluster: head and worker groups; KServe
InferenceService: predictor, transformer and explainer), times their replicas (or parallelism), plus the
storage PersistentVolumeClaims (and StatefulSet claim templates) request.

CPU and memory count what the namespace's ResourceQuota counts: the larger of a container's requests and
limits (the quota caps both at the instance's totals), with the LimitRange defaults of
``instances.baseline`` for what a container leaves unset. A pod counts its containers' sum or its largest
init container, whichever is larger (as the scheduler does). Pure functions on dicts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from instances import baseline

GIB = Decimal(2**30)
_SUFFIXES = {
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal(10**3),
    "K": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
}


def quantity(value) -> Decimal:
    """A Kubernetes quantity (``"500m"``, ``"2Gi"``, ``4``) as a Decimal; 0 for what is not one."""
    if isinstance(value, bool) or value is None:
        return Decimal(0)
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    text = str(value).strip()
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if text.endswith(suffix) and text[: -len(suffix)]:
            try:
                return Decimal(text[: -len(suffix)]) * _SUFFIXES[suffix]
            except InvalidOperation:
                return Decimal(0)
    try:
        return Decimal(text)
    except InvalidOperation:
        return Decimal(0)


@dataclass
class Usage:
    gpus: int = 0
    mig_slices: dict[str, int] = field(default_factory=dict)
    cpu_millis: int = 0
    memory_bytes: int = 0
    storage_bytes: int = 0

    def add(self, other: Usage, times: int = 1) -> None:
        self.gpus += other.gpus * times
        for profile, count in other.mig_slices.items():
            self.mig_slices[profile] = self.mig_slices.get(profile, 0) + count * times
        self.cpu_millis += other.cpu_millis * times
        self.memory_bytes += other.memory_bytes * times
        self.storage_bytes += other.storage_bytes * times

    @property
    def memory_gib(self) -> Decimal:
        return (Decimal(self.memory_bytes) / GIB).quantize(Decimal("0.001"))

    @property
    def storage_gib(self) -> Decimal:
        return (Decimal(self.storage_bytes) / GIB).quantize(Decimal("0.001"))


def _container(container: Mapping) -> Usage:
    resources = container.get("resources") or {}
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}

    def amount(name: str, default_request: Decimal, default_limit: Decimal) -> Decimal:
        request = quantity(requests[name]) if name in requests else None
        limit = quantity(limits[name]) if name in limits else None
        if request is None:
            request = limit if limit is not None else default_request
        if limit is None:
            limit = max(default_limit, request)
        return max(request, limit)

    cpu = amount(
        "cpu",
        Decimal(baseline.DEFAULT_REQUEST_CPU_MILLIS) / 1000,
        Decimal(baseline.DEFAULT_LIMIT_CPU_MILLIS) / 1000,
    )
    memory = amount(
        "memory", Decimal(baseline.DEFAULT_REQUEST_MEMORY), Decimal(baseline.DEFAULT_LIMIT_MEMORY)
    )
    usage = Usage(
        cpu_millis=int((cpu * 1000).to_integral_value(rounding="ROUND_CEILING")), memory_bytes=int(memory)
    )
    for source in (limits, requests):  # extended resources: limits (requests must equal them if given)
        for name, value in source.items():
            count = int(quantity(value))
            if name == baseline.GPU_RESOURCE:
                usage.gpus = max(usage.gpus, count)
            elif name.startswith(baseline.MIG_PREFIX):
                profile = name[len(baseline.MIG_PREFIX) :]
                usage.mig_slices[profile] = max(usage.mig_slices.get(profile, 0), count)
    return usage


def _largest(usages: list[Usage]) -> Usage:
    """Per resource, the largest of ``usages`` (init containers run one at a time)."""
    result = Usage()
    for usage in usages:
        result.gpus = max(result.gpus, usage.gpus)
        result.cpu_millis = max(result.cpu_millis, usage.cpu_millis)
        result.memory_bytes = max(result.memory_bytes, usage.memory_bytes)
        for profile, count in usage.mig_slices.items():
            result.mig_slices[profile] = max(result.mig_slices.get(profile, 0), count)
    return result


def pod_usage(spec: Mapping | None) -> Usage:
    """What one pod of ``spec`` (a PodSpec) uses."""
    spec = spec or {}
    total = Usage()
    for container in spec.get("containers") or []:
        if isinstance(container, Mapping):
            total.add(_container(container))
    init = [_container(c) for c in spec.get("initContainers") or [] if isinstance(c, Mapping)]
    return _largest([total, *init]) if init else total


def _count(value, default: int = 1) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return max(value, 0)
    return default


def _template_spec(template) -> Mapping:
    return (template or {}).get("spec") or {} if isinstance(template, Mapping) else {}


def _claims_bytes(claims: Iterable) -> int:
    total = 0
    for claim in claims or []:
        if isinstance(claim, Mapping):
            requests = ((claim.get("spec") or {}).get("resources") or {}).get("requests") or {}
            total += int(quantity(requests.get("storage")))
    return total


def _kserve_component(component) -> Usage:
    """A KServe predictor/transformer/explainer: its containers, or its model/framework spec."""
    if not isinstance(component, Mapping):
        return Usage()
    containers = list(component.get("containers") or [])
    for key, value in component.items():
        if (
            key not in ("containers", "initContainers")
            and isinstance(value, Mapping)
            and "resources" in value
        ):
            containers.append(value)  # model: {...}, sklearn: {...}, pytorch: {...}, ...
    usage = pod_usage({"containers": containers, "initContainers": component.get("initContainers") or []})
    return usage


def object_usage(obj: Mapping) -> Usage:
    """What one rendered object will use (zero for kinds that run nothing and hold no storage)."""
    kind, spec = obj.get("kind"), obj.get("spec") or {}
    if not isinstance(spec, Mapping):
        return Usage()
    usage = Usage()
    if kind == "Pod":
        usage.add(pod_usage(spec))
    elif kind in ("Deployment", "ReplicaSet", "StatefulSet"):
        replicas = _count(spec.get("replicas"))
        usage.add(pod_usage(_template_spec(spec.get("template"))), replicas)
        if kind == "StatefulSet":
            usage.storage_bytes += _claims_bytes(spec.get("volumeClaimTemplates")) * replicas
    elif kind == "DaemonSet":
        usage.add(pod_usage(_template_spec(spec.get("template"))))
    elif kind == "Job":
        usage.add(pod_usage(_template_spec(spec.get("template"))), _count(spec.get("parallelism")))
    elif kind == "CronJob":
        job = (spec.get("jobTemplate") or {}).get("spec") or {}
        usage.add(pod_usage(_template_spec(job.get("template"))), _count(job.get("parallelism")))
    elif kind == "PersistentVolumeClaim":
        requests = (spec.get("resources") or {}).get("requests") or {}
        usage.storage_bytes += int(quantity(requests.get("storage")))
    elif kind == "RayCluster":
        usage.add(pod_usage(_template_spec((spec.get("headGroupSpec") or {}).get("template"))))
        for group in spec.get("workerGroupSpecs") or []:
            if isinstance(group, Mapping):
                replicas = _count(group.get("replicas"), _count(group.get("minReplicas")))
                usage.add(pod_usage(_template_spec(group.get("template"))), replicas)
    elif kind == "InferenceService":
        for name in ("predictor", "transformer", "explainer"):
            component = spec.get(name)
            if isinstance(component, Mapping):
                replicas = max(_count(component.get("minReplicas")), 1)
                usage.add(_kserve_component(component), replicas)
    return usage


def usage_of(objects: Iterable[Mapping]) -> Usage:
    """What all ``objects`` will use together."""
    total = Usage()
    for obj in objects:
        if isinstance(obj, Mapping):
            total.add(object_usage(obj))
    return total


# --- where the pods of an object are ----------------------------------------------------------------

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "ReplicaSet", "DaemonSet", "Job")


def pod_templates(obj: dict) -> list[dict]:
    """The pod templates of a workload (``{"metadata", "spec"}`` dicts), to label and give env to."""
    kind, spec = obj.get("kind"), obj.get("spec")
    if not isinstance(spec, dict):
        return []
    found = []
    if kind in WORKLOAD_KINDS:
        found.append(spec.get("template"))
    elif kind == "CronJob":
        found.append(((spec.get("jobTemplate") or {}).get("spec") or {}).get("template"))
    elif kind == "RayCluster":
        found.append((spec.get("headGroupSpec") or {}).get("template"))
        found += [g.get("template") for g in spec.get("workerGroupSpecs") or [] if isinstance(g, dict)]
    return [t for t in found if isinstance(t, dict)]


def pod_specs(obj: dict) -> list[dict]:
    """The pod specs of a rendered object: a Pod's, its pod templates' (``pod_templates``), KServe
    InferenceService components' (each a pod spec)."""
    kind, spec = obj.get("kind"), obj.get("spec")
    if not isinstance(spec, dict):
        return []
    if kind == "Pod":
        return [spec]
    specs = [t.get("spec") for t in pod_templates(obj)]
    if kind == "InferenceService":
        specs += [spec.get(c) for c in ("predictor", "transformer", "explainer")]
    return [s for s in specs if isinstance(s, dict)]
