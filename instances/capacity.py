"""Capacity reservations per cluster: no two launches (of any orgs) take the same last GPUs.

What holds capacity on a cluster (the rule the re-sum, the drift check and the state hook share):

- a compute instance in ``HOLDING`` = every active state but ``stopped``: pending, provisioning,
  ready, failed, deleting. A stopped instance has no pods (its storage stays, not counted here).
  A **failed** instance keeps holding: the deployer leaves its objects as they were when it failed
  (a readiness timeout leaves its pods running or pending, a stop that failed half-way leaves pods
  up), so its pods may hold their GPUs; giving them away would place another launch onto GPUs that
  are in use (the double placement this module exists to prevent). A failed launch that never
  committed holds nothing (its transaction, reservation included, rolled back); a failed instance
  gives its capacity back when it is stopped or deleted. A retry or a start of a failed instance
  therefore takes nothing again.
  A stopped instance being deleted (``stopped -> deleting``) takes its capacity again, without a
  condition (a delete is never refused), until the namespace is gone (``deleted``): for a few
  seconds it over-counts, never under-counts, and the state alone says what an instance holds.
- a warm-pool standby instance in ``STANDBY_HOLDING`` (provisioning, ready, retiring, failed): its
  placeholder pods hold the profile's resources. A claim moves them to the claiming instance: the
  standby stops holding as the instance starts, in the launch's transaction, with equal amounts (the
  same snapshot digest, so the same resource groups), so the row does not change at all: no gap.

Amounts: whole GPUs per GPU product, MIG slices per bare profile (``1g.10gb``), CPU millis, memory
bytes. The limit of each is what the cluster's schedulable nodes declare allocatable now (as the
matchmaker counts it, ``inventory.selectors.cluster_capacities``), read by the UPDATE itself, so a
node sync or a cordon needs no bookkeeping here.

Rows (``inventory.ClusterReservation``, one per cluster) are created on a cluster's first reservation
with the exact re-sum of what holds it then (so an upgrade, a bulk import or a test that wrote
instances directly starts right); :func:`capacity_rebuild` recomputes every row under the rows' locks;
:func:`capacity_drift` compares them with the re-sum.

Lock order: a reservation takes one row lock, the cluster's, held to the end of the transaction.
Callers take it before the org, workspace and user counter rows (``instances.counters``), so in the
launch (:func:`capacity_place_and_reserve`) and in a start (the state hook below, connected before the
counters' receiver). A transaction that locks several clusters' rows (the pool loop's provisioning,
:func:`capacity_rebuild`) first takes the advisory lock :data:`MULTI_CLUSTER_LOCK`, so that two of
them never deadlock (a launch, a start, a stop or a delete locks one cluster's row only).
"""

import json
import logging
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from django.db import connection, transaction

from instances.models import ComputeInstance, StandbyInstance
from instances.selectors import STANDBY_HOLDING, reservations
from instances.states import ACTIVE, STORAGE_ONLY, State
from inventory.matchmaker import Placement, PlacementRequest, ResourceGroup, normalize_mig_profile
from inventory.models import Cluster, Node
from inventory.reservation_models import ClusterReservation
from inventory.selectors import placement_for
from paas.errors import Conflict
from paas.units import GIB

log = logging.getLogger(__name__)

#: States in which a compute instance holds its GPUs, CPU and memory on its cluster.
HOLDING = frozenset(ACTIVE - STORAGE_ONLY)

#: How many placements a launch tries when the chosen cluster was taken meanwhile.
PLACE_ATTEMPTS = 3

_MIG_PREFIX = r"^(nvidia\.com/)?(mig-)?"  # normalize_mig_profile, in SQL

#: Advisory lock held by every transaction that locks several clusters' rows (the pool loop's
#: provisioning, the rebuild), for the rest of its transaction: two of them never deadlock.
MULTI_CLUSTER_LOCK = 0x57504F4C  # "WPOL"


@dataclass(frozen=True)
class Amounts:
    """What one instance (or a sum of them) holds: the unit of every reservation."""

    gpus: Mapping[str, int]
    mig: Mapping[str, int]
    cpu_millis: int = 0
    memory_bytes: int = 0

    @property
    def empty(self) -> bool:
        return not (any(self.gpus.values()) or any(self.mig.values()) or self.cpu_millis or self.memory_bytes)

    def as_dict(self) -> dict:
        return {
            "gpus": {k: v for k, v in sorted(self.gpus.items()) if v},
            "mig": {k: v for k, v in sorted(self.mig.items()) if v},
            "cpu_millis": self.cpu_millis,
            "memory_bytes": self.memory_bytes,
        }


