"""The matchmaker: pick a cluster for a placement request, by best fit, and explain the choice.

Over 600 lines, kept whole: one algorithm (capacity, fit, score, explanation) that reads best in one
place; its unit tests and benchmark exercise it as a unit.

This module is pure Python (standard library only, no Django, no Kubernetes client) so it can be
unit-tested and benchmarked in isolation. The caller turns the inventory (clusters, synced nodes, what the
platform has already placed) into :class:`ClusterCapacity` values once, then calls :func:`place` for each
decision:

    clusters = [ClusterCapacity.from_nodes(c.name, nodes_of(c), datacenter=..., ...) for c in ...]
    placement = place(PlacementRequest(groups=(ResourceGroup(gpu_model="A100-SXM4-40GB", gpu_count=4),)),
                      clusters)
    placement.cluster        # "gpu-b", or None when nothing fits
    placement.explain()      # human-readable: the choice and why, and every rejected cluster's reasons

**Free capacity** is allocatable minus what the platform has already placed; the caller computes it per node
(:class:`NodeCapacity`). :meth:`ClusterCapacity.from_nodes` aggregates schedulable nodes only and clamps
negative free amounts (over-committed nodes) to zero.

Rules, in the order they are checked (a rejected cluster lists *every* reason that applies):

1. Filters — reachable; in the pinned datacenter (if any); in the allowed clusters (if any); shared or
   dedicated to the requesting organization (the reason never names the other organization); offers the
   requested flavor. A cluster rejected by a filter is not checked for capacity (its numbers are stale,
   irrelevant or, for another organization's cluster, not ours to show).
2. Capacity, cumulative over all groups of the request on the same cluster: whole GPUs per product (two
   groups of 4 A100 need 8 A100), MIG slices per profile, CPU and memory summed.
3. One node per small group: a whole-GPU group of ``G`` GPUs of product ``M`` with ``G`` no larger than a
   node of ``M`` in that cluster must fit on a single node, i.e. ``largest_node_gpus_free[M] >= G``.
   The node size is :attr:`ClusterCapacity.node_gpu_size` ``[M]`` when the nodes report their GPU count
   (:attr:`NodeCapacity.gpus_total`), else :data:`DEFAULT_NODE_GPU_SIZE` (8, an HGX board). Larger groups
   (e.g. 32 GPUs) span nodes and only need the cluster total. The check is made per group against the
   largest node, so for several small groups of one product it is necessary, not sufficient (no bin
   packing); it is reported only when the cluster total of that product suffices (otherwise it is implied).
   MIG slices, CPU and memory are checked against cluster totals only; Kubernetes does the final
   per-node scheduling.

Best fit among the clusters that fit: the cluster that leaves the least free of what the request uses.
The key is ``(leftover GPU + MIG units of the requested products/profiles, leftover CPU millis,
leftover memory bytes, cluster name)``, smallest first; for a CPU-only request the first term is 0, so
it is leftover CPU, then memory, then name. The result does not depend on the order of the input.

:func:`place` reads only the per-cluster aggregates: it is O(clusters x groups) and takes a few
milliseconds for 1,000 clusters (see ``tests/benchmarks/bench_matchmaker.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from paas.units import GIB

__all__ = [
    "DEFAULT_NODE_GPU_SIZE",
    "FLAVORS",
    "ClusterCapacity",
    "NodeCapacity",
    "Placement",
    "PlacementRequest",
    "ResourceGroup",
    "Verdict",
    "place",
]

#: The deployment flavors a request may ask for (and a cluster may offer).
FLAVORS = frozenset({"namespace", "virtual_cluster", "vm", "bare_metal", "dedicated_cluster"})

#: GPUs per node assumed when the nodes of a product do not report their GPU count.
DEFAULT_NODE_GPU_SIZE = 8

GPU_RESOURCE = "nvidia.com/gpu"
MIG_RESOURCE_PREFIX = "nvidia.com/mig-"
SCHEMA_VERSION = 1

_FILTERED_NOTE = "unreachable, other datacenter, not allowed, dedicated or flavor not offered"


# ---------------------------------------------------------------------------------------------- inputs


def _check_count(owner: str, name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{owner}: {name} must be an integer, got {value!r}")
    if value < 0:
        raise ValueError(f"{owner}: {name} must not be negative, got {value}")


def normalize_mig_profile(profile: str) -> str:
    """Strip a MIG profile's resource prefix: ``nvidia.com/mig-1g.10gb`` → ``1g.10gb``."""
    profile = profile.strip()
    if profile.startswith("nvidia.com/"):
        profile = profile[len("nvidia.com/") :]
    if profile.startswith("mig-"):
        profile = profile[len("mig-") :]
    return profile


