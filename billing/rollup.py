"""The hourly usage roll-up: one :class:`~billing.models.UsageRecord` per meter and clock hour (UTC).

:func:`rollup_hour` computes an hour's records from the intervals (``billing.selectors``) and prices them
(``billing.costs``) in one transaction: it upserts a record for every meter that existed or had an
interval in the hour and deletes the hour's records of meters that no longer have any, so re-running an
hour rewrites the same rows whatever ran before.

:func:`rollup_pending` (the schedule, every 5 minutes) rolls up each settled hour from
``RollupState.complete_until`` on, each in its own transaction that also advances ``complete_until``:
a worker killed half-way loses its unfinished hour's transaction only, and the next run redoes exactly
that hour (the upsert counts nothing twice). Then it rewrites the hours not settled yet (the current one
so far) without advancing past them. One roll-up at a time (a PostgreSQL advisory lock; a second one
returns at once), and at most :data:`MAX_HOURS_PER_RUN` hours a run, so a platform stopped for long
catches up over a few runs. :func:`rollup_range` re-runs a past period (operators; idempotent).

What a record holds:

* seconds running, stopped, deleting and existing (launched, not deleted) within the hour;
* the list-price cost of those seconds (the launch snapshot's price, ``costs.list_cost``);
* for compute instances, GPU-seconds (whole GPUs: MIG slices are not GPUs) in total and by model, the
  chargeback cost at the cluster's rates in force at the hour's start (``billing.rates``; empty when
  the cluster has no cost profile) and, where the cluster's Prometheus answered, the GPU utilisation of
  the instance's namespace and the idle (allocated, unused) GPU-seconds; empty means unknown, not zero.

Service instances get their list price only: their resources are inside their compute instance's, which
is charged back and counted in GPU-seconds already, so a service's chargeback cost is empty and its
GPU-seconds are zero (counting them again would double the platform's GPU-hours).
"""

import datetime as dt
import json
import logging
import math
import os
import time
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

from django.db import connection, transaction
from django.db.models import Min
from django.utils import timezone

from billing import costs, utilisation
from billing.models import Interval, Meter, RollupState
from billing.rates import rates_at
from billing.selectors import existing_seconds, meters_in_period, now_second, seconds_by_meter
from inventory.models import Cluster

log = logging.getLogger(__name__)

HOUR = dt.timedelta(hours=1)
MAX_HOURS_PER_RUN = 24 * 40
# An hour is final once this long has passed since its end: a state change's instant is read before its
# transaction commits, so an interval may close a little in the past; until then the hour is rewritten.
SETTLE = dt.timedelta(minutes=5)
CHUNK = 5000
STATE_NAME = "hourly"
LOCK_KEY = 0x62696C6C_726F6C6C  # "billroll": the roll-up's PostgreSQL advisory lock
# Test-only: "<dir>:<n>" makes rollup_pending wait, inside the transaction of its n-th settled hour
# (counting from 0) after writing it, until <dir>/release exists, having written <dir>/blocked. Lets the
# suite kill a worker mid-roll-up deterministically. Never set outside the tests.
GATE_ENV = "PAAS_BILLING_ROLLUP_GATE"