def amounts(totals) -> Amounts:
    """The capacity in ``totals``: a dict as ``instances.quota.profile_totals`` gives it
    (``gpus_by_model``, ``mig_slices``, ``cpu_millis``, ``memory_gib``), a compute or standby instance
    (the same fields), or a :class:`PlacementRequest` (its groups)."""
    if isinstance(totals, Amounts):
        return totals
    if isinstance(totals, PlacementRequest):
        gpus, mig, cpu, memory = defaultdict(int), defaultdict(int), 0, 0
        for group in totals.groups:
            if group.gpu_count:
                gpus[group.gpu_model] += group.gpu_count
            if group.mig_count:
                mig[group.mig_profile] += group.mig_count
            cpu += group.cpu_millis
            memory += group.memory_bytes
        return Amounts(gpus=dict(gpus), mig=dict(mig), cpu_millis=cpu, memory_bytes=memory)
    get = totals.get if isinstance(totals, Mapping) else lambda name, default=None: getattr(totals, name)
    mig: dict[str, int] = defaultdict(int)
    for profile, count in (get("mig_slices") or {}).items():
        mig[normalize_mig_profile(profile)] += int(count)
    return Amounts(
        gpus={model: int(n) for model, n in (get("gpus_by_model") or {}).items() if n},
        mig={p: n for p, n in mig.items() if n},
        cpu_millis=int(get("cpu_millis") or 0),
        memory_bytes=int(get("memory_gib") or 0) * GIB,
    )


# --- the two statements a launch runs under its lock -------------------------------------------------


def capacity_reserve(*, cluster_id: int, totals, exclude_instance: int | None = None) -> bool:
    """Take ``totals`` (see :func:`amounts`) on the cluster if every resource asked for fits in what its
    schedulable nodes declare allocatable minus what is held there: one conditional UPDATE of the
    cluster's row (it stays locked until the caller's transaction ends). True when taken; False when
    something does not fit (nothing changed, no lock kept). Call it inside a transaction.

    Concurrent reservations on one cluster queue on its row: the second UPDATE waits for the first
    transaction to end and re-checks its condition against the row as the first left it
    (PostgreSQL's READ COMMITTED re-evaluation), so two never take the same last GPUs.

    ``exclude_instance``: the instance this reservation is for, when its row exists already (a launch
    writes it first): the cluster's first row, re-summed, must not count it besides ``totals``."""
    want = amounts(totals)
    if want.empty:
        return True
    if _reserve(cluster_id, want):
        return True
    if _ensure_row(cluster_id, exclude_instance=exclude_instance):  # its first reservation: try again
        return _reserve(cluster_id, want)
    return False


def capacity_release(*, cluster_id: int, totals) -> None:
    """Give ``totals`` back on the cluster (never below zero): a stop, a delete, a retired standby.
    A cluster without a row has nothing to give back (its row, made later, re-sums what holds)."""
    _apply(cluster_id, amounts(totals), sign=-1)


def _apply(cluster_id: int, change: Amounts, *, sign: int) -> None:
    """Add (sign 1) or remove (sign -1, floored at zero) ``change`` on the cluster's row, unconditionally."""
    sets, params = _set_clauses(change, sign=sign)
    if not sets:
        return
    params["cluster"] = cluster_id
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_table()} AS r SET {', '.join(sets)}, updated_at = now() "  # noqa: S608 (no input)
            "WHERE r.cluster_id = %(cluster)s",
            params,
        )


