"""The billing API's question and its answer's figures: which meters, which period, one page of rows and
the period's totals. Shared by the JSON pages (``usage_views``) and the CSV export (``billing.usage_export``).

Every row starts from ``billing.selectors.meters_visible(user)``; the filters only narrow it. The
period's totals likewise, except an operator's: the provider bills orgs, so their totals count every
org's meters (``meters_billed``) unless a workspace or profile filter asks for an org's insides (then
only what a support access shows them, as the rows). Figures
are exact values rounded once (half up): costs and billable hours to 6 places, seconds are integers. A
row's cost and a total are each the exact figure rounded, so a total may differ from the sum of its
rounded rows by less than a millionth per row.

A walk through the pages of a period still running is one snapshot: the first page's instant goes into
``next`` (``as_of``) and every following page counts up to it, so instances started or stopped meanwhile
change no figure of the walk. A period that has ended needs none (it never changes).
"""

import datetime as dt
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import QuerySet
from django.utils.dateparse import parse_datetime

from billing import costs
from billing.models import Meter
from billing.periods import parse_period
from billing.selectors import (
    meters_billed,
    meters_in_period,
    meters_visible,
    period_figures,
    seconds_by_price,
)
from catalog.models import ComputeProfile
from inventory.selectors import cluster_list_for
from paas.errors import ValidationFailed
from paas.validation import is_id
from tenancy.selectors import org_list_for, project_list_for

PLACES = Decimal("0.000001")
HOUR = Decimal(3600)
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500
BILLING_MODELS = tuple(ComputeProfile.BillingModel.values)


def money(value: Decimal) -> str:
    return str(costs.money(value))


def hours(seconds: int) -> str:
    return str((Decimal(seconds) / HOUR).quantize(PLACES, rounding=ROUND_HALF_UP))


@dataclass
class UsageQuery:
    """A parsed, checked request: the period, the filtered meters and the page asked for."""

    start: dt.datetime
    end: dt.datetime
    now: dt.datetime
    meters: QuerySet[Meter]  # visible, existing in the period, filtered; ordered by id
    billed: QuerySet[Meter] | None = None  # what the totals count, when not ``meters`` (operators)
    page_size: int = DEFAULT_PAGE_SIZE
    after: int | None = None
    filters: dict = field(default_factory=dict)
    until: dt.datetime | None = None  # the figures count up to here: min(end, as_of or now)

    @property
    def closed(self) -> bool:
        """The period has ended: its figures never change any more."""
        return self.end <= self.now

    @property
    def as_of(self) -> dt.datetime:
        return self.until or min(self.end, self.now)


def _text(params, name: str, errors: dict, *, max_length: int) -> str | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if "\x00" in raw or not raw.isprintable():
        errors[name] = "Printable characters only."
    elif len(raw) > max_length:
        errors[name] = f"At most {max_length} characters."
    else:
        return raw
    return None


def _number(params, name: str, errors: dict, *, what: str = "An id (a number).") -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if not is_id(raw):
        errors[name] = what
        return None
    return int(raw)


def _choice(params, name: str, choices, errors: dict) -> str | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if raw not in choices:
        errors[name] = f"One of: {', '.join(choices)}."
        return None
    return raw


def _as_of(params, errors: dict, *, now: dt.datetime) -> dt.datetime | None:
    raw = _text(params, "as_of", errors, max_length=40)
    if raw is None:
        return None
    try:
        moment = parse_datetime(raw) if raw.isascii() else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        errors["as_of"] = "A date and time with its offset, as the previous page's next link gave it."
        return None
    try:
        moment = moment.astimezone(dt.UTC).replace(microsecond=0)
    except OverflowError:
        moment = None
    if moment is None or moment > now:
        errors["as_of"] = "Not in the future."
        return None
    return moment


