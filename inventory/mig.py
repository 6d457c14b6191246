"""The MIG configurations valid for each GPU model, named as NVIDIA GPU Operator's default
``mig-parted`` configuration names them, with the slices each one yields per GPU."""

from dataclasses import dataclass


@dataclass(frozen=True)
class MigFamily:
    key: str
    description: str
    configs: dict[str, dict[str, int]]  # config name -> {profile: slices per GPU}


A100_40GB = MigFamily(
    key="a100-40gb",
    description="NVIDIA A100 40GB",
    configs={
        "all-disabled": {},
        "all-1g.5gb": {"1g.5gb": 7},
        "all-2g.10gb": {"2g.10gb": 3},
        "all-3g.20gb": {"3g.20gb": 2},
        "all-7g.40gb": {"7g.40gb": 1},
        "all-balanced": {"1g.5gb": 2, "2g.10gb": 1, "3g.20gb": 1},
    },
)
GPU_80GB_CONFIGS = {
    "all-disabled": {},
    "all-1g.10gb": {"1g.10gb": 7},
    "all-2g.20gb": {"2g.20gb": 3},
    "all-3g.40gb": {"3g.40gb": 2},
    "all-7g.80gb": {"7g.80gb": 1},
    "all-balanced": {"1g.10gb": 2, "2g.20gb": 1, "3g.40gb": 1},
}
A100_80GB = MigFamily(key="a100-80gb", description="NVIDIA A100 80GB", configs=GPU_80GB_CONFIGS)
H100_80GB = MigFamily(key="h100-80gb", description="NVIDIA H100 80GB", configs=GPU_80GB_CONFIGS)


def family_for(gpu_product: str) -> MigFamily | None:
    """The MIG family of a ``nvidia.com/gpu.product`` value, or None when the GPU cannot be partitioned."""
    product = gpu_product.upper()
    if "A100" in product and "40GB" in product:
        return A100_40GB
    if "A100" in product and "80GB" in product:
        return A100_80GB
    if "H100" in product and "80GB" in product:
        return H100_80GB
    return None


def valid_configs(gpu_product: str) -> list[str]:
    family = family_for(gpu_product)
    return sorted(family.configs) if family else []


def slices(gpu_product: str, config: str, gpus: int) -> dict[str, int]:
    """The MIG slices a node of ``gpus`` GPUs exposes under ``config``."""
    family = family_for(gpu_product)
    per_gpu = family.configs.get(config, {}) if family else {}
    return {profile: count * gpus for profile, count in per_gpu.items()}
