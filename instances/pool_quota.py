"""The warm-pool quota as a counter: what each pool's standby instances hold against ``max_gpus``.

``instances.WarmPoolUsage`` (one row per pool) holds the GPU units (28ths of a GPU: a MIG slice counts
its fraction) of the pool's standbys in ``STANDBY_HOLDING`` (provisioning, ready, retiring, failed),
the same rule as the clusters' capacity reservations (``instances.capacity``). It moves in the
transaction of every change of what a pool holds:

- **take** (:func:`pool_take`): the loop's provisioning, one conditional UPDATE of the pool's row for
  the standbys it has just made, ``held + made <= max_gpus`` read from the pool row by the statement
  itself; refused, the loop rolls its batch back (``instances.pool_loop``);
- **give back** (:func:`standby_left`): a claim (``ready -> claimed``, in the launch's transaction) and
  a deletion (``retiring -> deleted``, in the deployer's), never below zero.

Rows are created by the loop before its first take with the exact re-sum of the pool's standbys then
(:func:`pool_held`; an upgrade, a bulk import or a test that wrote standbys directly starts right);
a pool's row goes with the pool (its standbys, no longer any pool's, retire and count nowhere).
:func:`pool_quota_drift` compares every row with the re-sum (the periodic drift check,
``instances.counters.counters_check``); :func:`pool_quota_rebuild` recomputes them.

Lock order: the loop takes the row last in its transaction (after the clusters' reservation rows),
so a claim giving back waits for the loop's commit only, not for its whole pass; a claim takes it
after the launch's usage counters, a deletion after the cluster's reservation row; no transaction
holds this row while it waits for one of those.
"""

from django.db import connection, transaction

from instances.counter_models import WarmPoolUsage
from instances.models import StandbyInstance, WarmPool
from instances.selectors import STANDBY_HOLDING
from inventory import mig

USAGE, POOLS, STANDBYS = (m._meta.db_table for m in (WarmPoolUsage, WarmPool, StandbyInstance))


def _resum_sql(*, one_pool: bool) -> str:
    """The GPU units each pool's standbys hold now (parameters: ``%(holding)s``, ``%(pool)s``)."""
    where = "s.pool_id = %(pool)s" if one_pool else "s.pool_id IS NOT NULL"
    return (
        f"SELECT s.pool_id, COALESCE(SUM(s.gpu_units), 0) FROM {STANDBYS} s "  # noqa: S608 (no input)
        f"WHERE {where} AND s.state = ANY(%(holding)s) GROUP BY s.pool_id"
    )


def _params(**extra) -> dict:
    return {"holding": sorted(STANDBY_HOLDING), **extra}


def pool_held(pool_id: int) -> int:
    """The GPU units the pool's standbys hold, from its row (created now, from the re-sum, if it has
    none). Only a loop raises the row, one at a time (``capacity.MULTI_CLUSTER_LOCK``): read by the
    loop, it is an upper bound of what the pool will hold when the loop takes (claims and deletions
    only lower it meanwhile)."""
    select = f"SELECT gpu_units FROM {USAGE} WHERE pool_id = %s"  # noqa: S608 (no input)
    with connection.cursor() as cursor:
        cursor.execute(select, [pool_id])  # (a plain read: it never waits for a claim's row lock)
        row = cursor.fetchone()
        if row is None:
            cursor.execute(
                f"""INSERT INTO {USAGE} (pool_id, gpu_units, updated_at)
                    SELECT p.id, COALESCE(h.units, 0), now() FROM {POOLS} p
                      LEFT JOIN ({_resum_sql(one_pool=True)}) AS h (pool_id, units) ON h.pool_id = p.id
                     WHERE p.id = %(pool)s
                    ON CONFLICT (pool_id) DO NOTHING""",  # noqa: S608 (no input)
                _params(pool=pool_id),
            )
            cursor.execute(select, [pool_id])
            row = cursor.fetchone()
    return int(row[0]) if row else 0