def _reserve(cluster_id: int, want: Amounts) -> bool:
    sets, params = _set_clauses(want, sign=1)
    conditions = []
    node = Node._meta.db_table
    nodes = f"FROM {node} n WHERE n.cluster_id = %(cluster)s AND n.schedulable"
    for i in range(len(want.gpus)):  # the names' order of _set_clauses' parameters
        conditions.append(
            f"COALESCE((r.gpus->>%(g{i})s)::bigint, 0) + %(gn{i})s <= "
            f"(SELECT COALESCE(SUM(GREATEST(n.allocatable_gpus, 0)), 0) {nodes} AND n.gpu_product = %(g{i})s)"
        )
    for i in range(len(want.mig)):
        conditions.append(
            f"COALESCE((r.mig->>%(m{i})s)::bigint, 0) + %(mn{i})s <= "  # noqa: S608 (names are parameters)
            "(SELECT COALESCE(SUM(GREATEST((e.value)::bigint, 0)), 0) "
            f"FROM {node} n CROSS JOIN LATERAL jsonb_each_text(n.allocatable_mig) e "
            "WHERE n.cluster_id = %(cluster)s AND n.schedulable "
            f"AND regexp_replace(btrim(e.key), '{_MIG_PREFIX}', '') = %(m{i})s)"
        )
    if want.cpu_millis:
        conditions.append(
            "r.cpu_millis + %(cpu)s <= "
            f"(SELECT COALESCE(SUM(GREATEST(n.allocatable_cpu_millis, 0)), 0) {nodes})"
        )
    if want.memory_bytes:
        conditions.append(
            "r.memory_bytes + %(memory)s <= "
            f"(SELECT COALESCE(SUM(GREATEST(n.allocatable_memory_bytes, 0)), 0) {nodes})"
        )
    params["cluster"] = cluster_id
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_table()} AS r SET {', '.join(sets)}, updated_at = now() "  # noqa: S608 (no input)
            f"WHERE r.cluster_id = %(cluster)s AND {' AND '.join(conditions)} RETURNING 1",
            params,
        )
        return cursor.fetchone() is not None


def _set_clauses(change: Amounts, *, sign: int) -> tuple[list[str], dict]:
    """SET clauses adding (sign 1) or removing (sign -1, floored at zero) ``change``; names and amounts
    go as parameters (GPU products and MIG profiles are operators' strings)."""
    op = "+" if sign > 0 else "-"
    sets, params = [], {}
    for column, prefix, values in (("gpus", "g", change.gpus), ("mig", "m", change.mig)):
        pairs = []
        for i, (name, count) in enumerate(sorted(values.items())):
            params[f"{prefix}{i}"], params[f"{prefix}n{i}"] = name, count
            pairs.append(
                f"%({prefix}{i})s::text, GREATEST(COALESCE((r.{column}->>%({prefix}{i})s)::bigint, 0) "
                f"{op} %({prefix}n{i})s, 0)"
            )
        if pairs:
            merged = f"r.{column} || jsonb_build_object({', '.join(pairs)})"
            if sign < 0:  # amounts given back to zero leave the object (rows hold no zeros)
                merged = (
                    "(SELECT COALESCE(jsonb_object_agg(e.key, e.value), '{}'::jsonb) "  # noqa: S608
                    f"FROM jsonb_each({merged}) e WHERE (e.value)::bigint > 0)"
                )
            sets.append(f"{column} = {merged}")
    params["cpu"], params["memory"] = change.cpu_millis, change.memory_bytes
    if change.cpu_millis:
        sets.append(f"cpu_millis = GREATEST(r.cpu_millis {op} %(cpu)s, 0)")
    if change.memory_bytes:
        sets.append(f"memory_bytes = GREATEST(r.memory_bytes {op} %(memory)s, 0)")
    return sets, params


def _table() -> str:
    return ClusterReservation._meta.db_table


# --- the re-sum: what holds capacity, from instances and standbys ------------------------------------


