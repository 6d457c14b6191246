"""Permission-filtered reads of metering: who sees which meters, and a period's seconds and costs.

Who sees what (the one rule for the billing API, the dashboards and the budgets' figures):

* org admins (``administer_organization`` on the org): their org's meters;
* people who may view a workspace's instances (``view_instances`` on the project): that workspace's;
* operators: the provider bills organizations, so every org's **totals** (``meters_billed``: the
  dashboards grouped by org, cluster or GPU model, the studio's spend card); an org's per-workspace,
  per-user, per-profile and per-instance **detail** (``meters_visible``: the usage API and page, the
  dashboards grouped otherwise or filtered by workspace or profile) only through a support access to
  that org (read or admin), as its members see it.

Times are whole seconds: :mod:`billing.metering` opens and closes intervals on whole seconds and
:func:`billing.periods.parse_period` takes whole-second bounds, so a period's seconds are exact integers
and the hourly roll-up's seconds add up to the same figures.
"""

import datetime as dt
from collections import defaultdict
from decimal import Decimal

from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone

from billing import costs
from billing.models import Meter
from paas import authz
from tenancy.models import Organization, Project

KINDS = ("running", "stopped", "deleting")


def meters_visible(user) -> QuerySet[Meter]:
    """The meters whose detail ``user`` may see (org admins their org's; workspace viewers theirs;
    operators those of the orgs a support access opens to them)."""
    if not authz.is_active_user(user):
        return Meter.objects.none()
    visible = authz.permission_q(user, "administer_organization", Organization, prefix="org__")
    visible |= authz.permission_q(user, "view_instances", Project, prefix="project__")
    return Meter.objects.filter(visible)


def meters_billed(user) -> QuerySet[Meter]:
    """The meters counted in the totals ``user`` may see: every meter for operators (the provider bills
    each org); for anyone else their ``meters_visible``."""
    if authz.is_operator(user):
        return Meter.objects.all()
    return meters_visible(user)


def meters_in_period(meters: QuerySet[Meter], *, start: dt.datetime, end: dt.datetime) -> QuerySet[Meter]:
    """Those of ``meters`` that existed at some time in [start, end)."""
    return meters.filter(Q(created_at__lt=end), Q(ended_at__isnull=True) | Q(ended_at__gt=start))


def now_second() -> dt.datetime:
    return timezone.now().replace(microsecond=0)


def seconds_by_meter(
    meter_ids, *, start: dt.datetime, end: dt.datetime, now: dt.datetime | None = None
) -> dict[int, dict[str, int]]:
    """Per meter id: its running, stopped and deleting seconds within [start, end) (an interval still
    open counts until ``now``). One query whatever the number of meters."""
    now = now or now_second()
    out: dict[int, dict[str, int]] = defaultdict(lambda: dict.fromkeys(KINDS, 0))
    ids = list(meter_ids)
    if not ids:
        return out
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT meter_id, kind,
                   SUM(GREATEST(0, EXTRACT(EPOCH FROM
                       LEAST(COALESCE(ended_at, %(now)s), %(end)s) - GREATEST(started_at, %(start)s))))
            FROM billing_interval
            WHERE meter_id = ANY(%(ids)s) AND started_at < %(end)s
              AND (ended_at IS NULL OR ended_at > %(start)s)
            GROUP BY meter_id, kind
            """,
            {"ids": ids, "start": start, "end": end, "now": now},
        )
        for meter_id, kind, seconds in cursor.fetchall():
            out[meter_id][kind] = int(seconds)
    return out


def existing_seconds(meter: Meter, *, start: dt.datetime, end: dt.datetime, now: dt.datetime) -> int:
    """How long ``meter``'s instance existed (launched, not deleted) within [start, end), until ``now``."""
    began = max(meter.created_at.replace(microsecond=0), start)
    until = min(meter.ended_at or now, end, now)
    return max(0, int((until - began).total_seconds()))


def period_figures(
    meters: list[Meter], *, start: dt.datetime, end: dt.datetime, now: dt.datetime | None = None
) -> list[dict]:
    """For each meter (in order): its seconds in the period and their list-price cost."""
    now = now or now_second()
    seconds = seconds_by_meter([m.pk for m in meters], start=start, end=end, now=now)
    rows = []
    for meter in meters:
        s = seconds[meter.pk]
        existing = existing_seconds(meter, start=start, end=end, now=now)
        cost = costs.list_cost(
            amount=meter.amount,
            stopped_amount=meter.stopped_amount,
            unit=meter.unit,
            billing_model=meter.billing_model,
            running=s["running"],
            stopped=s["stopped"],
            deleting=s["deleting"],
            existing=existing,
        )
        rows.append(
            {
                "meter": meter,
                "running_seconds": s["running"],
                "stopped_seconds": s["stopped"],
                "deleting_seconds": s["deleting"],
                "existing_seconds": existing,
                "billable_seconds": costs.billable_seconds(
                    billing_model=meter.billing_model, running=s["running"], existing=existing
                ),
                "cost": cost,
            }
        )
    return rows


