"""The unit of GPU quotas: GPUs, counted exactly in sevenths.

A whole GPU is 7 units; a MIG slice ``Ng.*`` is N units (N of the seven compute slices of its parent
GPU; ``inventory.mig`` parses the profiles). Quota limits are whole GPUs; usage and the amounts a
launch asks for are integer units, so sums and comparisons are exact, never floats.
"""

COMPUTE_SLICES_PER_GPU = 7
UNIT_NOTE = "MIG slices count as fractions of a GPU: a slice Ng.* is N/7 GPU (1g.10gb = 1/7 GPU)"


def format_gpus(units: int) -> str:
    """A GPU amount for people: ``2`` for whole GPUs, ``2.43`` for 17/7 (two decimals, for display
    only: the exact sevenths are what is stored and compared)."""
    whole, rest = divmod(int(units), COMPUTE_SLICES_PER_GPU)
    if not rest:
        return str(whole)
    hundredths = (rest * 200 + COMPUTE_SLICES_PER_GPU) // (2 * COMPUTE_SLICES_PER_GPU)  # half up
    return f"{whole}.{hundredths:02d}".rstrip("0")