def _held_sql(*, cluster_filter: str = "", exclude_instance: bool = False) -> str:
    """A SELECT of (cluster_id, gpus, mig, cpu_millis, memory_bytes) summed over what holds capacity
    now, per cluster (clusters holding nothing are absent). Parameters: %(holding)s, %(standby)s,
    and %(cluster)s / %(exclude)s when asked for."""
    instances, standbys = ComputeInstance._meta.db_table, StandbyInstance._meta.db_table
    where_i = "i.cluster_id IS NOT NULL AND i.state = ANY(%(holding)s)" + cluster_filter.format(t="i")
    if exclude_instance:
        where_i += " AND i.id <> %(exclude)s"
    where_s = "s.state = ANY(%(standby)s)" + cluster_filter.format(t="s")
    return f"""
        WITH held AS (
            SELECT i.cluster_id, i.gpus_by_model AS g, i.mig_slices AS m, i.cpu_millis, i.memory_gib
              FROM {instances} i WHERE {where_i}
            UNION ALL
            SELECT s.cluster_id, s.gpus_by_model, s.mig_slices, s.cpu_millis, s.memory_gib
              FROM {standbys} s WHERE {where_s}
        ),
        scalars AS (
            SELECT cluster_id, SUM(cpu_millis)::bigint AS cpu, SUM(memory_gib::bigint * {GIB})::bigint AS mem
              FROM held GROUP BY cluster_id
        ),
        gpus AS (
            SELECT cluster_id, jsonb_object_agg(k, n) AS j FROM (
                SELECT h.cluster_id, e.key AS k, SUM((e.value)::bigint) AS n
                  FROM held h CROSS JOIN LATERAL jsonb_each_text(h.g) e GROUP BY 1, 2
            ) x WHERE n > 0 GROUP BY cluster_id
        ),
        migs AS (
            SELECT cluster_id, jsonb_object_agg(k, n) AS j FROM (
                SELECT h.cluster_id, regexp_replace(btrim(e.key), '{_MIG_PREFIX}', '') AS k,
                       SUM((e.value)::bigint) AS n
                  FROM held h CROSS JOIN LATERAL jsonb_each_text(h.m) e GROUP BY 1, 2
            ) x WHERE n > 0 GROUP BY cluster_id
        )
        SELECT s.cluster_id, COALESCE(g.j, '{{}}'::jsonb), COALESCE(m.j, '{{}}'::jsonb), s.cpu, s.mem
          FROM scalars s LEFT JOIN gpus g USING (cluster_id) LEFT JOIN migs m USING (cluster_id)
    """  # noqa: S608 (table names and constants only)


def _held_params(**extra) -> dict:
    return {"holding": sorted(HOLDING), "standby": sorted(STANDBY_HOLDING), **extra}