METER_FIELDS = (
    "id",
    "kind",
    "cluster_id",
    "namespace",
    "currency",
    "amount",
    "unit",
    "billing_model",
    "stopped_amount",
    "gpus",
    "gpus_by_model",
    "mig_slices",
    "cpu_millis",
    "memory_gib",
    "storage_gib",
    "created_at",
    "ended_at",
)
# The columns of a usage record the roll-up writes (besides hour and rolled_up_at), as _UPSERT names them.
_COLUMNS = (
    "meter_id",
    "running_seconds",
    "stopped_seconds",
    "deleting_seconds",
    "existing_seconds",
    "gpu_seconds",
    "gpu_seconds_by_model",
    "cost",
    "currency",
    "chargeback_cost",
    "chargeback_currency",
    "gpu_utilisation",
    "idle_gpu_seconds",
)
_UPSERT = """
    INSERT INTO billing_usagerecord (
        hour, rolled_up_at, meter_id, running_seconds, stopped_seconds, deleting_seconds, existing_seconds,
        gpu_seconds, gpu_seconds_by_model, cost, currency, chargeback_cost, chargeback_currency,
        gpu_utilisation, idle_gpu_seconds)
    SELECT %(hour)s, %(at)s, m, r, s, d, e, g, gm, c, cur, cb, cbcur, u, idle
    FROM unnest(
        %(meter_id)s::bigint[], %(running_seconds)s::integer[], %(stopped_seconds)s::integer[],
        %(deleting_seconds)s::integer[], %(existing_seconds)s::integer[], %(gpu_seconds)s::bigint[],
        %(gpu_seconds_by_model)s::jsonb[], %(cost)s::numeric[], %(currency)s::text[],
        %(chargeback_cost)s::numeric[], %(chargeback_currency)s::text[],
        %(gpu_utilisation)s::double precision[], %(idle_gpu_seconds)s::bigint[]
    ) AS t(m, r, s, d, e, g, gm, c, cur, cb, cbcur, u, idle)
    ON CONFLICT (meter_id, hour) DO UPDATE SET
        rolled_up_at = EXCLUDED.rolled_up_at,
        running_seconds = EXCLUDED.running_seconds,
        stopped_seconds = EXCLUDED.stopped_seconds,
        deleting_seconds = EXCLUDED.deleting_seconds,
        existing_seconds = EXCLUDED.existing_seconds,
        gpu_seconds = EXCLUDED.gpu_seconds,
        gpu_seconds_by_model = EXCLUDED.gpu_seconds_by_model,
        cost = EXCLUDED.cost,
        currency = EXCLUDED.currency,
        chargeback_cost = EXCLUDED.chargeback_cost,
        chargeback_currency = EXCLUDED.chargeback_currency,
        gpu_utilisation = EXCLUDED.gpu_utilisation,
        idle_gpu_seconds = EXCLUDED.idle_gpu_seconds
    WHERE (billing_usagerecord.running_seconds, billing_usagerecord.stopped_seconds,
           billing_usagerecord.deleting_seconds, billing_usagerecord.existing_seconds,
           billing_usagerecord.gpu_seconds, billing_usagerecord.gpu_seconds_by_model,
           billing_usagerecord.cost, billing_usagerecord.currency, billing_usagerecord.chargeback_cost,
           billing_usagerecord.chargeback_currency, billing_usagerecord.gpu_utilisation,
           billing_usagerecord.idle_gpu_seconds)
      IS DISTINCT FROM (EXCLUDED.running_seconds, EXCLUDED.stopped_seconds, EXCLUDED.deleting_seconds,
           EXCLUDED.existing_seconds, EXCLUDED.gpu_seconds, EXCLUDED.gpu_seconds_by_model, EXCLUDED.cost,
           EXCLUDED.currency, EXCLUDED.chargeback_cost, EXCLUDED.chargeback_currency,
           EXCLUDED.gpu_utilisation, EXCLUDED.idle_gpu_seconds)
"""

# Meters with any existence or interval in [start, cap): the ones an hour has records for.
_METERS_IN_HOUR = """
    SELECT id FROM billing_meter
    WHERE created_at < %(cap)s AND (ended_at IS NULL OR ended_at > %(start)s)
    UNION
    SELECT meter_id FROM billing_interval
    WHERE started_at < %(cap)s AND (ended_at IS NULL OR ended_at > %(start)s)
    ORDER BY 1
"""
_DELETE_STALE = """
    DELETE FROM billing_usagerecord u
    WHERE u.hour = %(start)s
      AND NOT EXISTS (
          SELECT 1 FROM billing_meter m
          WHERE m.id = u.meter_id AND m.created_at < %(cap)s
            AND (m.ended_at IS NULL OR m.ended_at > %(start)s))
      AND NOT EXISTS (
          SELECT 1 FROM billing_interval i
          WHERE i.meter_id = u.meter_id AND i.started_at < %(cap)s
            AND (i.ended_at IS NULL OR i.ended_at > %(start)s))
"""


