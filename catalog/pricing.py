"""Cost metadata of compute and service profiles: the fields, their checks and the price an instance
keeps in its launch snapshot (``snapshot["price"]``), which billing meters against.

The price is per unit (hour, day or a month of 730 hours) under a billing model: *on demand* bills the
running time at ``amount`` and the stopped time (storage only) at ``stopped_amount``; *reserved* bills
``amount`` for the whole committed term the instance exists, whatever runs.
"""

import re
from decimal import Decimal, InvalidOperation

from catalog.models import ComputeProfile

COST_FIELDS = (
    "cost_currency",
    "cost_amount",
    "cost_period",
    "cost_billing_model",
    "cost_stopped_amount",
)

#: Seconds in one price unit. A month is 730 hours (365 days * 24 / 12), as cloud price lists count it.
UNIT_SECONDS = {"hour": 3600, "day": 86_400, "month": 730 * 3600}

_PLACES = Decimal(1).scaleb(-ComputeProfile._meta.get_field("cost_amount").decimal_places)


def amount_text(value) -> str:
    """A price as the database keeps it (4 places): a profile object just saved holds what was assigned
    ("2.4"), the same row read back "2.4000"; both give the same snapshot (and warm-pool digest)."""
    return str(Decimal(str(value)).quantize(_PLACES))


def check_cost(data: dict, errors: dict) -> None:
    """Put a message in ``errors`` for each bad cost field of ``data`` (a profile's fields)."""
    if not re.fullmatch(r"[A-Z]{3}", str(data.get("cost_currency", "USD"))):
        errors["cost_currency"] = "A three-letter ISO 4217 code, e.g. USD."
    for field in ("cost_amount", "cost_stopped_amount"):
        try:
            value = Decimal(str(data.get(field, 0)))
        except InvalidOperation:
            errors[field] = "A number."
            continue
        if not value.is_finite():
            errors[field] = "A number."
        elif value < 0:
            errors[field] = "Zero or more."
        elif value >= Decimal(10) ** 8:
            errors[field] = "Less than 100,000,000."
        elif value != value.quantize(_PLACES):
            errors[field] = "At most 4 decimal places."
    if data.get("cost_period", "hour") not in ComputeProfile.CostPeriod.values:
        errors["cost_period"] = "Per hour, per day or per month."
    model = data.get("cost_billing_model", ComputeProfile.BillingModel.ON_DEMAND)
    if model not in ComputeProfile.BillingModel.values:
        errors["cost_billing_model"] = "On demand or reserved."
    elif (
        model == ComputeProfile.BillingModel.RESERVED
        and "cost_stopped_amount" not in errors
        and Decimal(str(data.get("cost_stopped_amount", 0))) != 0
    ):
        errors["cost_stopped_amount"] = (
            "A reserved instance is billed its price for the whole term: no separate stopped price."
        )


def price_snapshot(profile) -> dict:
    """The cost metadata an instance of ``profile`` (compute or service) keeps from its launch."""
    return {
        "currency": profile.cost_currency,
        "amount": amount_text(profile.cost_amount),
        "period": profile.cost_period,
        "billing_model": profile.cost_billing_model,
        "stopped_amount": amount_text(profile.cost_stopped_amount),
    }