def parse(params, *, user, now: dt.datetime) -> UsageQuery:
    """Check the query string (``start``, ``end``, ``org``, ``project``, ``profile``, ``profile_id``,
    ``cluster``, ``kind``, ``billing_model``, ``page_size``, ``after``): every mistake is reported at
    once, by name (a 400); an org, workspace or cluster the caller cannot see is reported exactly as one
    that does not exist."""
    errors: dict[str, str] = {}
    bounds = {name: _text(params, name, errors, max_length=40) for name in ("start", "end")}
    start = end = None
    if not {"start", "end"} & set(errors):
        try:  # non-ASCII digits, NUL and years out of range included
            start, end = parse_period(bounds["start"], bounds["end"], now=now)
        except ValidationFailed as exc:
            errors.update({k: v[0] for k, v in exc.fields.items()})
    org = _number(params, "org", errors)
    project = _number(params, "project", errors)
    profile_id = _number(params, "profile_id", errors)
    profile = _text(params, "profile", errors, max_length=200)
    cluster = _text(params, "cluster", errors, max_length=63)
    kind = _choice(params, "kind", Meter.Kind.values, errors)
    billing_model = _choice(params, "billing_model", BILLING_MODELS, errors)
    size_message = f"A whole number from 1 to {MAX_PAGE_SIZE}."
    page_size = _number(params, "page_size", errors, what=size_message)
    if page_size is not None and not 1 <= page_size <= MAX_PAGE_SIZE:
        errors["page_size"] = size_message
    after = _number(params, "after", errors, what="A meter id (the last one of the previous page).")
    as_of = _as_of(params, errors, now=now)

    visible = meters_visible(user)
    # Existence checks, through what the caller may see: another org's id reads as an unknown one.
    if org is not None and not org_list_for(user).filter(pk=org).exists():
        errors["org"] = "No such organization."
    if project is not None and not project_list_for(user).filter(pk=project).exists():
        errors["project"] = "No such workspace."
    if cluster is not None and not (
        visible.filter(cluster_name=cluster).exists() or cluster_list_for(user).filter(name=cluster).exists()
    ):
        errors["cluster"] = "No such cluster."
    if errors:
        raise ValidationFailed("Invalid billing usage query.", fields=errors)

    until = min(end, as_of or now, now)
    if until <= start and as_of is not None:
        raise ValidationFailed(
            "Invalid billing usage query.",
            fields={"as_of": "Within the period, as the previous page gave it."},
        )
    billed = visible if project is not None or profile is not None or profile_id is not None else None
    billed = billed if billed is not None else meters_billed(user)
    # A period that has not begun yet has nothing to count.
    meters = meters_in_period(visible, start=start, end=until) if until > start else visible.none()
    counted = meters_in_period(billed, start=start, end=until) if until > start else billed.none()
    until = max(until, start)
    filters = {
        "org": org,
        "project": project,
        "profile": profile,
        "profile_id": profile_id,
        "cluster": cluster,
        "kind": kind,
        "billing_model": billing_model,
    }
    lookups = {
        "org_id": org,
        "project_id": project,
        "profile_name": profile,
        "profile_id": profile_id,
        "cluster_name": cluster,
        "kind": kind,
        "billing_model": billing_model,
    }
    chosen = {k: v for k, v in lookups.items() if v is not None}
    meters = meters.filter(**chosen).order_by("pk")
    return UsageQuery(
        start=start,
        end=end,
        now=now,
        meters=meters,
        billed=counted.filter(**chosen).order_by("pk"),
        page_size=page_size or DEFAULT_PAGE_SIZE,
        after=after,
        filters={k: v for k, v in filters.items() if v is not None},
        until=until,
    )


def _instance_id(meter: Meter) -> int:
    return int(meter.instance_key.split(":", 1)[1])


