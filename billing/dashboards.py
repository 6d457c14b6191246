"""Chargeback and dashboards: cost and usage aggregated from the hourly usage records.

Every figure starts from :func:`billing.selectors.meters_visible` (org admins: their org; workspace
viewers: their workspace; operators: the orgs their support access opens), so a page, the API and a CSV
show the same numbers to the same person and nothing of another tenant. Operators' totals (grouped by
org, cluster or GPU model, with no workspace or profile filter) count every org's meters
(:func:`billing.selectors.meters_billed`): the provider bills orgs, not their workspaces.

* **cost**: at the list price of the launch snapshot, per currency; **chargeback**: at the clusters'
  cost profiles (records without one count nothing there, and say so);
* **running**, **GPU** and **idle GPU** time in seconds. Idle GPU time is known only where the
  cluster's Prometheus gave a utilisation for the hour: a group none of whose records has one is
  "not configured" (``None``), never zero; a group with some is "partial" and says how many GPU-seconds
  were measured;
* grouped by org, project, user (who launched), profile, cluster or GPU model, and over time in hour,
  day or month buckets (UTC). Grouped by GPU model, a record's figures are shared among its models in
  proportion to their GPU-seconds; records without GPUs form the group "no GPU".

Operators also get the warm pools' standby GPU time (``standby_figures``): the provider's cost of
keeping capacity warm, never part of a tenant's figures.

The usage records cover the hours the roll-up has completed (``rolled_up_until``); a period's figures
equal :func:`billing.selectors.period_figures` summed over the same meters once its hours are rolled up.
"""

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from urllib.parse import urlencode

from django.db import connection
from django.db.models import QuerySet

from billing.costs import money_shown
from billing.models import Meter, RollupState
from billing.periods import UTC, parse_period
from billing.selectors import meters_billed, meters_in_period, meters_visible, now_second
from inventory.models import Cluster
from paas import authz
from paas.errors import ValidationFailed

GROUPS = {
    "org": "organization",
    "project": "workspace",
    "user": "user",
    "profile": "profile",
    "cluster": "cluster",
    "gpu_model": "GPU model",
}
BUCKETS = ("hour", "day", "month")
FILTERS = ("org", "project", "cluster", "profile")
# Groupings that are totals of an org (or of the platform's capacity), not its insides: an operator sees
# them over every org (``meters_billed``); any other grouping shows only what ``meters_visible`` gives.
TOTAL_GROUPS = ("org", "cluster", "gpu_model")
MAX_BUCKETS = 2000
NO_GPU = "no GPU"
SIX = Decimal("0.000001")

# (key expression, label expression) over the meter ``m`` (and the GPU-model split ``g``)
_GROUP_SQL = {
    "org": ("m.org_id::text", "m.org_name"),
    "project": ("m.project_id::text", "m.org_name || '/' || m.project_name"),
    "user": ("m.owner_id::text", "m.owner_repr"),
    "profile": ("m.kind || ':' || m.profile_id::text", "m.profile_name || ' (' || m.kind || ')'"),
    "cluster": ("m.cluster_id::text", "m.cluster_name"),
    "gpu_model": ("g.model", "COALESCE(g.model, %(no_gpu)s)"),
}


@dataclass(frozen=True)
class CostQuery:
    start: dt.datetime
    end: dt.datetime
    group_by: str = "project"
    bucket: str = "day"
    org: int | None = None
    project: int | None = None
    cluster: int | None = None
    profile: int | None = None