_SECONDS_BY_PRICE = """
WITH m AS MATERIALIZED (
    -- the meters with what is read of them (no second pass over the meters table)
    SELECT b.id, b.currency, b.billing_model, b.unit, b.amount, b.stopped_amount, b.created_at, b.ended_at
    FROM billing_meter b WHERE b.id IN ({meters})
),
existing AS (
    SELECT m.currency, m.billing_model, m.unit, m.amount, m.stopped_amount, COUNT(*) AS instances,
           SUM(GREATEST(0, FLOOR(EXTRACT(EPOCH FROM LEAST(COALESCE(m.ended_at, %s), %s, %s)
               - GREATEST(date_trunc('second', m.created_at), %s))))) AS existing
    FROM m
    GROUP BY 1, 2, 3, 4, 5
),
timed AS (
    SELECT m.currency, m.billing_model, m.unit, m.amount, m.stopped_amount,
           SUM(x.secs) FILTER (WHERE x.kind = 'running') AS running,
           SUM(x.secs) FILTER (WHERE x.kind = 'stopped') AS stopped,
           SUM(x.secs) FILTER (WHERE x.kind = 'deleting') AS deleting
    FROM m JOIN LATERAL (
        SELECT i.kind, GREATEST(0, EXTRACT(EPOCH FROM
                   LEAST(COALESCE(i.ended_at, %s), %s) - GREATEST(i.started_at, %s))) AS secs
        FROM billing_interval i
        WHERE i.meter_id = m.id AND i.started_at < %s
          AND (i.ended_at IS NULL OR i.ended_at > %s)
        OFFSET 0  -- each meter's own intervals by the index, never a pass over the whole period's
    ) x ON TRUE
    GROUP BY 1, 2, 3, 4, 5
)
SELECT e.currency, e.billing_model, e.unit, e.amount, e.stopped_amount, e.instances,
       COALESCE(t.running, 0), COALESCE(t.stopped, 0), COALESCE(t.deleting, 0), e.existing
FROM existing e LEFT JOIN timed t
  ON (t.currency, t.billing_model, t.unit, t.amount, t.stopped_amount)
   = (e.currency, e.billing_model, e.unit, e.amount, e.stopped_amount)
"""


def seconds_by_price(
    meters: QuerySet[Meter], *, start: dt.datetime, end: dt.datetime, now: dt.datetime | None = None
) -> list[tuple]:
    """Per price (currency, billing model, unit, amount, stopped amount) of ``meters``: how many, and their
    running, stopped, deleting and existing seconds within [start, end) until ``now``. One query, each
    meter's intervals read through its index (the billing API's totals, the budgets' spend)."""
    now = now or now_second()
    sql, params = meters.order_by().values("id").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(
            _SECONDS_BY_PRICE.format(meters=sql),
            [*params, now, end, now, start, now, end, start, end, start],
        )
        return cursor.fetchall()


def spend(
    meters: QuerySet[Meter],
    *,
    start: dt.datetime,
    end: dt.datetime,
    currency: str,
    now: dt.datetime | None = None,
) -> Decimal:
    """The list-price spend of ``meters`` in ``currency`` within [start, end) (until now), exact: their
    seconds per price (:func:`seconds_by_price`, one query) priced by :func:`billing.costs.list_cost`
    (the budgets' status and hard stop call it under the launch's locks)."""
    in_period = meters_in_period(meters.filter(currency=currency), start=start, end=end)
    total = Decimal(0)
    for (
        _currency,
        model,
        unit,
        amount,
        stopped_amount,
        _count,
        running,
        stopped,
        deleting,
        existing,
    ) in seconds_by_price(in_period, start=start, end=end, now=now):
        total += costs.list_cost(
            amount=amount,
            stopped_amount=stopped_amount,
            unit=unit,
            billing_model=model,
            running=int(running),
            stopped=int(stopped),
            deleting=int(deleting),
            existing=int(existing),
        )
    return total