def _ensure_row(cluster_id: int, *, exclude_instance: int | None = None) -> bool:
    """Create the cluster's row with what holds it now (re-summed), unless it exists. True if created.
    ``exclude_instance``: an instance whose state this transaction just changed to a holding one (its
    own reservation follows; the re-sum would count it twice)."""
    select = _held_sql(cluster_filter=" AND {t}.cluster_id = %(cluster)s", exclude_instance=True)
    params = _held_params(cluster=cluster_id, exclude=exclude_instance or 0)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {_table()} (cluster_id, gpus, mig, cpu_millis, memory_bytes, updated_at)
                SELECT c.id, COALESCE(h.gpus, '{{}}'::jsonb), COALESCE(h.mig, '{{}}'::jsonb),
                       COALESCE(h.cpu, 0), COALESCE(h.mem, 0), now()
                  FROM {Cluster._meta.db_table} c
                  LEFT JOIN ({select}) AS h (cluster_id, gpus, mig, cpu, mem) ON h.cluster_id = c.id
                 WHERE c.id = %(cluster)s
                ON CONFLICT (cluster_id) DO NOTHING RETURNING 1""",  # noqa: S608
            params,
        )
        return cursor.fetchone() is not None


def _resum() -> dict[int, dict]:
    """What holds capacity on each cluster now (clusters holding nothing are absent)."""
    with connection.cursor() as cursor:
        cursor.execute(_held_sql(), _held_params())
        return {
            pk: {"gpus": _json(gpus), "mig": _json(mig), "cpu_millis": cpu, "memory_bytes": mem}
            for pk, gpus, mig, cpu, mem in cursor.fetchall()
        }


def _json(value) -> dict:
    return json.loads(value) if isinstance(value, str) else dict(value or {})


def _nonzero(held: dict) -> dict:
    return {
        "gpus": {k: v for k, v in sorted((held.get("gpus") or {}).items()) if v},
        "mig": {k: v for k, v in sorted((held.get("mig") or {}).items()) if v},
        "cpu_millis": held.get("cpu_millis") or 0,
        "memory_bytes": held.get("memory_bytes") or 0,
    }


@transaction.atomic
def capacity_rebuild() -> int:
    """Recompute every cluster's row from the instances and standbys holding capacity now, in one
    transaction: rows are created for every cluster, locked (launches on a cluster wait, and in-flight
    ones are waited for), then set to the re-sum read after the locks (set-based SQL, whatever the
    number of instances). Returns the number of rows whose amounts changed."""
    table, clusters = _table(), Cluster._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [MULTI_CLUSTER_LOCK])
        cursor.execute(
            f"INSERT INTO {table} (cluster_id, gpus, mig, cpu_millis, memory_bytes, updated_at) "  # noqa: S608
            f"SELECT id, '{{}}'::jsonb, '{{}}'::jsonb, 0, 0, now() FROM {clusters} "
            "ON CONFLICT (cluster_id) DO NOTHING"
        )
        cursor.execute(f"SELECT cluster_id FROM {table} ORDER BY cluster_id FOR UPDATE")  # noqa: S608
        cursor.execute(
            f"""WITH fresh AS ({_held_sql()}),
                    target AS (
                        SELECT r.cluster_id, COALESCE(f.gpus, '{{}}'::jsonb) AS gpus,
                               COALESCE(f.mig, '{{}}'::jsonb) AS mig,
                               COALESCE(f.cpu, 0) AS cpu, COALESCE(f.mem, 0) AS mem
                          FROM {table} r
                          LEFT JOIN (SELECT * FROM fresh) AS f (cluster_id, gpus, mig, cpu, mem)
                            ON f.cluster_id = r.cluster_id
                    )
                UPDATE {table} AS r
                   SET gpus = t.gpus, mig = t.mig, cpu_millis = t.cpu, memory_bytes = t.mem,
                       updated_at = now()
                  FROM target t
                 WHERE r.cluster_id = t.cluster_id
                   AND (r.gpus IS DISTINCT FROM t.gpus OR r.mig IS DISTINCT FROM t.mig
                        OR r.cpu_millis <> t.cpu OR r.memory_bytes <> t.mem)""",  # noqa: S608
            _held_params(),
        )
        changed = cursor.rowcount
    return changed


def capacity_drift() -> list[str]:
    """One line per cluster whose row differs from the re-sum of what holds capacity there (amounts
    of zero are ignored), and per cluster holding capacity without a row yet (its first reservation
    creates it from the re-sum; ``capacity_rebuild`` fixes both). Empty: no drift."""
    fresh = _resum()
    rows = {
        pk: {"gpus": gpus, "mig": mig, "cpu_millis": cpu, "memory_bytes": memory}
        for pk, gpus, mig, cpu, memory in ClusterReservation.objects.values_list(
            "cluster_id", "gpus", "mig", "cpu_millis", "memory_bytes"
        )
    }
    names = dict(Cluster.objects.filter(pk__in={*fresh, *rows}).values_list("pk", "name"))
    problems = []
    for pk in sorted({*fresh, *rows}, key=lambda pk: names.get(pk, "")):
        held = _nonzero(fresh.get(pk, {}))
        if pk not in rows:
            if Amounts(**held).empty:
                continue
            problems.append(
                f"Cluster {names.get(pk, pk)}: no reservation row, {_describe(held)} held there "
                "(created on its next reservation, or by capacity_rebuild)."
            )
            continue
        recorded = _nonzero(rows[pk])
        if recorded != held:
            problems.append(
                f"Cluster {names.get(pk, pk)}: reservation row says {_describe(recorded)}, "
                f"instances and standby instances hold {_describe(held)}."
            )
    return problems


def _describe(held: dict) -> str:
    parts = [f"{n} {model} GPU{'s' if n != 1 else ''}" for model, n in held["gpus"].items()]
    parts += [f"{n} MIG {profile}" for profile, n in held["mig"].items()]
    parts.append(f"{held['cpu_millis'] / 1000:g} CPU")
    parts.append(f"{held['memory_bytes'] / GIB:g} GiB memory")
    return ", ".join(parts)


# --- the launch's placement and reservation ----------------------------------------------------------


def capacity_place(request: PlacementRequest) -> Placement:
    """Where the matchmaker places ``request`` now, every cluster's reservation row subtracted (reads
    only: call it before the launch's critical section)."""
    return placement_for(request, reserved=reservations())