@dataclass
class Figures:
    """Sums of one group (or bucket of a group, or everything)."""

    costs: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    chargeback_costs: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    unpriced_records: int = 0  # records without a chargeback rate (no cost profile)
    records: int = 0
    running_seconds: Decimal = Decimal(0)
    gpu_seconds: Decimal = Decimal(0)
    measured_gpu_seconds: Decimal = Decimal(0)
    idle_known: Decimal = Decimal(0)
    measured_records: int = 0

    def add(self, row: dict) -> None:
        if row["cost"] is not None:
            self.costs[row["currency"]] += row["cost"]
        if row["chargeback_cost"] is not None and row["chargeback_n"]:
            self.chargeback_costs[row["chargeback_currency"]] += row["chargeback_cost"]
        self.unpriced_records += row["records"] - row["chargeback_n"]
        self.records += row["records"]
        self.running_seconds += row["running"] or 0
        self.gpu_seconds += row["gpu"] or 0
        self.measured_gpu_seconds += row["measured_gpu"] or 0
        self.idle_known += row["idle"] or 0
        self.measured_records += row["measured_n"]

    @property
    def utilisation(self) -> str:
        """measured (every record with GPUs has a utilisation), partial, not_configured, or no_gpu."""
        if not self.gpu_seconds:
            return "no_gpu"
        if not self.measured_records:
            return "not_configured"
        return "measured" if self.measured_gpu_seconds >= self.gpu_seconds else "partial"

    @property
    def idle_gpu_seconds(self) -> int | None:
        """Idle-but-allocated GPU-seconds over the measured records; None when none was measured."""
        return round(self.idle_known) if self.measured_records else None

    def as_dict(self) -> dict:
        return {
            "costs": {cur: str(q6(v)) for cur, v in sorted(self.costs.items())},
            "chargeback_costs": {cur: str(q6(v)) for cur, v in sorted(self.chargeback_costs.items())},
            "chargeback_complete": self.unpriced_records == 0,
            "running_seconds": round(self.running_seconds),
            "gpu_seconds": round(self.gpu_seconds),
            "idle_gpu_seconds": self.idle_gpu_seconds,
            "measured_gpu_seconds": round(self.measured_gpu_seconds),
            "utilisation": self.utilisation,
        }


def q6(value: Decimal) -> Decimal:
    return Decimal(value).quantize(SIX)


# --- input ----------------------------------------------------------------------------------------------


def _id(params, name: str, errors: dict) -> int | None:
    text = (params.get(name) or "").strip()
    if not text:
        return None
    if not text.isdigit() or len(text) > 18:
        errors[name] = "An id (a whole number)."
        return None
    return int(text)


def parse_query(params, *, now: dt.datetime | None = None) -> CostQuery:
    """A :class:`CostQuery` from a query string (``start``, ``end``, ``group_by``, ``bucket``, ``org``,
    ``project``, ``cluster``, ``profile``); ValidationFailed with every field's message."""
    now = now or now_second()
    errors: dict[str, str] = {}
    start = end = None
    try:
        start, end = parse_period(params.get("start"), params.get("end"), now=now)
    except ValidationFailed as exc:
        errors.update({k: v[0] for k, v in exc.fields.items()})
    else:
        for name, moment in (("start", start), ("end", end)):
            if moment.minute or moment.second:
                errors[name] = "Usage is counted by the hour: a date, or a time on the hour (UTC)."
    group_by = (params.get("group_by") or "project").strip()
    if group_by not in GROUPS:
        errors["group_by"] = f"One of: {', '.join(GROUPS)}."
    bucket = (params.get("bucket") or "day").strip()
    if bucket not in BUCKETS:
        errors["bucket"] = f"One of: {', '.join(BUCKETS)}."
    ids = {name: _id(params, name, errors) for name in FILTERS}
    too_long = start is not None and (end - start) > dt.timedelta(hours=MAX_BUCKETS)
    if not errors and bucket == "hour" and too_long:
        errors["bucket"] = f"At most {MAX_BUCKETS} hours: choose a shorter period or day buckets."
    if errors:
        raise ValidationFailed("Invalid dashboard query.", fields=errors)
    return CostQuery(start=start, end=end, group_by=group_by, bucket=bucket, **ids)


# --- figures --------------------------------------------------------------------------------------------


def meters_for(user, query: CostQuery) -> QuerySet[Meter]:
    """The meters ``user`` may see, narrowed by the query's filters (a filter on something they cannot
    see matches nothing: it shows nothing, never another tenant's figures). Totals (``TOTAL_GROUPS``,
    no workspace or profile filter) over ``meters_billed``, anything finer over ``meters_visible``."""
    totals = query.group_by in TOTAL_GROUPS and query.project is None and query.profile is None
    meters = meters_billed(user) if totals else meters_visible(user)
    if query.org is not None:
        meters = meters.filter(org_id=query.org)
    if query.project is not None:
        meters = meters.filter(project_id=query.project)
    if query.cluster is not None:
        meters = meters.filter(cluster_id=query.cluster)
    if query.profile is not None:
        meters = meters.filter(profile_id=query.profile)
    return meters_in_period(meters, start=query.start, end=query.end)


