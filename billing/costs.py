"""What metered time costs: at the list price of the launch snapshot and at a cluster's chargeback rates.

The one place these formulas live: the roll-up, the billing API, the dashboards and the budgets all
call them (with seconds summed from intervals or usage records), so their figures agree.
"""

from decimal import ROUND_HALF_UP, Decimal

from catalog.pricing import UNIT_SECONDS

RESERVED = "reserved"
HOUR = Decimal(3600)
MICRO = Decimal("0.000001")
CENT = Decimal("0.01")


def money(value) -> Decimal:
    """A cost as it is stored and answered: 6 places, half up."""
    return Decimal(value).quantize(MICRO, rounding=ROUND_HALF_UP)


def money_shown(value) -> str:
    """A cost as pages and emails show it: 2 places, thousands separated ("1,234.50")."""
    return f"{Decimal(value).quantize(CENT):,}"


def list_cost(
    *,
    amount: Decimal,
    stopped_amount: Decimal,
    unit: str,
    billing_model: str,
    running: int,
    stopped: int,
    deleting: int,
    existing: int,
) -> Decimal:
    """The list-price cost of a meter's seconds: on demand, running time at ``amount`` and storage-only
    time (stopped, deleting) at ``stopped_amount``; reserved, ``amount`` for every second it exists."""
    per = Decimal(UNIT_SECONDS.get(unit, 3600))
    if billing_model == RESERVED:
        return Decimal(amount) * existing / per
    return (Decimal(amount) * running + Decimal(stopped_amount) * (stopped + deleting)) / per


def billable_seconds(*, billing_model: str, running: int, existing: int) -> int:
    """The time the price is charged for ("$1/hr and 720 hours"): running time on demand, the whole
    existence reserved."""
    return existing if billing_model == RESERVED else running


def chargeback_cost(*, rates, meter, running: int, storage: int) -> Decimal:
    """What ``meter``'s resources cost at a cluster's ``rates`` (a ``CostProfile``): GPUs by model, MIG
    slices, CPU and memory for the ``running`` seconds; storage for the ``storage`` seconds (running,
    stopped and deleting alike). GPU models or MIG profiles without a rate cost nothing."""
    per_second = Decimal(0)
    for model, count in (meter.gpus_by_model or {}).items():
        per_second += Decimal(str(rates.gpu_hour.get(model, 0))) * int(count)
    for profile, count in (meter.mig_slices or {}).items():
        per_second += Decimal(str(rates.mig_slice_hour.get(profile, 0))) * int(count)
    per_second += Decimal(rates.cpu_hour) * Decimal(meter.cpu_millis) / 1000
    per_second += Decimal(rates.memory_gib_hour) * Decimal(meter.memory_gib)
    running_cost = per_second * running
    storage_cost = Decimal(rates.storage_gib_hour) * Decimal(meter.storage_gib) * storage
    return (running_cost + storage_cost) / HOUR
