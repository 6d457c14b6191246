"""The unit of GPU quotas: GPUs, counted exactly in 28ths ("GPU units").

A whole GPU is 28 units. A MIG slice counts the fraction of its parent GPU its compute slices take
(``inventory.mig`` parses the profiles): ``Ng.*`` is N/7 GPU on the seven-slice GPUs (A100, H100,
H200, B200: ``1g.10gb`` = 1/7 = 4 units) and N/4 on the four-slice ones (A30, RTX PRO 6000:
``4g.24gb`` = a whole GPU). 28 is the least common multiple, so every slice is a whole number of
units: quota limits are whole GPUs, usage and what a launch asks for are integer units, and sums and
comparisons are exact, never floats.
"""

from fractions import Fraction

UNITS_PER_GPU = 28
UNIT_NOTE = (
    "MIG slices count as fractions of a GPU: a slice Ng.* is N/7 GPU (1g.10gb = 1/7 GPU; N/4 on "
    "four-slice GPUs such as the A30)"
)


def format_gpus(units: int) -> str:
    """A GPU amount for people: ``2`` for whole GPUs, ``2.43`` for 17/7 (two decimals, rounded half up,
    for display only: the exact units are what is stored and compared)."""
    whole, rest = divmod(int(units), UNITS_PER_GPU)
    if not rest:
        return str(whole)
    hundredths = (rest * 200 + UNITS_PER_GPU) // (2 * UNITS_PER_GPU)
    return f"{whole}.{hundredths:02d}".rstrip("0")


def format_gpus_exact(units: int) -> str:
    """``2``, or ``2.43 (17/7)`` when a fraction of a GPU is involved (the exact fraction in brackets)."""
    text = format_gpus(units)
    return text if units % UNITS_PER_GPU == 0 else f"{text} ({Fraction(int(units), UNITS_PER_GPU)})"