def pool_take(*, pool_id: int, units: int) -> bool:
    """Add ``units`` to the pool's row if the pool quota allows it (no quota: always): one conditional
    UPDATE, the quota read from the pool's row by the statement. True when taken (the row stays locked
    until the transaction ends); False when over the quota or the row is missing (call
    :func:`pool_held` first). Call it inside a transaction."""
    if units <= 0:
        return True
    with connection.cursor() as cursor:
        cursor.execute(
            f"""UPDATE {USAGE} AS u SET gpu_units = u.gpu_units + %(units)s, updated_at = now()
                  FROM {POOLS} p
                 WHERE u.pool_id = %(pool)s AND p.id = u.pool_id
                   AND (p.max_gpus IS NULL OR u.gpu_units + %(units)s <= p.max_gpus * %(per_gpu)s)
                RETURNING 1""",  # noqa: S608 (no input)
            {"pool": pool_id, "units": units, "per_gpu": mig.UNITS_PER_GPU},
        )
        return cursor.fetchone() is not None


def standby_left(standby: StandbyInstance) -> None:
    """The standby no longer holds (claimed, or deleted): its GPU units go back to its pool's row, never
    below zero. Call in the transaction that moves its state out of ``STANDBY_HOLDING``. A standby of
    a deleted pool, or a pool without a row, has nothing to give back."""
    if not standby.pool_id or not standby.gpu_units:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {USAGE} SET gpu_units = GREATEST(gpu_units - %s, 0), updated_at = now() "  # noqa: S608
            "WHERE pool_id = %s",
            [standby.gpu_units, standby.pool_id],
        )


def pool_quota_drift() -> list[str]:
    """One line per pool whose row differs from the re-sum of its standbys (a pool holding nothing
    without a row is fine: its row starts from the re-sum). Empty: no drift. Read in one REPEATABLE READ
    snapshot (the rows and the standbys as of one moment)."""
    outer = connection.in_atomic_block
    with transaction.atomic(), connection.cursor() as cursor:
        if not outer:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        cursor.execute(_resum_sql(one_pool=False), _params())
        truth = {pk: int(units) for pk, units in cursor.fetchall()}
        cursor.execute(f"SELECT pool_id, gpu_units FROM {USAGE}")  # noqa: S608 (no input)
        kept = {pk: int(units) for pk, units in cursor.fetchall()}
    names = {
        pool.pk: str(pool)
        for pool in WarmPool.objects.filter(pk__in={*truth, *kept}).select_related(
            "profile", "datacenter", "cluster"
        )
    }
    lines = []
    for pk in sorted({*truth, *kept}, key=lambda pk: (names.get(pk, ""), pk)):
        want, have = truth.get(pk, 0), kept.get(pk)
        if have is None:
            if want:
                lines.append(
                    f"Warm pool {names.get(pk, pk)}: no usage row, its standby instances hold "
                    f"{mig.format_gpus_exact(want)} GPUs (made on the loop's next pass, or by the rebuild)."
                )
        elif have != want:
            lines.append(
                f"Warm pool {names.get(pk, pk)}: usage row says {mig.format_gpus_exact(have)} GPUs, "
                f"its standby instances hold {mig.format_gpus_exact(want)}."
            )
    return lines


@transaction.atomic
def pool_quota_rebuild() -> int:
    """Recompute every pool's row from its standbys, in one transaction: rows are created for every
    pool, locked (loops, claims and deletions of those pools wait), then set to the re-sum read after
    the locks (set-based SQL). Returns the number of rows whose amount changed."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {USAGE} (pool_id, gpu_units, updated_at) SELECT id, 0, now() FROM {POOLS} "  # noqa: S608
            "ON CONFLICT (pool_id) DO NOTHING"
        )
        cursor.execute(f"SELECT pool_id FROM {USAGE} ORDER BY pool_id FOR UPDATE")  # noqa: S608
        cursor.execute(
            f"""UPDATE {USAGE} AS u SET gpu_units = COALESCE(h.units, 0), updated_at = now()
                  FROM {USAGE} AS v
                  LEFT JOIN ({_resum_sql(one_pool=False)}) AS h (pool_id, units) ON h.pool_id = v.pool_id
                 WHERE u.pool_id = v.pool_id AND u.gpu_units <> COALESCE(h.units, 0)""",  # noqa: S608
            _params(),
        )
        return cursor.rowcount