@dataclass(frozen=True, slots=True)
class ResourceGroup:
    """One group of a compute profile; a request with several groups is a heterogeneous profile.

    A group asks either for whole GPUs (``gpu_count`` of ``gpu_model``) or for MIG slices
    (``mig_count`` of ``mig_profile``), or for neither (CPU only); plus CPU and memory.
    Validated on construction (``ValueError``); ``mig_profile`` is normalized to the bare profile.
    """

    gpu_model: str = ""  # the nvidia.com/gpu.product label value, e.g. "A100-SXM4-40GB"; "" = no whole GPUs
    gpu_count: int = 0  # whole GPUs (resource nvidia.com/gpu) of gpu_model
    mig_profile: str = ""  # e.g. "1g.10gb" -> resource "nvidia.com/mig-1g.10gb"
    mig_count: int = 0
    cpu_millis: int = 0
    memory_bytes: int = 0

    def __post_init__(self) -> None:
        owner = "resource group"
        for name in ("gpu_count", "mig_count", "cpu_millis", "memory_bytes"):
            _check_count(owner, name, getattr(self, name))
        if not isinstance(self.gpu_model, str) or not isinstance(self.mig_profile, str):
            raise ValueError(f"{owner}: gpu_model and mig_profile must be strings")
        if self.gpu_count and self.mig_count:
            raise ValueError(
                f"{owner}: asks for both whole GPUs (gpu_count={self.gpu_count}) and MIG slices "
                f"(mig_count={self.mig_count}); use one group for each"
            )
        if self.gpu_count and not self.gpu_model.strip():
            raise ValueError(f"{owner}: gpu_count={self.gpu_count} needs a gpu_model")
        if self.mig_count and not self.mig_profile.strip():
            raise ValueError(f"{owner}: mig_count={self.mig_count} needs a mig_profile")
        object.__setattr__(self, "gpu_model", self.gpu_model.strip())
        object.__setattr__(self, "mig_profile", normalize_mig_profile(self.mig_profile))

    @property
    def is_empty(self) -> bool:
        """True when the group asks for nothing at all."""
        return not (self.gpu_count or self.mig_count or self.cpu_millis or self.memory_bytes)

    def describe(self) -> str:
        """Human-readable summary, e.g. ``4 nvidia.com/gpu of A100-SXM4-40GB, 32 CPU, 256 GiB memory``."""
        parts = []
        if self.gpu_count:
            parts.append(f"{self.gpu_count} {GPU_RESOURCE} of {self.gpu_model}")
        if self.mig_count:
            parts.append(f"{self.mig_count} {MIG_RESOURCE_PREFIX}{self.mig_profile}")
        if self.cpu_millis:
            parts.append(f"{format_cpu(self.cpu_millis)} CPU")
        if self.memory_bytes:
            parts.append(f"{format_gib(self.memory_bytes)} GiB memory")
        return ", ".join(parts) or "nothing"

    def as_dict(self) -> dict[str, Any]:
        return {
            "gpu_model": self.gpu_model,
            "gpu_count": self.gpu_count,
            "mig_profile": self.mig_profile,
            "mig_count": self.mig_count,
            "cpu_millis": self.cpu_millis,
            "memory_bytes": self.memory_bytes,
        }