def _rows(meters: QuerySet[Meter], query: CostQuery) -> list[dict]:
    meter_sql, meter_params = meters.order_by().values("pk").query.sql_with_params()
    key, label = _GROUP_SQL[query.group_by]
    if query.group_by == "gpu_model":
        split = (
            "LEFT JOIN LATERAL (SELECT e.key AS model, e.value::numeric / NULLIF(r.gpu_seconds, 0) AS share"
            " FROM jsonb_each_text(r.gpu_seconds_by_model) e) g ON r.gpu_seconds > 0"
        )
        share = "COALESCE(g.share, 1)"
    else:
        split, share = "", "1"
    # Only fixed fragments of this module go into the text (the group's expressions by a checked name);
    # every value is a parameter, the meters' own query embedded with its own parameters (%s each).
    sql = f"""
        SELECT date_trunc(%s, r.hour, 'UTC') AS bucket, {key} AS key, MAX({label}) AS label,
               r.currency, r.chargeback_currency,
               SUM(r.cost * {share}) AS cost,
               SUM(r.chargeback_cost * {share}) AS chargeback_cost,
               COUNT(r.chargeback_cost) AS chargeback_n,
               COUNT(*) AS records,
               SUM(r.running_seconds * {share}) AS running,
               SUM(r.gpu_seconds * {share}) AS gpu,
               SUM(CASE WHEN r.idle_gpu_seconds IS NULL THEN 0 ELSE r.gpu_seconds * {share} END)
                   AS measured_gpu,
               SUM(r.idle_gpu_seconds * {share}) AS idle,
               COUNT(r.idle_gpu_seconds) FILTER (WHERE r.gpu_seconds > 0) AS measured_n,
               array_agg(DISTINCT m.cluster_id) AS clusters
        FROM billing_usagerecord r
        JOIN billing_meter m ON m.id = r.meter_id
        {split}
        WHERE r.hour >= %s AND r.hour < %s AND r.meter_id IN ({meter_sql})
        GROUP BY 1, 2, r.currency, r.chargeback_currency
        ORDER BY 1, 2
    """  # noqa: S608
    sql = sql.replace("%(no_gpu)s", "%s")
    params: list = [query.bucket]
    if query.group_by == "gpu_model":
        params.append(NO_GPU)
    params += [query.start, query.end, *meter_params]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        names = [c.name for c in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def rolled_up_until() -> dt.datetime | None:
    state = RollupState.objects.filter(name="hourly").first()
    return state.complete_until if state else None


def buckets(query: CostQuery) -> list[dt.datetime]:
    """Every bucket start of the period (so a chart shows empty hours, days or months as such)."""
    out, moment = [], query.start
    if query.bucket == "day":
        moment = moment.replace(hour=0)
    elif query.bucket == "month":
        moment = moment.replace(day=1, hour=0)
    while moment < query.end:
        out.append(moment)
        if query.bucket == "hour":
            moment += dt.timedelta(hours=1)
        elif query.bucket == "day":
            moment += dt.timedelta(days=1)
        else:
            moment = (moment + dt.timedelta(days=32)).replace(day=1)
    return out


def cost_figures(user, query: CostQuery) -> dict:
    """Everything a dashboard shows for ``user``: totals, per group, per bucket and group, the notes on
    utilisation, and for operators the warm pools' standby time (the provider's)."""
    meters = meters_for(user, query)
    rows = _rows(meters, query)
    totals = Figures()
    groups: dict[str | None, Figures] = defaultdict(Figures)
    labels: dict[str | None, str] = {}
    series: dict[tuple, Figures] = defaultdict(Figures)
    cluster_ids: set[int] = set()
    for row in rows:
        row["bucket"] = row["bucket"].astimezone(UTC)
        totals.add(row)
        groups[row["key"]].add(row)
        series[(row["bucket"], row["key"])].add(row)
        labels[row["key"]] = row["label"] or "(none)"
        cluster_ids.update(c for c in row["clusters"] if c is not None)
    ordered = sorted(groups, key=lambda k: (-sum(groups[k].costs.values()), labels[k]))
    return {
        "query": query,
        "rolled_up_until": rolled_up_until(),
        "currencies": sorted(set(totals.costs) | set(totals.chargeback_costs)),
        "totals": totals,
        "groups": [(k, labels[k], groups[k]) for k in ordered],
        "series": series,
        "buckets": buckets(query),
        "utilisation_notes": utilisation_notes(cluster_ids),
        "standby": standby_figures(user, query) if authz.is_operator(user) else None,
    }


def utilisation_notes(cluster_ids: set[int]) -> list[str]:
    """ "utilisation not configured for cluster X" for each cluster in the figures without Prometheus."""
    names = Cluster.objects.filter(pk__in=cluster_ids, prometheus_url="").order_by("name")
    return [
        f"GPU utilisation not configured for cluster {name}" for name in names.values_list("name", flat=True)
    ]


def standby_figures(user, query: CostQuery) -> dict | None:
    """The warm pools' standby GPU-seconds per bucket and cluster (operators only; the provider's cost,
    from a standby's creation until it was claimed or retired, or now)."""
    if not authz.is_operator(user):
        return None
    cluster_filter = "AND s.cluster_id = %s" if query.cluster is not None else ""
    unit = {"hour": "1 hour", "day": "1 day", "month": "1 month"}[query.bucket]
    sql = f"""
        WITH s AS (
            SELECT s.cluster_id, s.gpus,
                   GREATEST(date_trunc('second', s.created_at), %s) AS a,
                   LEAST(date_trunc('second', COALESCE(s.claimed_at, s.retired_at, %s)), %s) AS b
            FROM instances_standbyinstance s
            WHERE s.gpus > 0 AND s.created_at < %s AND COALESCE(s.claimed_at, s.retired_at, %s) > %s
            {cluster_filter}
        ), k AS (
            SELECT generate_series(date_trunc(%s, %s::timestamptz, 'UTC'), %s::timestamptz, %s::interval)
                   AS k0
        )
        SELECT k.k0, c.name, SUM(s.gpus * EXTRACT(EPOCH FROM
                   LEAST(s.b, k.k0 + %s::interval) - GREATEST(s.a, k.k0)))::bigint AS gpu_seconds
        FROM s JOIN k ON s.a < k.k0 + %s::interval AND s.b > k.k0
        JOIN inventory_cluster c ON c.id = s.cluster_id
        GROUP BY 1, 2 ORDER BY 1, 2
    """  # noqa: S608 (a fixed fragment; every value is a parameter)
    now = now_second()
    params = [query.start, now, query.end, query.end, now, query.start]
    if query.cluster is not None:
        params.append(query.cluster)
    params += [query.bucket, query.start, query.end, unit, unit, unit]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = [
            {"bucket": k0.astimezone(UTC), "cluster": name, "gpu_seconds": int(secs)}
            for k0, name, secs in cursor.fetchall()
            if secs
        ]
    return {
        "rows": rows,
        "gpu_seconds": sum(r["gpu_seconds"] for r in rows),
        "note": "Warm-pool standby GPU time is the provider's cost of keeping capacity ready; it is "
        "never billed to a tenant and is not in the figures above.",
    }


# --- presentation ---------------------------------------------------------------------------------------


def hours(seconds) -> Decimal:
    return (Decimal(int(seconds)) / 3600).quantize(SIX)


def group_rows(figures: dict) -> list[dict]:
    """The groups as API rows."""
    return [{"key": k, "label": label, **f.as_dict()} for k, label, f in figures["groups"]]


def series_rows(figures: dict) -> list[dict]:
    """The (bucket, group) rows, in time then group order, as API rows."""
    labels = {k: label for k, label, _f in figures["groups"]}
    return [
        {"bucket": b, "key": k, "label": labels[k], **f.as_dict()}
        for (b, k), f in sorted(figures["series"].items(), key=lambda item: (item[0][0], str(item[0][1])))
    ]


def chart_data(figures: dict) -> dict:
    """What the charts draw (embedded with json_script; numbers as JSON numbers, hours and money): one
    dataset per group over the buckets, the totals of GPU-hours against idle GPU-hours per group."""
    query: CostQuery = figures["query"]
    currency = figures["currencies"][0] if figures["currencies"] else ""
    fmt = {"hour": "%Y-%m-%d %H:00", "day": "%Y-%m-%d", "month": "%Y-%m"}[query.bucket]
    labels = [b.strftime(fmt) for b in figures["buckets"]]
    index = {b: i for i, b in enumerate(figures["buckets"])}
    datasets = []
    for key, label, _f in figures["groups"]:
        data = [0.0] * len(labels)
        for (b, k), f in figures["series"].items():
            if k == key and b in index:
                data[index[b]] = float(q6(f.costs.get(currency, Decimal(0))))
        datasets.append({"label": label, "data": data})
    gpu = {
        "labels": [label for _k, label, _f in figures["groups"]],
        "gpu_hours": [float(hours(f.gpu_seconds)) for _k, _l, f in figures["groups"]],
        "idle_gpu_hours": [
            None if f.idle_gpu_seconds is None else float(hours(f.idle_gpu_seconds))
            for _k, _l, f in figures["groups"]
        ],
    }
    out = {"currency": currency, "cost": {"labels": labels, "datasets": datasets}, "gpu": gpu}
    standby = figures.get("standby")
    if standby is not None:
        data = [0.0] * len(labels)
        for row in standby["rows"]:
            if row["bucket"] in index:
                data[index[row["bucket"]]] += float(hours(row["gpu_seconds"]))
        out["standby"] = {"labels": labels, "data": data}
    return out


def _idle_text(f: Figures) -> str:
    if f.utilisation == "no_gpu":
        return "—"
    if f.idle_gpu_seconds is None:
        return "not configured"
    text = f"{hours(f.idle_gpu_seconds):,.2f}"
    if f.utilisation == "partial":
        text += f" (of {hours(f.measured_gpu_seconds):,.2f} measured)"
    return text


def table(figures: dict) -> dict:
    """The table beside the charts (money with 2 places, hours with 2)."""
    currencies = figures["currencies"]
    chargeback = sorted(figures["totals"].chargeback_costs)

    def row(label: str, f: Figures) -> dict:
        return {
            "label": label,
            "costs": [money_shown(f.costs.get(c, 0)) for c in currencies],
            "chargeback": [money_shown(f.chargeback_costs.get(c, 0)) for c in chargeback],
            "chargeback_complete": f.unpriced_records == 0,
            "running_hours": f"{hours(f.running_seconds):,.2f}",
            "gpu_hours": f"{hours(f.gpu_seconds):,.2f}",
            "idle_gpu_hours": _idle_text(f),
            "utilisation": f.utilisation,
        }

    return {
        "currencies": currencies,
        "chargeback_currencies": chargeback,
        "rows": [row(label, f) for _k, label, f in figures["groups"]],
        "total": row("Total", figures["totals"]),
        "group_label": GROUPS[figures["query"].group_by],
    }


def panel(figures: dict, *, csv_url: str, prefix: str) -> dict:
    """The context of templates/billing/_costs_panel.html."""
    fmt = {"hour": "%Y-%m-%d %H:00", "day": "%Y-%m-%d", "month": "%Y-%m"}[figures["query"].bucket]
    standby = figures.get("standby") or {"rows": []}
    return {
        "figures": figures,
        "chart": chart_data(figures),
        "table": table(figures),
        "csv_url": csv_url,
        "prefix": prefix,
        "chart_id": f"{prefix}-chart-data",
        "form_start": form_bound(figures["query"].start, end=False),
        "form_end": form_bound(figures["query"].end, end=True),
        "standby_rows": [
            {
                "bucket": r["bucket"].strftime(fmt),
                "cluster": r["cluster"],
                "hours": f"{hours(r['gpu_seconds']):,.2f}",
            }
            for r in standby["rows"]
        ],
    }


def form_bound(moment: dt.datetime, *, end: bool) -> str:
    """A period bound as the forms and links send it: a date at midnight (an end date is included)."""
    if moment.hour == 0:
        return (moment - dt.timedelta(days=1) if end else moment).date().isoformat()
    return moment.isoformat().replace("+00:00", "Z")


def query_string(query: CostQuery, **extra) -> str:
    """The query's parameters for links (the CSV download), dates where the bounds are midnights."""
    params = {
        "start": form_bound(query.start, end=False),
        "end": form_bound(query.end, end=True),
        "group_by": query.group_by,
        "bucket": query.bucket,
    }
    params.update({name: getattr(query, name) for name in FILTERS if getattr(query, name) is not None})
    params.update(extra)
    return urlencode(params)
