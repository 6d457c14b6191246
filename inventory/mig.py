"""The MIG configurations valid for each GPU model, named as NVIDIA GPU Operator's default
``mig-parted`` configuration names them, with the slices each one yields per GPU."""

import re
from dataclasses import dataclass

from tenancy.gpu_units import COMPUTE_SLICES_PER_GPU, UNIT_NOTE, format_gpus  # noqa: F401 (re-exported)


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


# --- the GPU quota unit -------------------------------------------------------------------------------
#
# GPU quotas are in GPUs. A whole GPU counts 1; a MIG slice counts the fraction of its parent GPU that
# its compute slices take: ``Ng.*`` is N/7 of a GPU (every MIG-capable GPU the platform knows, A100
# and H100, has seven compute slices: ``1g.10gb`` = 1/7, ``3g.40gb`` = 3/7, ``7g.80gb`` = 1 GPU).
# Compute slices rather than memory slices (eight per GPU) because they are what a slice takes from
# other tenants: a 1g.10gb slice makes one seventh of the GPU's SMs unusable for anyone else.
# Quota arithmetic is exact: amounts are integer *sevenths of a GPU* ("GPU units"), never floats.

# The unit itself (sevenths, their display) is tenancy's, beside the Quota model it measures.
_COMPUTE = re.compile(r"^(?:nvidia\.com/)?(?:mig-)?(\d+)g\.")


def compute_slices(mig_profile: str) -> int:
    """The compute slices a MIG profile takes (``3g.40gb`` → 3). A name without one counts as a whole
    GPU, so an odd name can never count for less than what it may take."""
    match = _COMPUTE.match(mig_profile.strip())
    return int(match.group(1)) if match else COMPUTE_SLICES_PER_GPU


def gpu_units(*, gpus: int = 0, mig_slices: dict[str, int] | None = None) -> int:
    """Sevenths of a GPU: whole GPUs count seven each, each MIG slice its compute slices."""
    return COMPUTE_SLICES_PER_GPU * gpus + sum(
        compute_slices(profile) * count for profile, count in (mig_slices or {}).items()
    )


def offers(gpu_product: str, mig_profile: str) -> bool:
    """Whether a GPU model can be partitioned into slices of ``mig_profile`` (per the families above)."""
    family = family_for(gpu_product)
    return bool(family) and any(mig_profile in config for config in family.configs.values())
