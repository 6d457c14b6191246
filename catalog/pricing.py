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

#: The cost fields added after the first three: a form or file that leaves them out means these.
COST_DEFAULTS = {"cost_billing_model": ComputeProfile.BillingModel.ON_DEMAND, "cost_stopped_amount": 0}

#: Seconds in one price unit. A month is 730 hours (365 days * 24 / 12), as cloud price lists count it.
UNIT_SECONDS = {"hour": 3600, "day": 86_400, "month": 730 * 3600}

_PLACES = Decimal(1).scaleb(-ComputeProfile._meta.get_field("cost_amount").decimal_places)


def amount_text(value) -> str:
    """A price as the database keeps it (4 places): a profile object just saved holds what was assigned
    ("2.4"), the same row read back "2.4000"; both give the same snapshot (and warm-pool digest)."""
    return str(Decimal(str(value)).quantize(_PLACES))


def cost_defaults(data: dict) -> None:
    """Fill the cost fields ``data`` (a form's cleaned data) left out or empty with their defaults."""
    for name, default in COST_DEFAULTS.items():
        if data.get(name) in (None, ""):
            data[name] = default


def check_cost_form(form) -> None:
    """Put ``check_cost``'s messages on a form's cost fields (those without an error of their own), so a
    form shows them with its other errors, before the service checks the same again."""
    data = {name: form.cleaned_data[name] for name in COST_FIELDS if name in form.cleaned_data}
    errors: dict = {}
    check_cost(data, errors)
    for name, message in errors.items():
        if name in data and name not in form.errors:
            form.add_error(name, message)


CURRENCY = re.compile(r"[A-Z]{3}")


def is_currency(value) -> bool:
    """An ISO 4217 code as prices, rates and budgets carry it: three capital letters."""
    return isinstance(value, str) and CURRENCY.fullmatch(value) is not None


def check_cost(data: dict, errors: dict) -> None:
    """Put a message in ``errors`` for each bad cost field of ``data`` (a profile's fields)."""
    if not is_currency(str(data.get("cost_currency", "USD"))):
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


def _shown(amount) -> str:
    """A price for people: at least 2 places, more only where the price has them (0.0137 stays)."""
    value = Decimal(str(amount))
    cents = value.quantize(Decimal("0.01"))
    return f"{cents if cents == value else value.normalize():f}"


def price_of(source) -> dict:
    """The price of a profile, or a launch snapshot's ``price`` as it is (``{}`` without one)."""
    if isinstance(source, dict):
        return source
    return price_snapshot(source) if source is not None else {}


def price_label(source) -> str:
    """ "2.50 USD per hour, on demand" or "reserved, 700.00 USD per month" (a profile or a snapshot price)."""
    price = price_of(source)
    if not price:
        return ""
    unit = f"{_shown(price.get('amount', 0))} {price.get('currency', '')} per {price.get('period', 'hour')}"
    if price.get("billing_model") == "reserved":
        return f"reserved, {unit}"
    return f"{unit}, on demand"


def stopped_label(source) -> str:
    """What a stopped (or deleting) instance costs: on demand only; a reserved term bills whatever runs."""
    price = price_of(source)
    if not price:
        return ""
    if price.get("billing_model") == "reserved":
        return "the same while stopped (billed for the whole term)"
    if Decimal(str(price.get("stopped_amount") or 0)) == 0:
        return "nothing while stopped"
    return (
        f"{_shown(price['stopped_amount'])} {price.get('currency', '')} per {price.get('period', 'hour')} "
        "while stopped (storage only)"
    )
