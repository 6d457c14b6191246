"""The MIG configurations valid for each GPU model, named as NVIDIA GPU Operator's default
``mig-parted`` configuration names them, with the slices each one yields per GPU."""

import re
from dataclasses import dataclass

from tenancy.gpu_units import UNIT_NOTE, UNITS_PER_GPU, format_gpus, format_gpus_exact  # noqa: F401


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
# GPU quotas are in GPUs (tenancy.gpu_units: exact integer 28ths of a GPU). A MIG slice counts the
# fraction of its parent GPU that its compute slices take: ``Ng.*`` is N/7 on the seven-slice GPUs
# (A100, H100, H200, B200) and N/4 on the four-slice ones (A30, RTX PRO 6000). Compute slices rather
# than memory slices because they are what a slice takes from everyone else: a 1g.10gb slice makes a
# seventh of the GPU's SMs unusable for other tenants.

# Profiles of the four-slice GPUs (A30; RTX PRO 6000). ``1g.24gb`` also exists on H100 94/96 GB (1/7):
# a name that may be either counts as the larger fraction, so no slice counts for less than it takes.
FOUR_SLICE_PROFILES = frozenset({"1g.6gb", "2g.12gb", "4g.24gb", "1g.24gb", "2g.48gb", "4g.96gb"})
_PROFILE = re.compile(r"^(?:nvidia\.com/)?(?:mig-)?((\d+)g\.\d+gb)")


def slice_units(mig_profile: str) -> int:
    """GPU units (28ths of a GPU) one slice of ``mig_profile`` takes (``3g.40gb`` → 12 = 3/7). A name
    that does not parse counts as a whole GPU, so an odd name never counts for less than it may take."""
    match = _PROFILE.match(mig_profile.strip())
    if not match:
        return UNITS_PER_GPU
    slices = int(match.group(2))
    per_gpu = 4 if match.group(1) in FOUR_SLICE_PROFILES else 7
    return min(UNITS_PER_GPU, slices * UNITS_PER_GPU // per_gpu)


def gpu_units(*, gpus: int = 0, mig_slices: dict[str, int] | None = None) -> int:
    """GPU units of whole GPUs plus MIG slices."""
    return UNITS_PER_GPU * gpus + sum(
        slice_units(profile) * count for profile, count in (mig_slices or {}).items()
    )


def offers(gpu_product: str, mig_profile: str) -> bool:
    """Whether a GPU model can be partitioned into slices of ``mig_profile`` (per the families above)."""
    family = family_for(gpu_product)
    return bool(family) and any(mig_profile in config for config in family.configs.values())