def capacity_place_and_reserve(
    *,
    request: PlacementRequest,
    placement: Placement | None = None,
    cluster: Cluster | None = None,
    instance_id: int | None = None,
    attempts: int = PLACE_ATTEMPTS,
) -> tuple[Placement, Cluster | None]:
    """Reserve ``request`` on the cluster ``placement`` chose (placed now when not given): the
    launch's capacity decision, inside its transaction. Should that cluster have been taken meanwhile
    (:func:`capacity_reserve` refused), place again with fresh reservations and try there, up to
    ``attempts`` placements in all (``cluster``: the placement's cluster, when the caller has read it
    already; ``instance_id``: the launch's instance, when its row is written already). Returns (the
    placement, the cluster reserved on) or (a placement explaining why nothing fits now, None): say
    "no capacity" with ``placement.explain()``.

    Holds at most one cluster's row lock when it returns a cluster (none when it returns None)."""
    want = amounts(request)
    placement = placement if placement is not None else capacity_place(request)
    for attempt in range(attempts):
        if placement.cluster is None:
            return placement, None
        if cluster is None or cluster.name != placement.cluster:
            cluster = Cluster.objects.get(name=placement.cluster)
        if capacity_reserve(cluster_id=cluster.pk, totals=want, exclude_instance=instance_id):
            return placement, cluster
        log.info(
            "Capacity on %s was taken meanwhile (attempt %s of %s): placing again",
            cluster.name,
            attempt + 1,
            attempts,
        )
        placement = capacity_place(request)
    if placement.cluster is not None:  # still chosen, still refused: busy, say it as no capacity
        placement = Placement(cluster=None, verdicts=placement.verdicts, request=placement.request)
    return placement, None


# --- the hook on every state change (one receiver) ---------------------------------------------------


def instance_state_changed(*, sender, instance, previous, state, **kwargs) -> None:
    """Receiver of ``instances.signals.instance_state_changed`` (inside the change's transaction, the
    instance's row locked): a compute instance that stops holding capacity (stopped, deleted) gives it
    back; one that holds it again takes it: a start (``stopped -> provisioning``) only if it fits on
    its cluster, refused with the numbers otherwise; a delete of a stopped one without a condition."""
    if sender is not ComputeInstance or not instance.cluster_id:
        return
    held_before, held_now = previous in HOLDING, state in HOLDING
    if held_before == held_now:
        return
    if not held_now:
        capacity_release(cluster_id=instance.cluster_id, totals=instance)
        return
    if state != State.PROVISIONING:  # stopped -> deleting: taken back until the namespace is gone
        _ensure_row(instance.cluster_id, exclude_instance=instance.pk)
        _apply(instance.cluster_id, amounts(instance), sign=1)
        return
    want = amounts(instance)
    if want.empty:
        return
    if _reserve(instance.cluster_id, want):
        return
    if _ensure_row(instance.cluster_id, exclude_instance=instance.pk) and _reserve(instance.cluster_id, want):
        return
    raise Conflict(_start_refusal(instance), code="no_capacity")


def _start_refusal(instance: ComputeInstance) -> str:
    from instances.actions import snapshot_placement_request

    cluster = Cluster.objects.get(pk=instance.cluster_id)
    instance.cluster = cluster
    if (instance.snapshot or {}).get("resource_groups"):
        request = snapshot_placement_request(instance)
    else:  # no groups snapshotted: what it holds, as one group per GPU product or MIG profile
        request = _held_request(instance, cluster.name)
    placement = capacity_place(request)
    explanation = placement.explain() if placement.cluster is None else ""
    return (
        f"{instance.name} cannot start: its cluster {cluster.name} no longer has the free capacity it "
        "needs (a stopped instance keeps its cluster). " + explanation
    ).strip()


def _held_request(instance: ComputeInstance, cluster: str) -> PlacementRequest:
    held = amounts(instance)
    groups = [ResourceGroup(gpu_model=model, gpu_count=n) for model, n in sorted(held.gpus.items())]
    groups += [ResourceGroup(mig_profile=profile, mig_count=n) for profile, n in sorted(held.mig.items())]
    groups.append(ResourceGroup(cpu_millis=held.cpu_millis, memory_bytes=held.memory_bytes))
    return PlacementRequest(
        groups=tuple(g for g in groups if not g.is_empty) or (ResourceGroup(cpu_millis=1),),
        allowed_clusters=(cluster,),
        org_id=instance.org_id,
    )


# --- warm pools' standby instances -------------------------------------------------------------------


def standby_place_and_reserve(request: PlacementRequest) -> tuple[Placement, Cluster | None]:
    """A standby instance's placement and reservation (the pool loop's provisioning, inside its
    transaction): as a launch's, so a standby never takes GPUs a launch has just taken."""
    return capacity_place_and_reserve(request=request)


def standby_released(standby: StandbyInstance) -> None:
    """A standby's namespace is gone (retiring -> deleted): its capacity goes back to the cluster.
    Call in the transaction that moves it to DELETED."""
    capacity_release(cluster_id=standby.cluster_id, totals=standby)