@dataclass(frozen=True, slots=True)
class PlacementRequest:
    """What to place: resource groups, and where it may go.

    Validated on construction (``ValueError``): at least one group, no group asking for nothing, a known
    flavor. Lists given for ``groups`` or ``allowed_clusters`` are stored as tuples.
    """

    groups: tuple[ResourceGroup, ...]
    datacenter: str | None = None  # datacenter name; None = any
    allowed_clusters: tuple[str, ...] = ()  # cluster names (cluster_details); empty = any
    flavor: str = "namespace"  # namespace | virtual_cluster | vm | bare_metal | dedicated_cluster
    org_id: int | None = None  # requesting org: may use shared clusters and clusters dedicated to it

    def __post_init__(self) -> None:
        groups = tuple(self.groups) if self.groups is not None else ()
        if not groups:
            raise ValueError("placement request has no resource groups")
        for index, group in enumerate(groups, start=1):
            if not isinstance(group, ResourceGroup):
                raise ValueError(f"group {index} is not a ResourceGroup: {group!r}")
            if group.is_empty:
                raise ValueError(f"group {index} asks for no resources")
        if self.flavor not in FLAVORS:
            raise ValueError(f"unknown flavor {self.flavor!r}; expected one of {', '.join(sorted(FLAVORS))}")
        if isinstance(self.allowed_clusters, str):
            raise ValueError("allowed_clusters must be a sequence of cluster names, not a string")
        object.__setattr__(self, "groups", groups)
        object.__setattr__(self, "allowed_clusters", tuple(self.allowed_clusters))

    def describe(self) -> str:
        """One line: the groups, flavor and constraints."""
        text = "; ".join(group.describe() for group in self.groups)
        extras = [f"flavor {self.flavor}"]
        if self.datacenter is not None:
            extras.append(f"datacenter {self.datacenter}")
        if self.allowed_clusters:
            extras.append(f"allowed clusters: {', '.join(sorted(set(self.allowed_clusters)))}")
        return f"{text} ({', '.join(extras)})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "groups": [group.as_dict() for group in self.groups],
            "datacenter": self.datacenter,
            "allowed_clusters": list(self.allowed_clusters),
            "flavor": self.flavor,
            "org_id": self.org_id,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PlacementRequest:
        return cls(
            groups=tuple(ResourceGroup(**group) for group in data["groups"]),
            datacenter=data.get("datacenter"),
            allowed_clusters=tuple(data.get("allowed_clusters") or ()),
            flavor=data.get("flavor", "namespace"),
            org_id=data.get("org_id"),
        )


@dataclass(frozen=True, slots=True)
class NodeCapacity:
    """One node's free capacity: allocatable minus what the platform placed (the caller computes it)."""

    name: str
    gpu_product: str = ""
    gpus_free: int = 0
    mig_free: Mapping[str, int] = field(default_factory=dict)  # {"1g.10gb": 56} (profile WITHOUT "mig-")
    cpu_millis_free: int = 0
    memory_bytes_free: int = 0
    schedulable: bool = True
    gpus_total: int = 0  # the node's GPU count (Node.gpu_count); 0 = unknown. Sets the one-node rule's size.


