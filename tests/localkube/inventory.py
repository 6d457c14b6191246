"""Declarative simulated node inventory for the local clusters.

Each :class:`NodeSpec` becomes one KWOK-managed ``Node`` carrying the labels NVIDIA GPU Feature
Discovery (GFD) and the MIG manager would put on a real node, plus realistic capacity and
allocatable.  Callers can pass their own list to :func:`tests.localkube.cluster.LocalCluster`;
:func:`default_inventory` is what the shared test cluster uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
KWOK_NODE_ANNOTATION_VALUE = "fake"
REGION = "local-1"


@dataclass(frozen=True)
class MigProfile:
    """Properties of one MIG profile as GFD reports them (A100/H100 80GB figures)."""

    memory_mib: int
    multiprocessors: int
    slices: int


MIG_PROFILES: dict[str, MigProfile] = {
    "1g.10gb": MigProfile(memory_mib=9728, multiprocessors=14, slices=1),
    "2g.20gb": MigProfile(memory_mib=19968, multiprocessors=28, slices=2),
    "3g.40gb": MigProfile(memory_mib=40192, multiprocessors=42, slices=3),
    "4g.40gb": MigProfile(memory_mib=40192, multiprocessors=56, slices=4),
    "7g.80gb": MigProfile(memory_mib=80896, multiprocessors=98, slices=7),
}


@dataclass(frozen=True)
class GpuSpec:
    """The GPUs of one node and how they are (or are not) partitioned with MIG.

    ``mig_devices`` maps a MIG profile (e.g. ``"1g.10gb"``) to the number of such devices on
    the whole node.  With the ``mixed`` strategy each profile is its own extended resource
    (``nvidia.com/mig-1g.10gb``) and ``nvidia.com/gpu`` counts only un-partitioned GPUs; with
    ``single`` every device is advertised as ``nvidia.com/gpu``.
    """

    product: str
    count: int
    memory_mib: int
    family: str
    compute_capability: tuple[int, int]
    mig_capable: bool = False
    mig_strategy: str = "none"
    mig_config: str = "all-disabled"
    mig_devices: Mapping[str, int] = field(default_factory=dict)
    driver_version: str = "550.90.07"
    cuda_version: str = "12.4"

    def __post_init__(self) -> None:
        if self.mig_strategy not in ("none", "single", "mixed"):
            raise ValueError(f"unknown MIG strategy {self.mig_strategy!r}")
        unknown = set(self.mig_devices) - set(MIG_PROFILES)
        if unknown:
            raise ValueError(f"unknown MIG profiles {sorted(unknown)}")
        if self.mig_devices and self.mig_strategy == "none":
            raise ValueError("MIG devices need the 'single' or 'mixed' strategy")
        if self.mig_strategy == "single" and len(self.mig_devices) != 1:
            raise ValueError("the 'single' strategy exposes exactly one MIG profile")

    def resources(self) -> dict[str, str]:
        """Extended resources the NVIDIA device plugin would advertise."""
        if self.mig_strategy == "single":
            return {"nvidia.com/gpu": str(sum(self.mig_devices.values()))}
        if self.mig_strategy == "mixed":
            whole_gpus = 0 if self.mig_devices else self.count
            resources = {"nvidia.com/gpu": str(whole_gpus)}
            resources.update({f"nvidia.com/mig-{p}": str(n) for p, n in self.mig_devices.items()})
            return resources
        return {"nvidia.com/gpu": str(self.count)}

    def labels(self, machine: str) -> dict[str, str]:
        """GPU Feature Discovery / GPU operator / MIG manager labels."""
        driver_major, driver_minor, driver_rev = self.driver_version.split(".")
        cuda_major, cuda_minor = self.cuda_version.split(".")
        labels = {
            "nvidia.com/gpu.present": "true",
            "nvidia.com/gpu.product": self.product,
            "nvidia.com/gpu.count": str(self.count),
            "nvidia.com/gpu.memory": str(self.memory_mib),
            "nvidia.com/gpu.family": self.family,
            "nvidia.com/gpu.compute.major": str(self.compute_capability[0]),
            "nvidia.com/gpu.compute.minor": str(self.compute_capability[1]),
            "nvidia.com/gpu.machine": machine,
            "nvidia.com/gpu.replicas": "1",
            "nvidia.com/gpu.sharing-strategy": "none",
            "nvidia.com/cuda.driver.major": driver_major,
            "nvidia.com/cuda.driver.minor": driver_minor,
            "nvidia.com/cuda.driver.rev": driver_rev,
            "nvidia.com/cuda.runtime.major": cuda_major,
            "nvidia.com/cuda.runtime.minor": cuda_minor,
            "nvidia.com/mig.capable": str(self.mig_capable).lower(),
            "nvidia.com/mig.strategy": self.mig_strategy,
            "nvidia.com/mig.config": self.mig_config,
            "nvidia.com/mig.config.state": "success",
        }
        for profile, count in self.mig_devices.items():
            labels.update(self._mig_labels(profile, count))
        if self.mig_strategy == "single":
            (profile,) = self.mig_devices
            labels["nvidia.com/gpu.product"] = f"{self.product}-MIG-{profile}"
            labels["nvidia.com/gpu.memory"] = str(MIG_PROFILES[profile].memory_mib)
        return labels

    def _mig_labels(self, profile: str, count: int) -> dict[str, str]:
        info = MIG_PROFILES[profile]
        prefix = f"nvidia.com/mig-{profile}"
        return {
            f"{prefix}.count": str(count),
            f"{prefix}.memory": str(info.memory_mib),
            f"{prefix}.multiprocessors": str(info.multiprocessors),
            f"{prefix}.product": f"{self.product}-MIG-{profile}",
            f"{prefix}.replicas": "1",
            f"{prefix}.slices.ci": str(info.slices),
            f"{prefix}.slices.gi": str(info.slices),
        }


@dataclass(frozen=True)
class NodeSpec:
    """One simulated node.  ``cpu`` is in cores; memory and ephemeral storage in GiB."""

    name: str
    cpu: int
    memory_gib: int
    pods: int = 110
    ephemeral_storage_gib: int = 500
    gpu: GpuSpec | None = None
    instance_type: str = "generic"
    zone: str = f"{REGION}a"
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Mapping[str, str], ...] = ()

    def all_labels(self) -> dict[str, str]:
        labels = {
            "kubernetes.io/hostname": self.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "node.kubernetes.io/instance-type": self.instance_type,
            "topology.kubernetes.io/region": REGION,
            "topology.kubernetes.io/zone": self.zone,
            "type": "kwok",
        }
        if self.gpu:
            labels.update(self.gpu.labels(self.instance_type))
        labels.update(self.labels)
        return labels

    def capacity(self) -> dict[str, str]:
        capacity = {
            "cpu": str(self.cpu),
            "memory": f"{self.memory_gib}Gi",
            "pods": str(self.pods),
            "ephemeral-storage": f"{self.ephemeral_storage_gib}Gi",
        }
        if self.gpu:
            capacity.update(self.gpu.resources())
        return capacity

    def allocatable(self) -> dict[str, str]:
        """Capacity minus what a kubelet typically reserves for the system."""
        reserved_cpu_milli = 100 + 10 * self.cpu
        reserved_memory_mib = 1024 + 8 * self.memory_gib
        allocatable = self.capacity()
        allocatable["cpu"] = f"{self.cpu * 1000 - reserved_cpu_milli}m"
        allocatable["memory"] = f"{self.memory_gib * 1024 - reserved_memory_mib}Mi"
        allocatable["ephemeral-storage"] = f"{self.ephemeral_storage_gib * 9 // 10}Gi"
        return allocatable

    def manifest(self) -> dict[str, Any]:
        """The ``Node`` object to create; KWOK fills conditions, addresses and node info."""
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": self.all_labels(),
                "annotations": {
                    KWOK_NODE_ANNOTATION: KWOK_NODE_ANNOTATION_VALUE,
                    "node.alpha.kubernetes.io/ttl": "0",
                },
            },
            "spec": {"taints": [dict(taint) for taint in self.taints]},
            "status": {"capacity": self.capacity(), "allocatable": self.allocatable()},
        }


A100_40GB = GpuSpec(
    product="A100-SXM4-40GB",
    count=8,
    memory_mib=40960,
    family="ampere",
    compute_capability=(8, 0),
    mig_capable=True,
)
H100_80GB = GpuSpec(
    product="NVIDIA-H100-80GB-HBM3",
    count=8,
    memory_mib=81559,
    family="hopper",
    compute_capability=(9, 0),
    mig_capable=True,
)
A100_80GB_MIG_1G = GpuSpec(
    product="A100-SXM4-80GB",
    count=8,
    memory_mib=81920,
    family="ampere",
    compute_capability=(8, 0),
    mig_capable=True,
    mig_strategy="mixed",
    mig_config="all-1g.10gb",
    mig_devices={"1g.10gb": 56},
)
A100_80GB_MIG_BALANCED = GpuSpec(
    product="A100-SXM4-80GB",
    count=8,
    memory_mib=81920,
    family="ampere",
    compute_capability=(8, 0),
    mig_capable=True,
    mig_strategy="mixed",
    mig_config="all-balanced",
    mig_devices={"1g.10gb": 16, "2g.20gb": 8, "3g.40gb": 8},
)


def default_inventory() -> list[NodeSpec]:
    """Two nodes of each kind over two zones: A100, H100, MIG-partitioned A100, CPU-only."""
    nodes: list[NodeSpec] = []
    for index, zone in enumerate((f"{REGION}a", f"{REGION}b")):
        nodes += [
            NodeSpec(
                f"gpu-a100-{index}",
                cpu=96,
                memory_gib=1152,
                ephemeral_storage_gib=3800,
                gpu=A100_40GB,
                instance_type="p4d.24xlarge",
                zone=zone,
            ),
            NodeSpec(
                f"gpu-h100-{index}",
                cpu=192,
                memory_gib=2048,
                ephemeral_storage_gib=7600,
                gpu=H100_80GB,
                instance_type="p5.48xlarge",
                zone=zone,
            ),
            NodeSpec(
                f"cpu-{index}",
                cpu=64,
                memory_gib=256,
                ephemeral_storage_gib=1000,
                instance_type="m6i.16xlarge",
                zone=zone,
            ),
        ]
    nodes += [
        NodeSpec(
            "gpu-a100-mig-0",
            cpu=96,
            memory_gib=1152,
            ephemeral_storage_gib=7600,
            gpu=A100_80GB_MIG_1G,
            instance_type="p4de.24xlarge",
            zone=f"{REGION}a",
        ),
        NodeSpec(
            "gpu-a100-mig-1",
            cpu=96,
            memory_gib=1152,
            ephemeral_storage_gib=7600,
            gpu=A100_80GB_MIG_BALANCED,
            instance_type="p4de.24xlarge",
            zone=f"{REGION}b",
        ),
    ]
    return nodes