def usage_row(figures: dict) -> dict:
    """One row of the answer (JSON shape) from ``period_figures``' entry for a meter."""
    meter: Meter = figures["meter"]
    return {
        "meter": meter.pk,
        "instance": {
            "kind": meter.kind,
            "id": _instance_id(meter),
            "name": meter.name,
            "launched_at": meter.created_at.isoformat().replace("+00:00", "Z"),
            "deleted_at": meter.ended_at.isoformat().replace("+00:00", "Z") if meter.ended_at else None,
        },
        "org": {"id": meter.org_id, "name": meter.org_name},
        "project": {"id": meter.project_id, "name": meter.project_name},
        "owner": {"id": meter.owner_id, "name": meter.owner_repr},
        "profile": {"id": meter.profile_id, "name": meter.profile_name},
        "cluster": {"id": meter.cluster_id, "name": meter.cluster_name},
        "price": {
            "currency": meter.currency,
            "amount": str(meter.amount),
            "unit": meter.unit,
            "billing_model": meter.billing_model,
            "stopped_amount": str(meter.stopped_amount),
        },
        "running_seconds": figures["running_seconds"],
        "stopped_seconds": figures["stopped_seconds"],
        "deleting_seconds": figures["deleting_seconds"],
        "existing_seconds": figures["existing_seconds"],
        "billable_seconds": figures["billable_seconds"],
        "billable_hours": hours(figures["billable_seconds"]),
        "cost": money(figures["cost"]),
    }


def page(query: UsageQuery) -> tuple[list[dict], int | None]:
    """One page of rows after ``query.after`` (keyset on the meter id: a meter created meanwhile never
    shifts a page) and the id to continue after, or None on the last page. Two queries whatever the size."""
    meters = query.meters
    if query.after is not None:
        meters = meters.filter(pk__gt=query.after)
    chunk = list(meters[: query.page_size + 1])
    more = len(chunk) > query.page_size
    chunk = chunk[: query.page_size]
    rows = [usage_row(f) for f in period_figures(chunk, start=query.start, end=query.as_of, now=query.now)]
    return rows, (chunk[-1].pk if more else None)


def chunks(query: UsageQuery, size: int = 1000):
    """Every row of the filtered period, ``size`` meters at a time (keyset), for the export."""
    after = 0
    while True:
        chunk = list(query.meters.filter(pk__gt=after)[:size])
        if not chunk:
            return
        yield [usage_row(f) for f in period_figures(chunk, start=query.start, end=query.as_of, now=query.now)]
        if len(chunk) < size:
            return
        after = chunk[-1].pk


# Per price: the meters' count and existing seconds, and their intervals' seconds by kind, summed in
# two passes (no per-meter grouping): what the whole period's totals need.

_FIGURES = ("instances", "running_seconds", "stopped_seconds", "deleting_seconds", "existing_seconds")


def totals(query: UsageQuery) -> list[dict]:
    """The whole filtered period's totals per currency, on-demand and reserved apart (one query: the
    seconds are summed per price in SQL, priced here by ``billing.costs``, the one formula)."""
    counted = query.billed if query.billed is not None else query.meters
    groups = seconds_by_price(counted, start=query.start, end=query.as_of, now=query.now)
    by_currency: dict[str, dict] = {}
    for currency, model, unit, amount, stopped_amount, *seconds in groups:
        count, running, stopped, deleting, existing = (int(v) for v in seconds)
        entry = by_currency.setdefault(
            currency,
            {
                "cost": Decimal(0),
                **{m: dict.fromkeys(_FIGURES, 0) | {"cost": Decimal(0)} for m in BILLING_MODELS},
            },
        )
        part = entry[model if model in BILLING_MODELS else costs.RESERVED]
        for name, value in zip(_FIGURES, (count, running, stopped, deleting, existing), strict=True):
            part[name] += value
        cost = costs.list_cost(
            amount=amount,
            stopped_amount=stopped_amount,
            unit=unit,
            billing_model=model,
            running=running,
            stopped=stopped,
            deleting=deleting,
            existing=existing,
        )
        part["cost"] += cost
        entry["cost"] += cost
    out = []
    for currency in sorted(by_currency):
        entry = by_currency[currency]
        item = {"currency": currency, "cost": money(entry["cost"])}
        for model in BILLING_MODELS:
            part = entry[model]
            billable = costs.billable_seconds(
                billing_model=model, running=part["running_seconds"], existing=part["existing_seconds"]
            )
            item[model] = {
                **{name: part[name] for name in _FIGURES},
                "billable_seconds": billable,
                "billable_hours": hours(billable),
                "cost": money(part["cost"]),
            }
        out.append(item)
    return out


def iso(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def period_of(query: UsageQuery) -> dict:
    return {
        "start": iso(query.start),
        "end": iso(query.end),
        "as_of": iso(query.as_of),
        "closed": query.closed,
    }