@dataclass(frozen=True, slots=True)
class ClusterCapacity:
    """A cluster as the matchmaker sees it: filter attributes and free-capacity aggregates.

    The aggregates cover schedulable nodes only; build them with :meth:`from_nodes` (once per cluster).
    :func:`place` reads nothing else, which keeps it fast. Treat the mappings as read-only.
    """

    name: str
    datacenter: str | None = None
    reachable: bool = True
    dedicated_org_id: int | None = None  # None = shared
    flavors: frozenset[str] = frozenset({"namespace"})
    gpus_free: Mapping[str, int] = field(default_factory=dict)  # per gpu_product
    mig_free: Mapping[str, int] = field(default_factory=dict)  # per MIG profile (no "mig-" prefix)
    cpu_millis_free: int = 0
    memory_bytes_free: int = 0
    largest_node_gpus_free: Mapping[str, int] = field(
        default_factory=dict
    )  # per product: most free on a node
    node_gpu_size: Mapping[str, int] = field(default_factory=dict)  # per product: GPUs of its largest node

    def __post_init__(self) -> None:
        if not isinstance(self.flavors, frozenset):
            object.__setattr__(self, "flavors", frozenset(self.flavors))

    @classmethod
    def from_nodes(
        cls,
        name: str,
        nodes: Iterable[NodeCapacity],
        *,
        datacenter: str | None = None,
        reachable: bool = True,
        dedicated_org_id: int | None = None,
        flavors: Iterable[str] = frozenset({"namespace"}),
    ) -> ClusterCapacity:
        """Aggregate the schedulable nodes' free capacity (negative amounts count as zero).

        Whole GPUs are counted per ``gpu_product`` (nodes without a product label contribute none);
        MIG profile keys are normalized (``mig-1g.10gb`` → ``1g.10gb``).
        """
        gpus: dict[str, int] = {}
        largest: dict[str, int] = {}
        size: dict[str, int] = {}
        mig: dict[str, int] = {}
        cpu = memory = 0
        for node in nodes:
            if not node.schedulable:
                continue
            cpu += max(node.cpu_millis_free, 0)
            memory += max(node.memory_bytes_free, 0)
            product = node.gpu_product
            if product:
                free = max(node.gpus_free, 0)
                gpus[product] = gpus.get(product, 0) + free
                if free >= largest.get(product, 0):
                    largest[product] = free
                if node.gpus_total > size.get(product, 0):
                    size[product] = node.gpus_total
            for profile, count in node.mig_free.items():
                key = normalize_mig_profile(profile)
                mig[key] = mig.get(key, 0) + max(count, 0)
        return cls(
            name=name,
            datacenter=datacenter,
            reachable=reachable,
            dedicated_org_id=dedicated_org_id,
            flavors=frozenset(flavors),
            gpus_free=gpus,
            mig_free=mig,
            cpu_millis_free=cpu,
            memory_bytes_free=memory,
            largest_node_gpus_free=largest,
            node_gpu_size=size,
        )


# --------------------------------------------------------------------------------------------- outputs


