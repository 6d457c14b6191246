"""Usage counters (``instances.UsageCounter``): what each scope's active instances hold, moved in the
transaction of every change that moves resources, and the launch decision taken against them.

What an instance holds in a state is what the quotas count (``instances.quota``): nothing once
DELETED (or never active), only its storage and itself as an instance while STOPPED, everything
(GPU units, per-model GPU units, CPU, memory, storage, the instance) in every other active state. It is
counted in four scopes: its org, its workspace, its owner in the org and its owner in the workspace;
per-model GPU units in the org and workspace scopes only (per-model limits are quotas', not users').

Who moves them:

- a launch (a warm-pool claim included) takes what its new PENDING instance holds with
  :func:`counters_take`, a conditional upsert that is the launch's decision: every counter row grows
  only if each bounded amount stays within its limit, or nothing grows and the caller is told which
  rows refused. It is the launch's last statement but the audit event's INSERT (after the instance's
  own rows and the cluster's reservation), so its locks are held only until the commit that follows;
- every state change, through ``instances.states.transition`` (the only mover), in the same
  transaction: :func:`state_changed` (a receiver of ``instance_state_changed``) moves the difference
  between what the instance holds in its new state and in its old one. A start (STOPPED to
  PROVISIONING) takes it conditionally first, in ``instances.actions``, then marks the instance as
  counted (:func:`mark_counted`) so that the receiver moves nothing more.

Limits are passed in (read at the start of the transaction, without a lock): a quota or a limit
changed concurrently applies from the next launch on, as if this launch had been decided just before
the change; a quota change never touches counters. Rows are locked in one global order (org,
workspace, user, model), by every statement here, so two transactions never deadlock on them.

:func:`counters_rebuild` recomputes every counter from instances (set-based SQL, one transaction);
:func:`counters_drift` compares them with a fresh re-sum (the periodic check and ``manage.py
usage_recount``).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from types import SimpleNamespace

from django.db import connection, transaction

from instances.counter_models import AMOUNTS, UsageCounter
from instances.states import ACTIVE, STORAGE_ONLY
from inventory import mig

log = logging.getLogger(__name__)

TABLE = UsageCounter._meta.db_table
UNKNOWN_PARENT = "mig:"  # gpu_model prefix of slices whose parent GPU model nobody knows
ZERO = (0, 0, 0, 0, 0)

#: A counter row's key: (org_id, project_id or None, user_id or None, gpu_model or "").
Key = tuple[int, int | None, int | None, str]


# --- what an instance holds ----------------------------------------------------------------------------


def model_units(gpus_by_model: dict, mig_slices: dict, mig_parents: dict) -> dict[str, int]:
    """Per GPU model, the units an instance holds that count against a per-model limit of it (as
    ``instances.quota.model_units`` counts them); slices without a known parent under ``mig:<profile>``."""
    units: dict[str, int] = defaultdict(int)
    for model, count in (gpus_by_model or {}).items():
        if count:
            units[model] += mig.UNITS_PER_GPU * int(count)
    for profile, count in (mig_slices or {}).items():
        if not count:
            continue
        amount = mig.slice_units(profile) * int(count)
        parents = (mig_parents or {}).get(profile) or ()
        for parent in parents or (UNKNOWN_PARENT + profile,):
            units[parent] += amount
    return dict(units)


def holds(instance, state: str) -> dict[Key, tuple]:
    """What ``instance`` (a ComputeInstance, or the facts of one: see :func:`facts`) holds in
    ``state``, per counter row: (gpu_units, cpu_millis, memory_gib, storage_gib, instances)."""
    if state not in ACTIVE:
        return {}
    compute = state not in STORAGE_ONLY
    totals = (
        instance.gpu_units if compute else 0,
        instance.cpu_millis if compute else 0,
        instance.memory_gib if compute else 0,
        instance.storage_gib,
        1,
    )
    org, project, owner = instance.org_id, instance.project_id, instance.owner_id
    rows: dict[Key, tuple] = {
        (org, None, None, ""): totals,
        (org, project, None, ""): totals,
        (org, None, owner, ""): totals,
        (org, project, owner, ""): totals,
    }
    if compute:
        for model, units in model_units(
            instance.gpus_by_model, instance.mig_slices, instance.mig_parents
        ).items():
            rows[(org, None, None, model)] = (units, 0, 0, 0, 0)
            rows[(org, project, None, model)] = (units, 0, 0, 0, 0)
    return rows


def facts(*, org_id: int, project_id: int, owner_id: int, totals: dict) -> SimpleNamespace:
    """An instance about to be created, as :func:`holds` reads one (``totals`` as
    ``instances.quota.profile_totals`` gives them)."""
    return SimpleNamespace(
        org_id=org_id,
        project_id=project_id,
        owner_id=owner_id,
        gpu_units=totals["gpu_units"],
        cpu_millis=totals["cpu_millis"],
        memory_gib=totals["memory_gib"],
        storage_gib=totals["storage_gib"],
        gpus_by_model=totals.get("gpus_by_model") or {},
        mig_slices=totals.get("mig_slices") or {},
        mig_parents=totals.get("mig_parents") or {},
    )


def difference(new: dict[Key, tuple], old: dict[Key, tuple]) -> dict[Key, tuple]:
    """``new`` minus ``old`` per row (rows with no change left out)."""
    rows = {}
    for key in new.keys() | old.keys():
        delta = tuple(a - b for a, b in zip(new.get(key, ZERO), old.get(key, ZERO), strict=True))
        if any(delta):
            rows[key] = delta
    return rows


def _order(key: Key) -> tuple:
    org, project, user, model = key
    return (org, project or 0, user or 0, model)


# --- moving them ------------------------------------------------------------------------------------------

_COLUMNS = "org_id, project_id, user_id, gpu_model, " + ", ".join(AMOUNTS)
_ROW = "(%s::int, %s::bigint, %s::bigint, %s::bigint, %s::text" + ", %s::bigint" * (2 * len(AMOUNTS)) + ")"
_LIMITS = ", ".join(f"l_{a}" for a in AMOUNTS)
_FITS_NEW = " AND ".join(f"(w.l_{a} IS NULL OR w.{a} <= w.l_{a})" for a in AMOUNTS)
_FITS = " AND ".join(f"(w.l_{a} IS NULL OR c.{a} + w.{a} <= w.l_{a})" for a in AMOUNTS)
_SAME_ROW = (
    "w.org_id = c.org_id AND w.project_id IS NOT DISTINCT FROM c.project_id "
    "AND w.user_id IS NOT DISTINCT FROM c.user_id AND w.gpu_model = c.gpu_model"
)
_TAKE = f"""
WITH w (ord, {_COLUMNS}, {_LIMITS}) AS (VALUES {{rows}})
INSERT INTO {TABLE} AS c ({_COLUMNS})
SELECT {_COLUMNS} FROM w WHERE {_FITS_NEW} ORDER BY ord
ON CONFLICT (org_id, project_id, user_id, gpu_model) DO UPDATE
SET {", ".join(f"{a} = c.{a} + EXCLUDED.{a}" for a in AMOUNTS)}
WHERE EXISTS (SELECT 1 FROM w WHERE {_SAME_ROW} AND {_FITS})
RETURNING c.org_id, c.project_id, c.user_id, c.gpu_model
"""  # noqa: S608 (fixed fragments; every value is a parameter)
# A release: rows that do not exist have nothing to give back (drift, which the check reports); an
# amount never goes below zero (the same: reported, not fatal to the delete that found it).
_RELEASE = f"""
WITH w (ord, {_COLUMNS}) AS (VALUES {{rows}}),
locked AS (
    SELECT c.id, w.ord FROM {TABLE} c JOIN w ON {_SAME_ROW} ORDER BY w.ord FOR UPDATE OF c
)
UPDATE {TABLE} AS c SET {", ".join(f"{a} = GREATEST(c.{a} - w.{a}, 0)" for a in AMOUNTS)}
FROM locked JOIN w ON w.ord = locked.ord WHERE c.id = locked.id
"""  # noqa: S608 (fixed fragments; every value is a parameter)
_RELEASE_ROW = "(%s::int, %s::bigint, %s::bigint, %s::bigint, %s::text" + ", %s::bigint" * len(AMOUNTS) + ")"


def counters_take(rows: dict[Key, tuple], limits: dict[Key, tuple] | None = None) -> set[Key]:
    """Add ``rows`` (non-negative amounts) to the counters in one statement, creating missing rows, if
    every amount with a limit in ``limits`` (per row, a tuple like the amounts, None for unbounded)
    stays within it; otherwise add nothing. Returns the keys that refused (empty: taken).

    The refused rows stay locked by this transaction (``ON CONFLICT DO UPDATE`` locks the rows it
    does not update too), so what :func:`usage_of` reads next is what the decision saw."""
    if not rows:
        return set()
    limits = limits or {}
    keys = sorted(rows, key=_order)
    params: list = []
    for ordinal, key in enumerate(keys):
        bounded = limits.get(key) or (None,) * len(AMOUNTS)
        params += [ordinal, *key, *rows[key], *bounded]
    sql = _TAKE.replace("{rows}", ", ".join([_ROW] * len(keys)))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        taken = {tuple(row) for row in cursor.fetchall()}
    refused = {key for key in keys if key not in taken}
    if refused and taken:
        # Some rows grew: give them back (still locked by us: nobody saw them).
        _release({key: rows[key] for key in taken})
    return refused


def _release(rows: dict[Key, tuple]) -> None:
    keys = sorted(rows, key=_order)
    params: list = []
    for ordinal, key in enumerate(keys):
        params += [ordinal, *key, *rows[key]]
    with connection.cursor() as cursor:
        cursor.execute(_RELEASE.replace("{rows}", ", ".join([_RELEASE_ROW] * len(keys))), params)


def counters_move(rows: dict[Key, tuple]) -> None:
    """Apply signed changes (no limit): each row's change is all growth or all release (the states
    are nested: nothing, storage only, everything)."""
    grow = {k: v for k, v in rows.items() if all(x >= 0 for x in v)}
    shrink = {k: tuple(-x for x in v) for k, v in rows.items() if k not in grow}
    if grow:
        counters_take(grow)
    if shrink:
        _release(shrink)


def mark_counted(instance, state: str) -> None:
    """Say that the counters already hold what ``instance`` holds in ``state`` (taken by a caller's
    conditional :func:`counters_take`): the next state change moves only the rest."""
    instance._usage_counted_state = state


def state_changed(sender, instance, previous: str, state: str, **kwargs) -> None:
    """Receiver of ``instances.signals.instance_state_changed`` (inside the change's transaction):
    move the counters by what the compute instance holds in its new state minus its old one."""
    from instances.models import ComputeInstance

    if sender is not ComputeInstance:
        return
    counted = getattr(instance, "_usage_counted_state", previous)
    instance._usage_counted_state = state
    counters_move(difference(holds(instance, state), holds(instance, counted)))


# --- reading them -------------------------------------------------------------------------------------


def usage_of(keys: Iterable[Key]) -> dict[Key, tuple]:
    """The counters of ``keys`` (missing rows: zeros), in one query."""
    keys = list(keys)
    if not keys:
        return {}
    rows = {key: ZERO for key in keys}
    clauses, params = [], []
    for org, project, user, model in keys:
        clauses.append(
            "(org_id = %s AND project_id IS NOT DISTINCT FROM %s AND user_id IS NOT DISTINCT FROM %s "
            "AND gpu_model = %s)"
        )
        params += [org, project, user, model]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT org_id, project_id, user_id, gpu_model, {', '.join(AMOUNTS)} FROM {TABLE} "  # noqa: S608
            f"WHERE {' OR '.join(clauses)}",
            params,
        )
        for org, project, user, model, *amounts in cursor.fetchall():
            rows[(org, project, user, model)] = tuple(amounts)
    return rows


def scope_rows(*, org_id: int, project_id: int | None = None, user_id: int | None = None) -> dict[str, tuple]:
    """Every row of one scope, by ``gpu_model`` ("" the totals), in one query."""
    rows = UsageCounter.objects.filter(org_id=org_id, project_id=project_id, user_id=user_id).values_list(
        "gpu_model", *AMOUNTS
    )
    return {model: tuple(amounts) for model, *amounts in rows}


# --- rebuilding and checking --------------------------------------------------------------------------

_ACTIVE_SQL = "state IN ({})".format(", ".join(f"'{s}'" for s in sorted(ACTIVE)))
_COMPUTE_SQL = "state NOT IN ({})".format(", ".join(f"'{s}'" for s in sorted(STORAGE_ONLY)))


def _resum_sql() -> tuple[str, list]:
    """One SELECT giving, per counter key, what the active instances hold (the truth the counters
    keep): the totals grouped by the four scopes, plus per-model units (whole GPUs from
    ``gpus_by_model``, slices from ``mig_slices`` under each parent of ``mig_parents`` or ``mig:<profile>``)
    at org and workspace scopes. The units of each slice profile are computed here in Python
    (``inventory.mig.slice_units``) for the profiles in use, and joined as a VALUES list."""
    from instances.models import ComputeInstance

    table = ComputeInstance._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT DISTINCT jsonb_object_keys(mig_slices) FROM {table} "  # noqa: S608 (fixed fragments)
            f"WHERE {_ACTIVE_SQL} AND {_COMPUTE_SQL} AND mig_slices <> '{{}}'::jsonb"
        )
        profiles = [row[0] for row in cursor.fetchall()]
    units_values = ", ".join(["(%s::text, %s::bigint)"] * len(profiles)) or "(NULL::text, NULL::bigint)"
    params: list = []
    for profile in profiles:
        params += [profile, mig.slice_units(profile)]
    compute = f"CASE WHEN {_COMPUTE_SQL} THEN {{}} ELSE 0 END"
    sql = f"""
WITH i AS (SELECT * FROM {table} WHERE {_ACTIVE_SQL}),
slice_units (profile, units) AS (VALUES {units_values}),
totals AS (
    SELECT org_id, project_id, owner_id,
        SUM({compute.format("gpu_units")}) AS gpu_units, SUM({compute.format("cpu_millis")}) AS cpu_millis,
        SUM({compute.format("memory_gib")}) AS memory_gib, SUM(storage_gib) AS storage_gib,
        COUNT(*) AS instances
    FROM i GROUP BY org_id, project_id, owner_id
),
per_model AS (
    SELECT i.org_id, i.project_id, g.key AS gpu_model, 28 * g.value::bigint AS units
    FROM i, jsonb_each_text(i.gpus_by_model) g WHERE {_COMPUTE_SQL}
    UNION ALL
    SELECT i.org_id, i.project_id, COALESCE(p.parent, '{UNKNOWN_PARENT}' || s.key),
        s.value::bigint * u.units
    FROM i CROSS JOIN LATERAL jsonb_each_text(i.mig_slices) s
    JOIN slice_units u ON u.profile = s.key
    LEFT JOIN LATERAL (
        SELECT DISTINCT jsonb_array_elements_text(
            CASE WHEN jsonb_typeof(i.mig_parents -> s.key) = 'array' THEN i.mig_parents -> s.key
            ELSE '[]'::jsonb END
        ) AS parent
    ) p ON TRUE
    WHERE {_COMPUTE_SQL}
)
SELECT org_id, NULL::bigint, NULL::bigint, '', SUM(gpu_units), SUM(cpu_millis), SUM(memory_gib),
    SUM(storage_gib), SUM(instances) FROM totals GROUP BY org_id
UNION ALL
SELECT org_id, project_id, NULL, '', SUM(gpu_units), SUM(cpu_millis), SUM(memory_gib),
    SUM(storage_gib), SUM(instances) FROM totals GROUP BY org_id, project_id
UNION ALL
SELECT org_id, NULL, owner_id, '', SUM(gpu_units), SUM(cpu_millis), SUM(memory_gib),
    SUM(storage_gib), SUM(instances) FROM totals GROUP BY org_id, owner_id
UNION ALL
SELECT org_id, project_id, owner_id, '', gpu_units, cpu_millis, memory_gib, storage_gib, instances
    FROM totals
UNION ALL
SELECT org_id, NULL, NULL, gpu_model, SUM(units), 0, 0, 0, 0 FROM per_model GROUP BY org_id, gpu_model
UNION ALL
SELECT org_id, project_id, NULL, gpu_model, SUM(units), 0, 0, 0, 0
    FROM per_model GROUP BY org_id, project_id, gpu_model
"""  # noqa: S608 (fixed fragments; every value is a parameter)
    return sql, params


@transaction.atomic
def counters_rebuild() -> int:
    """Recompute every counter from the instances, in one transaction, with set-based SQL: the rows
    are replaced by the re-sum (taking the table's lock: launches and state changes wait for the
    rebuild, which is a bulk operation, not a routine one). Returns the number of rows written."""
    sql, params = _resum_sql()
    with connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {TABLE} IN SHARE ROW EXCLUSIVE MODE")
        cursor.execute(f"DELETE FROM {TABLE}")  # noqa: S608 (fixed fragments)
        cursor.execute(f"INSERT INTO {TABLE} ({_COLUMNS}) {sql}", params)
        return cursor.rowcount


def _label(key: Key) -> str:
    org, project, user, model = key
    parts = [f"org {org}"]
    if project is not None:
        parts.append(f"workspace {project}")
    if user is not None:
        parts.append(f"user {user}")
    if model:
        parts.append(model)
    return ", ".join(parts)


def counters_drift() -> list[str]:
    """Where the counters differ from a fresh re-sum of the instances, one line each (empty: none).
    Read in one REPEATABLE READ snapshot (the counters and the instances as of one moment)."""
    outer = connection.in_atomic_block  # (inside a caller's transaction: its snapshot rules)
    with transaction.atomic(), connection.cursor() as cursor:
        if not outer:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        sql, params = _resum_sql()
        cursor.execute(sql, params)
        truth = {tuple(row[:4]): tuple(int(x) for x in row[4:]) for row in cursor.fetchall()}
        cursor.execute(f"SELECT {_COLUMNS} FROM {TABLE}")  # noqa: S608 (fixed fragments)
        kept = {tuple(row[:4]): tuple(int(x) for x in row[4:]) for row in cursor.fetchall()}
    lines = []
    for key in sorted(truth.keys() | kept.keys(), key=_order):
        want, have = truth.get(key, ZERO), kept.get(key, ZERO)
        if want != have:
            differs = ", ".join(
                f"{name} {h} (re-sum {w})" for name, h, w in zip(AMOUNTS, have, want, strict=True) if h != w
            )
            lines.append(f"{_label(key)}: {differs}")
    return lines


#: Checks kept (the newest is shown; the rest is a short history for whoever investigates).
CHECKS_KEPT = 50


def counters_check(*, fix: bool = False, actor=None) -> list[str]:
    """The periodic drift check (and ``manage.py usage_recount``): compare the usage counters, the
    clusters' capacity reservations (``instances.capacity.capacity_drift``) and the warm pools' usage
    rows (``instances.pool_quota.pool_quota_drift``) with a re-sum; report each difference as a
    WARNING log line, record the check (the studio home and the ``paas_usage_counter_drift`` gauge
    show the newest). With ``fix``, rebuild all three from the instances and standbys and write a
    platform audit event naming what was repaired. Returns the drift lines."""
    from instances.capacity import capacity_drift, capacity_rebuild
    from instances.counter_models import UsageCounterCheck
    from instances.pool_quota import pool_quota_drift, pool_quota_rebuild
    from paas.audit import audit_log

    lines = counters_drift() + [f"capacity: {line}" for line in capacity_drift()]
    lines += [f"pool quota: {line}" for line in pool_quota_drift()]
    for line in lines:
        log.warning("Usage counter drift: %s", line)
    with transaction.atomic():
        if fix and lines:
            counters_rebuild()
            capacity_rebuild()
            pool_quota_rebuild()
            audit_log(
                actor=actor,
                action="usage_counters.recount",
                target_type="instances.usagecounter",
                target_repr="usage counters",
                details={"drift": lines[:100], "rows": len(lines)},
            )
        UsageCounterCheck.objects.create(drift=lines, fixed=bool(fix and lines))
        stale = UsageCounterCheck.objects.order_by("-checked_at", "-pk").values_list("pk", flat=True)[
            CHECKS_KEPT:
        ]
        UsageCounterCheck.objects.filter(pk__in=list(stale)).delete()
    return lines


def last_check():
    """The newest drift check, or None (never checked)."""
    from instances.counter_models import UsageCounterCheck

    return UsageCounterCheck.objects.order_by("-checked_at", "-pk").first()