def hour_start(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def _fraction(value) -> float | None:
    """A utilisation figure as 0..1, or None when it is not a number."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if math.isnan(number) or math.isinf(number):
        return None
    return min(1.0, max(0.0, number))


def _utilisation(start: dt.datetime, cap: dt.datetime) -> dict[int, dict[str, float]]:
    """Per cluster with a Prometheus URL and compute meters in the hour: its answer {namespace: 0..1}.
    Clusters without a URL, or whose Prometheus failed or did not answer, are left out (unknown). Called
    outside the hour's transaction (no locks held while waiting on the network)."""
    in_hour = meters_in_period(Meter.objects.filter(kind=Meter.Kind.COMPUTE), start=start, end=cap)
    clusters = Cluster.objects.exclude(prometheus_url="").filter(id__in=in_hour.values("cluster_id"))
    out: dict[int, dict[str, float]] = {}
    for cluster in clusters:
        try:
            answer = utilisation.gpu_utilisation(cluster, start=start, end=cap)
        except Exception:  # a Prometheus failure never fails the roll-up
            log.warning(
                "GPU utilisation of cluster %s for %s unavailable", cluster.name, start, exc_info=True
            )
            continue
        if answer is None:
            continue
        figures = {str(ns): _fraction(value) for ns, value in answer.items()}
        out[cluster.pk] = {ns: value for ns, value in figures.items() if value is not None}
    return out


def _record(meter, *, start, end, now, seconds, rates, util) -> dict:
    """The usage record of ``meter`` (a ``Meter`` or a row with its fields) in the hour, as a row."""
    running, stopped, deleting = seconds["running"], seconds["stopped"], seconds["deleting"]
    existing = existing_seconds(meter, start=start, end=end, now=now)
    record = {
        "meter_id": meter.id,
        "running_seconds": running,
        "stopped_seconds": stopped,
        "deleting_seconds": deleting,
        "existing_seconds": existing,
        "gpu_seconds": 0,
        "gpu_seconds_by_model": {},
        "cost": costs.money(
            costs.list_cost(
                amount=meter.amount,
                stopped_amount=meter.stopped_amount,
                unit=meter.unit,
                billing_model=meter.billing_model,
                running=running,
                stopped=stopped,
                deleting=deleting,
                existing=existing,
            )
        ),
        "currency": meter.currency,
        "chargeback_cost": None,
        "chargeback_currency": "",
        "gpu_utilisation": None,
        "idle_gpu_seconds": None,
    }
    if meter.kind != Meter.Kind.COMPUTE:
        return record  # a service's resources are its compute instance's (see the module's docstring)
    record["gpu_seconds"] = running * meter.gpus
    if running:
        record["gpu_seconds_by_model"] = {
            model: running * int(count) for model, count in sorted((meter.gpus_by_model or {}).items())
        }
    if rates is not None:
        record["chargeback_cost"] = costs.money(
            costs.chargeback_cost(
                rates=rates, meter=meter, running=running, storage=running + stopped + deleting
            )
        )
        record["chargeback_currency"] = rates.currency
    if util is not None and meter.namespace in util:
        record["gpu_utilisation"] = util[meter.namespace]
        record["idle_gpu_seconds"] = round(record["gpu_seconds"] * (1 - record["gpu_utilisation"]))
    return record


def _upsert(records: list[dict], *, hour: dt.datetime) -> None:
    """Insert or rewrite ``records`` of ``hour``: one statement (arrays unnested), whatever their number.
    A record whose figures did not change is left alone (``rolled_up_at`` says when it last changed), so
    re-running an hour writes nothing and the 5-minute rewrite of the current hour only its open meters'."""
    if not records:
        return
    params = {column: [r[column] for r in records] for column in _COLUMNS}
    params["gpu_seconds_by_model"] = [json.dumps(v, sort_keys=True) for v in params["gpu_seconds_by_model"]]
    params |= {"hour": hour, "at": timezone.now()}
    with connection.cursor() as cursor:
        cursor.execute(_UPSERT, params)


def _write_hour(start: dt.datetime, *, now: dt.datetime, util: dict[int, dict[str, float]]) -> int:
    """Upsert the records of the hour starting at ``start`` and delete its stale ones (in the caller's
    transaction). Four queries per chunk of meters. Returns how many records were written."""
    end = start + HOUR
    cap = min(end, now)
    if cap <= start:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(_METERS_IN_HOUR, {"start": start, "cap": cap})
        ids = [row[0] for row in cursor.fetchall()]
    written = 0
    for i in range(0, len(ids), CHUNK):
        chunk = ids[i : i + CHUNK]
        meters = [SimpleNamespace(**row) for row in Meter.objects.filter(pk__in=chunk).values(*METER_FIELDS)]
        seconds = seconds_by_meter(chunk, start=start, end=end, now=now)
        rates = rates_at({m.cluster_id for m in meters}, start)
        records = [
            _record(
                m,
                start=start,
                end=end,
                now=now,
                seconds=seconds[m.id],
                rates=rates.get(m.cluster_id),
                util=util.get(m.cluster_id),
            )
            for m in meters
        ]
        _upsert(records, hour=start)
        written += len(records)
    with connection.cursor() as cursor:
        cursor.execute(_DELETE_STALE, {"start": start, "cap": cap})
    return written


def rollup_hour(hour: dt.datetime, *, now: dt.datetime | None = None) -> int:
    """Roll up the hour containing ``hour`` (until ``now`` if it is not over) in one transaction;
    idempotent. Returns how many records were written."""
    now = now or now_second()
    start = hour_start(hour)
    util = _utilisation(start, min(start + HOUR, now))
    with transaction.atomic():
        return _write_hour(start, now=now, util=util)


@contextmanager
def _single():
    """Whether this process holds the roll-up's advisory lock (held for the block, across its
    transactions; PostgreSQL releases it if the process dies)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_KEY])
        held = cursor.fetchone()[0]
    try:
        yield held
    finally:
        if held:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [LOCK_KEY])
            except Exception:  # the session ends with the connection anyway
                log.warning("could not release the roll-up lock", exc_info=True)


def _gate(done: int) -> None:
    """The tests' hook (see :data:`GATE_ENV`); nothing unless the variable is set."""
    gate = os.environ.get(GATE_ENV)
    if not gate:
        return
    directory, _, at = gate.rpartition(":")
    if int(at) != done:
        return
    Path(directory, "blocked").write_text(str(done))
    while not Path(directory, "release").exists():
        time.sleep(0.02)


def _first_hour() -> dt.datetime | None:
    """The hour of the earliest metered time (an interval's start or a launch), None with none yet."""
    firsts = [
        Interval.objects.aggregate(first=Min("started_at"))["first"],
        Meter.objects.aggregate(first=Min("created_at"))["first"],
    ]
    firsts = [f for f in firsts if f is not None]
    return hour_start(min(firsts)) if firsts else None


def rollup_pending(now: dt.datetime | None = None, *, max_hours: int = MAX_HOURS_PER_RUN) -> dict:
    """Roll up every settled hour not rolled up yet (each in its own transaction advancing
    ``complete_until``), at most ``max_hours`` of them, then, once caught up, the hours not settled yet
    (rewritten on every run). Returns a summary; ``busy`` when another roll-up holds the lock."""
    now = (now or now_second()).astimezone(dt.UTC)
    summary = {"busy": False, "hours": 0, "partial_hours": 0, "records": 0, "complete_until": None}
    with _single() as held:
        if not held:
            summary["busy"] = True
            return summary
        state, _ = RollupState.objects.get_or_create(name=STATE_NAME)
        hour = state.complete_until or _first_hour()
        if hour is None:
            return summary
        hour = hour_start(hour)
        settled = hour_start(now - SETTLE)  # every hour before this one is final
        while hour < settled and summary["hours"] < max_hours:
            util = _utilisation(hour, hour + HOUR)
            with transaction.atomic():
                # The state row first, as billing.cost_profiles reads it: rates added for this hour
                # either commit before it is read here or wait until it is closed (and are refused).
                RollupState.objects.select_for_update().filter(pk=state.pk).first()
                summary["records"] += _write_hour(hour, now=now, util=util)
                _gate(summary["hours"])
                RollupState.objects.filter(pk=state.pk).update(
                    complete_until=hour + HOUR, updated_at=timezone.now()
                )
            summary["hours"] += 1
            hour += HOUR
        summary["complete_until"] = hour.isoformat()
        if hour >= settled:
            while hour < now:  # the current hour so far (and the previous one while it settles)
                util = _utilisation(hour, min(hour + HOUR, now))
                with transaction.atomic():
                    summary["records"] += _write_hour(hour, now=now, util=util)
                summary["partial_hours"] += 1
                hour += HOUR
    log.info("usage roll-up: %s", summary)
    return summary


def rollup_range(start: dt.datetime, end: dt.datetime, *, now: dt.datetime | None = None) -> dict:
    """Re-run the roll-up of every hour overlapping [start, end) up to now (operators; idempotent),
    each hour in its own transaction. ``complete_until`` is left as it is. ``busy`` when another
    roll-up holds the lock."""
    now = (now or now_second()).astimezone(dt.UTC)
    summary = {"busy": False, "hours": 0, "records": 0}
    with _single() as held:
        if not held:
            summary["busy"] = True
            return summary
        hour = hour_start(start)
        while hour < min(end, now):
            util = _utilisation(hour, min(hour + HOUR, now))
            with transaction.atomic():
                summary["records"] += _write_hour(hour, now=now, util=util)
            summary["hours"] += 1
            hour += HOUR
    log.info("usage roll-up of %s..%s: %s", start, end, summary)
    return summary