@dataclass(frozen=True, slots=True)
class Verdict:
    """The matchmaker's judgement of one cluster."""

    cluster: str
    fits: bool
    reasons: tuple[str, ...]  # empty when it fits; otherwise every reason, human-readable
    score: tuple[int, ...] | None = None  # when it fits: (leftover GPU+MIG units, CPU millis, memory bytes)
    eligible: bool = True  # False: rejected by a filter, capacity not checked
    shortfall: float | None = (
        None  # capacity-rejected: sum of the missing fractions (closeness; lower = closer)
    )

    def as_dict(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "fits": self.fits,
            "reasons": list(self.reasons),
            "score": list(self.score) if self.score is not None else None,
            "eligible": self.eligible,
            "shortfall": self.shortfall,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Verdict:
        score = data.get("score")
        return cls(
            cluster=data["cluster"],
            fits=bool(data["fits"]),
            reasons=tuple(data.get("reasons") or ()),
            score=tuple(score) if score is not None else None,
            eligible=bool(data.get("eligible", True)),
            shortfall=data.get("shortfall"),
        )


@dataclass(frozen=True, slots=True)
class Placement:
    """The decision: the chosen cluster (or None) and a verdict per cluster considered."""

    cluster: str | None  # chosen cluster name, or None when nothing fits
    verdicts: tuple[Verdict, ...]  # one per cluster considered: chosen first, then by name
    request: PlacementRequest | None = None  # what was asked (for the explanation and the record)

    @property
    def fitting(self) -> tuple[Verdict, ...]:
        """Verdicts of the clusters that fit, best first."""
        return tuple(sorted((v for v in self.verdicts if v.fits), key=_rank_key))

    @property
    def rejected(self) -> tuple[Verdict, ...]:
        """Verdicts of the clusters that do not fit, by name."""
        return tuple(v for v in self.verdicts if not v.fits)

    def closest(self) -> tuple[str, ...]:
        """When nothing fits: the capacity-rejected cluster(s) missing the least (ties: all, by name)."""
        candidates = [v for v in self.verdicts if not v.fits and v.eligible and v.shortfall is not None]
        if not candidates:
            return ()
        best = min(v.shortfall for v in candidates)
        return tuple(v.cluster for v in candidates if v.shortfall == best)

    def explain(self) -> str:
        """Multi-line, human-readable account: the request, the choice and why, then every rejection."""
        lines: list[str] = []
        if self.request is not None:
            lines.append(f"Request: {self.request.describe()}.")
        total = len(self.verdicts)
        accelerators = self.request is None or any(g.gpu_count or g.mig_count for g in self.request.groups)
        fitting = self.fitting
        rejected = self.rejected
        if self.cluster is not None:
            chosen = next(v for v in self.verdicts if v.cluster == self.cluster)
            lines.append(
                f"Placed on cluster {self.cluster}: the best fit of {len(fitting)} fitting "
                f"cluster{_s(len(fitting))} out of {total} considered; "
                f"it {_leftover(chosen.score, accelerators)}."
            )
            lines.append(
                "Best fit leaves the least free of the requested GPU products and MIG profiles, then of CPU, "
                "then of memory; ties go to the cluster name in alphabetical order."
            )
            others = [v for v in fitting if v.cluster != self.cluster]
            if others:
                lines.append("Also fit (ranked):")
                lines.extend(f"  - {v.cluster}: {_leftover(v.score, accelerators)}" for v in others)
        else:
            lines.append(self._no_fit_summary(total))
        if rejected:
            lines.append("Rejected:")
            lines.extend(f"  - {v.cluster}: {'; '.join(v.reasons)}" for v in rejected)
        return "\n".join(lines)

    def _no_fit_summary(self, total: int) -> str:
        if total == 0:
            return "No cluster fits: there were no clusters to consider."
        filtered = sum(1 for v in self.verdicts if not v.eligible)
        checked = total - filtered
        text = f"No cluster fits: none of the {total} cluster{_s(total)} considered can take this request."
        if filtered:
            text += (
                f" {filtered} {'was' if filtered == 1 else 'were'} excluded before capacity was checked "
                f"({_FILTERED_NOTE})."
            )
        if checked:
            closest = self.closest()
            by_name = {v.cluster: v for v in self.verdicts}
            shown = closest[:3]
            named = "; ".join(f"{name} ({'; '.join(by_name[name].reasons)})" for name in shown)
            more = f" and {len(closest) - len(shown)} more equally close" if len(closest) > len(shown) else ""
            text += (
                f" {checked} {'was' if checked == 1 else 'were'} short of capacity; closest: {named}{more}."
            )
        return text

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable record of the decision (includes the explanation text)."""
        return {
            "version": SCHEMA_VERSION,
            "cluster": self.cluster,
            "request": self.request.as_dict() if self.request is not None else None,
            "verdicts": [v.as_dict() for v in self.verdicts],
            "explanation": self.explain(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Placement:
        """Rebuild a placement from :meth:`as_dict` output (the stored explanation is ignored)."""
        request = data.get("request")
        return cls(
            cluster=data.get("cluster"),
            verdicts=tuple(Verdict.from_dict(v) for v in data.get("verdicts") or ()),
            request=PlacementRequest.from_dict(request) if request is not None else None,
        )


# ------------------------------------------------------------------------------------------ formatting


def format_cpu(millis: int) -> str:
    """Cores with up to 3 decimals, no trailing zeros: 208000 → ``208``, 1500 → ``1.5``, 250 → ``0.25``."""
    sign = "-" if millis < 0 else ""
    whole, frac = divmod(abs(millis), 1000)
    if not frac:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:03d}".rstrip("0")


def format_gib(num_bytes: int, rounding: str = "nearest") -> str:
    """GiB with up to 1 decimal: 800 GiB → ``800``, 512 MiB → ``0.5``.

    ``rounding`` is ``nearest``, ``up`` or ``down`` (to the tenth): a shortfall shows the need rounded
    up and the free amount rounded down, so the two never print equal.
    """
    scaled = abs(num_bytes) * 10
    if rounding == "up":
        tenths = -(-scaled // GIB)
    elif rounding == "down":
        tenths = scaled // GIB
    else:
        tenths = (scaled + GIB // 2) // GIB
    sign = "-" if num_bytes < 0 and tenths else ""
    whole, frac = divmod(tenths, 10)
    return f"{sign}{whole}" if not frac else f"{sign}{whole}.{frac}"


def _s(count: int) -> str:
    return "" if count == 1 else "s"


def _leftover(score: tuple[int, ...] | None, accelerators: bool = True) -> str:
    if score is None:
        return "fits"
    units, cpu, memory = score
    text = f"{format_cpu(cpu)} CPU and {format_gib(memory, 'down')} GiB memory"
    if accelerators:
        text = f"{units} requested GPU/MIG unit{_s(units)}, {text}"
    return f"leaves {text} free"


def _rank_key(verdict: Verdict) -> tuple[Any, ...]:
    return (*(verdict.score or ()), verdict.cluster)


def _cluster_key(verdict: Verdict) -> str:
    return verdict.cluster


# ------------------------------------------------------------------------------------------- placement


@dataclass(frozen=True, slots=True)
class _Needs:
    """The request folded once: totals per product/profile, and whole-GPU group sizes per product."""

    gpus: tuple[tuple[str, int], ...]  # (product, total), sorted by product
    gpu_groups: Mapping[str, tuple[int, ...]]  # product -> distinct group sizes, largest first
    mig: tuple[tuple[str, int], ...]  # (profile, total), sorted by profile
    cpu: int
    memory: int

    @classmethod
    def of(cls, request: PlacementRequest) -> _Needs:
        gpus: dict[str, int] = {}
        sizes: dict[str, set[int]] = {}
        mig: dict[str, int] = {}
        cpu = memory = 0
        for group in request.groups:
            if group.gpu_count:
                gpus[group.gpu_model] = gpus.get(group.gpu_model, 0) + group.gpu_count
                sizes.setdefault(group.gpu_model, set()).add(group.gpu_count)
            if group.mig_count:
                mig[group.mig_profile] = mig.get(group.mig_profile, 0) + group.mig_count
            cpu += group.cpu_millis
            memory += group.memory_bytes
        return cls(
            gpus=tuple(sorted(gpus.items())),
            gpu_groups={product: tuple(sorted(s, reverse=True)) for product, s in sizes.items()},
            mig=tuple(sorted(mig.items())),
            cpu=cpu,
            memory=memory,
        )


def place(request: PlacementRequest, clusters: Iterable[ClusterCapacity]) -> Placement:
    """Choose a cluster for ``request`` among ``clusters`` by best fit, with a verdict for every cluster.

    Raises ``ValueError`` when two clusters share a name (the choice would be ambiguous). The request is
    validated when it is constructed. See the module docstring for the rules.
    """
    needs = _Needs.of(request)
    datacenter = request.datacenter
    allowed = frozenset(request.allowed_clusters)
    allowed_reason = f"not in the allowed clusters: {', '.join(sorted(allowed))}"
    org_id = request.org_id
    flavor = request.flavor
    flavor_reason = f"does not offer the {flavor} flavor"
    need_gpus = needs.gpus
    gpu_groups = needs.gpu_groups
    need_mig = needs.mig
    need_cpu = needs.cpu
    need_memory = needs.memory
    need_cpu_text = format_cpu(need_cpu)
    need_memory_text = format_gib(need_memory, "up")

    verdicts: list[Verdict] = []
    seen: set[str] = set()
    best: Verdict | None = None
    best_key: tuple[Any, ...] | None = None

    for cluster in clusters:
        name = cluster.name
        if name in seen:
            raise ValueError(f"duplicate cluster name {name!r}")
        seen.add(name)

        # 1. Filters.
        reasons: list[str] = []
        if not cluster.reachable:
            reasons.append("unreachable")
        if datacenter is not None and cluster.datacenter != datacenter:
            if cluster.datacenter is None:
                reasons.append(f"in no datacenter, request pins {datacenter}")
            else:
                reasons.append(f"in datacenter {cluster.datacenter}, request pins {datacenter}")
        if allowed and name not in allowed:
            reasons.append(allowed_reason)
        if cluster.dedicated_org_id is not None and cluster.dedicated_org_id != org_id:
            reasons.append("dedicated to another organization")
        if flavor not in cluster.flavors:
            reasons.append(flavor_reason)
        if reasons:
            verdicts.append(Verdict(name, False, tuple(reasons), eligible=False))
            continue

        # 2-3. Capacity, cumulative over the groups; one node per small whole-GPU group.
        shortfall = 0.0
        units_left = 0
        if need_gpus:
            free_gpus = cluster.gpus_free
            for product, need in need_gpus:
                free = free_gpus.get(product, 0)
                if free < need:
                    reasons.append(f"needs {need} {GPU_RESOURCE} of {product}, {free} free")
                    shortfall += (need - free) / need
                    continue
                units_left += free - need
                node_size = cluster.node_gpu_size.get(product) or DEFAULT_NODE_GPU_SIZE
                largest = cluster.largest_node_gpus_free.get(product, 0)
                for size in gpu_groups[product]:
                    if size <= node_size:
                        if largest < size:
                            reasons.append(
                                f"needs {size} {GPU_RESOURCE} of {product} on one node, "
                                f"at most {largest} free on any node"
                            )
                            shortfall += (size - largest) / size
                        break
        if need_mig:
            free_mig = cluster.mig_free
            for profile, need in need_mig:
                free = free_mig.get(profile, 0)
                if free < need:
                    reasons.append(f"needs {need} {MIG_RESOURCE_PREFIX}{profile}, {free} free")
                    shortfall += (need - free) / need
                else:
                    units_left += free - need
        cpu_left = cluster.cpu_millis_free - need_cpu
        if need_cpu and cpu_left < 0:
            reasons.append(f"needs {need_cpu_text} CPU, {format_cpu(max(cluster.cpu_millis_free, 0))} free")
            shortfall += -cpu_left / need_cpu
        memory_left = cluster.memory_bytes_free - need_memory
        if need_memory and memory_left < 0:
            free_text = format_gib(max(cluster.memory_bytes_free, 0), "down")
            reasons.append(f"needs {need_memory_text} GiB memory, {free_text} free")
            shortfall += -memory_left / need_memory

        if reasons:
            verdicts.append(Verdict(name, False, tuple(reasons), shortfall=round(shortfall, 6)))
            continue
        score = (units_left, cpu_left, memory_left)
        verdict = Verdict(name, True, (), score=score)
        verdicts.append(verdict)
        key = (score, name)
        if best_key is None or key < best_key:
            best, best_key = verdict, key

    verdicts.sort(key=_cluster_key)
    if best is not None:
        verdicts = [best, *(v for v in verdicts if v is not best)]
    return Placement(cluster=best.cluster if best else None, verdicts=tuple(verdicts), request=request)
