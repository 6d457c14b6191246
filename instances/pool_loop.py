"""Warm pools' control loop: keep each pool's standby instances at the capacity in force.

``converge`` runs every minute (the "warm pools" schedule), after each claim and after each pool edit.
One pass:

1. ensures every published warm-pool profile has its default pool (a system profile's with no pool
   quota; a tenant profile's with a pool quota of 0 GPUs: standby GPUs are the provider's, an operator
   raises it) and keeps each default pool's ``desired`` equal to the profile's ``warm_pool_size``;
2. retires standby instances whose pool or profile is gone;
3. per pool, under the pool's row lock taken with ``SKIP LOCKED`` (two loops never work one pool; the
   second passes it over): retires standbys built from an older snapshot of the profile (digest), failed
   ones and the surplus over the target (oldest first), each row locked ``SKIP LOCKED`` so that a
   standby a launch is claiming right now is never touched; re-drives provisioning and retiring
   standbys whose worker has been silent for ``INSTANCE_RUN_STALE_SECONDS`` (and gives a provisioning
   one up after ``MAX_ATTEMPTS``); provisions new standbys up to the target, each placed by the
   matchmaker within the pool's scope and reserved on its cluster like a launch (so a
   pool never holds more GPUs of a model than its clusters have free after tenants' instances), within
   the pool quota; and writes the pool's status with the exact reason when the target is out of reach.

Provisioning reserves each standby's capacity as a launch does (``instances.capacity``: a conditional
UPDATE of the cluster's reservation row, in the loop's transaction): loops and launches never place
onto the same free GPUs. The batch then takes the pool quota (``instances.pool_quota``: a conditional
UPDATE of the pool's usage row); refused, it rolls back to its savepoint. Loops provision one at a
time (a transaction-scoped advisory lock): one loop may reserve on several clusters, and two doing so
in opposite orders would deadlock.

Every decision is a platform audit event (``warm_pool.provision``, ``warm_pool.retire``,
``warm_pool.redrive``, ``warm_pool.give_up``); the work on the clusters is enqueued on the cluster's agent
(``standby_deploy``, ``standby_delete``) on commit.
"""

import logging
import uuid
from collections import Counter
from dataclasses import replace
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q, prefetch_related_objects
from django.utils import timezone

from catalog.models import ComputeProfile
from instances import capacity, pool_claims, pool_quota, pool_schedules, selectors
from instances.baseline import standby_namespace_name
from instances.models import StandbyInstance, WarmPool
from instances.quota import profile_totals
from inventory import mig
from inventory.models import Cluster
from inventory.routing import enqueue_for_cluster
from paas.audit import audit_log

log = logging.getLogger(__name__)

DEPLOY = "instances.tasks.standby_deploy"
DELETE = "instances.tasks.standby_delete"
#: Deploy attempts (counted by the worker) after which a silent provisioning standby is given up.
MAX_ATTEMPTS = 3
State = StandbyInstance.State
LIVE = (State.PROVISIONING, State.READY)


def converge(*, pool_id: int | None = None, now=None) -> dict[int, str]:
    """One pass of the loop over every pool (or ``pool_id``); ``now`` is the instant the schedules are
    read at (default: now). Returns each pool's status; a pool another loop is working is left out."""
    now = now or timezone.now()
    ensure_default_pools()
    retire_orphans()
    ids = (
        [pool_id]
        if pool_id is not None
        else list(WarmPool.objects.order_by("pk").values_list("pk", flat=True))
    )
    result = {}
    for pk in ids:
        try:
            status = converge_pool(pk, now=now)
        except Exception as exc:  # one broken pool must not starve the others: said on the pool
            log.exception("Warm pool %s: the loop failed", pk)
            WarmPool.objects.filter(pk=pk).update(
                status=WarmPool.Status.SHORT,
                status_reason=f"the loop failed on this pool: {exc}"[:2000],
                checked_at=timezone.now(),
            )
            status = WarmPool.Status.SHORT
        if status is not None:
            result[pk] = status
    return result


# --- default pools and orphans --------------------------------------------------------------------------


def ensure_default_pools() -> list[WarmPool]:
    """The default pool of every published warm-pool profile that has none (concurrent loops: one wins)."""
    missing = ComputeProfile.objects.filter(
        published=True, allocation_strategy=ComputeProfile.Allocation.WARM_POOL
    ).exclude(
        pk__in=WarmPool.objects.filter(datacenter__isnull=True, cluster__isnull=True).values("profile_id")
    )
    created = []
    for profile in missing:
        tenant = profile.org_id is not None
        try:
            with transaction.atomic():
                pool = WarmPool.objects.create(
                    profile=profile, desired=profile.warm_pool_size, max_gpus=0 if tenant else None
                )
                audit_log(
                    actor=None,
                    action="warm_pool.create",
                    target=pool,
                    details={
                        "profile": profile.name,
                        "desired": pool.desired,
                        "max_gpus": pool.max_gpus,
                        "why": "default pool of a warm-pool profile"
                        + (
                            "; a tenant profile: its pool quota is 0 until an operator sets it"
                            if tenant
                            else ""
                        ),
                    },
                )
        except IntegrityError:  # another loop made it meanwhile
            continue
        created.append(pool)
    return created


def retire_orphans() -> int:
    """Retire the standby instances whose pool or profile was deleted."""
    with transaction.atomic():
        orphans = list(
            StandbyInstance.objects.filter(state__in=(*LIVE, State.FAILED))
            .filter(pool__isnull=True)
            .select_for_update(skip_locked=True, of=("self",))
            .select_related("cluster")
        ) + list(
            StandbyInstance.objects.filter(state__in=(*LIVE, State.FAILED), profile__isnull=True)
            .exclude(pool__isnull=True)
            .select_for_update(skip_locked=True, of=("self",))
            .select_related("cluster")
        )
        reasons = {s.pk: "pool deleted" if s.pool_id is None else "profile deleted" for s in orphans}
        _retire(orphans, reasons, pool=None)
        _redrive_stuck(StandbyInstance.objects.filter(pool__isnull=True), pool=None)
    return len(orphans)


# --- one pool -------------------------------------------------------------------------------------------


def converge_pool(pool_id: int, *, now) -> str | None:
    """Bring one pool to its target; None when another loop holds the pool (or it is gone)."""
    with transaction.atomic():
        pool = (
            WarmPool.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("profile", "datacenter", "cluster")
            .filter(pk=pool_id)
            .first()
        )
        if pool is None:
            return None
        profile = pool.profile
        prefetch_related_objects([profile], "resource_groups", "template_version__template")
        if pool.datacenter_id is None and pool.cluster_id is None and pool.desired != profile.warm_pool_size:
            pool.desired = profile.warm_pool_size  # the default pool follows the profile
        idle = pool_schedules.idle_reason(pool)
        target = pool_schedules.effective_desired(pool, now)
        digest = pool_claims.snapshot_digest(pool_claims.launch_snapshot(profile)) if not idle else None

        # 1. Retire what must go: built from another snapshot, failed, then the surplus (oldest first).
        # Read unlocked; only the rows retired are locked (SKIP LOCKED: one a launch is claiming right
        # now is passed over), so that launches keep claiming while the loop works.
        standbys = list(
            pool.standbys.filter(state__in=(*LIVE, State.FAILED))
            .select_related("cluster")
            .order_by("created_at", "pk")
        )
        reasons: dict[int, str] = {}
        for standby in standbys:
            if standby.state == State.FAILED:
                reasons[standby.pk] = "failed"
            elif digest is not None and standby.snapshot_digest != digest:
                reasons[standby.pk] = "profile changed"
            elif not _in_scope(pool, standby.cluster):
                reasons[standby.pk] = "outside the pool's scope"
        keep = [s for s in standbys if s.state in LIVE and s.pk not in reasons]
        retired = _lock(list(reasons))
        surplus = len(keep) - target
        if surplus > 0:
            extra = _lock([s.pk for s in keep], limit=surplus)  # oldest first
            reasons.update({s.pk: "surplus" for s in extra})
            retired += extra
            surplus -= len(extra)
        _retire(retired, reasons, pool=pool)
        gone = {s.pk for s in retired}
        keep = [s for s in keep if s.pk not in gone]

        # 2. Re-drive the ones whose worker went silent.
        given_up = _redrive_stuck(pool.standbys.all(), pool=pool)
        keep = [s for s in keep if s.pk not in given_up]

        # 3. Provision up to the target; while the pool's last deploy failed, one probe at a time.
        failure = _last_failure(pool)
        short = ""
        if not idle and len(keep) < target:
            want = target - len(keep)
            if failure:
                want = max(0, 1 - sum(1 for s in keep if s.state == State.PROVISIONING))
            if want:
                made, short = _provision(pool, profile, want=want, target=target, have=len(keep))
                keep += made

        # 4. Status, and why the target is out of reach.
        ready = sum(1 for s in keep if s.state == State.READY)
        provisioning = len(keep) - ready
        if idle:
            status, reason = WarmPool.Status.DISABLED, idle
        elif short or (failure and len(keep) < target):
            status = WarmPool.Status.SHORT
            reason = "; ".join(
                part for part in (short, failure and f"a standby deploy failed: {failure}") if part
            )
        elif ready == target and len(keep) == target:
            status, reason = WarmPool.Status.AT_TARGET, ""
        else:
            status = WarmPool.Status.CONVERGING
            reason = f"{ready} of {target} ready, {provisioning} provisioning" + (
                f"; {surplus} surplus being claimed or held, retired next pass" if surplus > 0 else ""
            )
        pool.status, pool.status_reason, pool.checked_at = status, reason, timezone.now()
        pool.save(update_fields=["desired", "status", "status_reason", "checked_at"])
        return status


def _in_scope(pool: WarmPool, cluster: Cluster) -> bool:
    """Whether a standby on ``cluster`` belongs to the pool's scope (after an operator changed it)."""
    if pool.cluster_id:
        return cluster.pk == pool.cluster_id
    if pool.datacenter_id:
        return cluster.datacenter_id == pool.datacenter_id
    return True


def _lock(pks: list[int], *, limit: int | None = None) -> list[StandbyInstance]:
    """Lock these standbys (oldest first, at most ``limit``) if still live or failed, skipping any row
    another transaction holds (a launch claiming it)."""
    if not pks or limit == 0:
        return []
    rows = (
        StandbyInstance.objects.filter(pk__in=pks, state__in=(*LIVE, State.FAILED))
        .order_by("created_at", "pk")
        .select_for_update(skip_locked=True, of=("self",))
        .select_related("cluster")
    )
    return list(rows[:limit] if limit is not None else rows)


FAILED_PREFIX = "Retired: failed: "


def _last_failure(pool: WarmPool) -> str:
    """The reason the pool's newest deploy failed, if no standby of the pool got ready since; else ""."""
    failed = (
        pool.standbys.filter(Q(state=State.FAILED) | Q(state_reason__startswith=FAILED_PREFIX))
        .order_by("-created_at", "-pk")
        .values_list("created_at", "state_reason")
        .first()
    )
    if failed is None:
        return ""
    if pool.standbys.filter(ready_at__isnull=False, created_at__gt=failed[0]).exists():
        return ""
    return failed[1].removeprefix(FAILED_PREFIX) or "no reason given"


def _retire(standbys: list[StandbyInstance], reasons: dict[int, str], *, pool: WarmPool | None) -> None:
    """Locked rows -> RETIRING, their namespace deletion enqueued; one audit event for the lot."""
    if not standbys:
        return
    at = timezone.now()
    for standby in standbys:
        why = reasons[standby.pk]
        if why == "failed":  # the worker's reason is kept: the pool's status shows it
            standby.state_reason = FAILED_PREFIX + (standby.state_reason or "no reason given")
        else:
            standby.state_reason = f"Retired: {why}."
        standby.state = State.RETIRING
        standby.heartbeat_at = at  # the delete's own clock starts now (a silent one is re-driven)
        standby.save(update_fields=["state", "state_reason", "heartbeat_at"])
        enqueue_for_cluster(standby.cluster, DELETE, standby.pk)
    audit_log(
        actor=None,
        action="warm_pool.retire",
        target=pool,
        target_type="" if pool else "instances.warmpool",
        target_repr="" if pool else "(deleted pool)",
        details={
            "count": len(standbys),
            "reasons": dict(Counter(reasons[s.pk] for s in standbys)),
            "standbys": [s.namespace for s in standbys],
        },
    )


def _redrive_stuck(queryset, *, pool: WarmPool | None) -> set[int]:
    """Provisioning/retiring standbys silent for INSTANCE_RUN_STALE_SECONDS: enqueue their work again, or
    give a provisioning one up (FAILED; the next pass retires it) after MAX_ATTEMPTS. Returns the pks
    given up."""
    at = timezone.now()
    stale = at - timedelta(seconds=settings.INSTANCE_RUN_STALE_SECONDS)
    stuck = list(
        queryset.filter(state__in=(State.PROVISIONING, State.RETIRING))
        .exclude(heartbeat_at__gte=stale)
        .exclude(heartbeat_at__isnull=True, created_at__gte=stale)
        .select_for_update(skip_locked=True, of=("self",))
        .select_related("cluster")
    )
    redriven, given_up = [], []
    too_old = at - timedelta(seconds=settings.INSTANCE_RUN_STALE_SECONDS * (MAX_ATTEMPTS + 1))
    for standby in stuck:
        if standby.state == State.PROVISIONING and (
            standby.attempts >= MAX_ATTEMPTS or standby.created_at < too_old
        ):
            standby.state = State.FAILED
            standby.state_reason = (
                f"Gave up: no word from the worker after {standby.attempts} deploy attempt(s) "
                f"({settings.INSTANCE_RUN_STALE_SECONDS} s without a heartbeat)."
            )
            standby.save(update_fields=["state", "state_reason"])
            given_up.append(standby)
            continue
        standby.heartbeat_at = at
        standby.save(update_fields=["heartbeat_at"])
        enqueue_for_cluster(
            standby.cluster, DEPLOY if standby.state == State.PROVISIONING else DELETE, standby.pk
        )
        redriven.append(standby)
    for action, rows in (("warm_pool.redrive", redriven), ("warm_pool.give_up", given_up)):
        if rows:
            audit_log(
                actor=None,
                action=action,
                target=pool,
                target_type="" if pool else "instances.warmpool",
                target_repr="" if pool else "(deleted pool)",
                details={
                    "count": len(rows),
                    "states": dict(Counter(s.state for s in rows)),
                    "standbys": [s.namespace for s in rows],
                    "silent_for_seconds": settings.INSTANCE_RUN_STALE_SECONDS,
                },
            )
    return {s.pk for s in given_up}


# --- provisioning ---------------------------------------------------------------------------------------


def _scope(pool: WarmPool, profile: ComputeProfile) -> tuple[tuple[str, ...] | None, str]:
    """The cluster names the pool's standbys may go to (None: any the profile allows), or a reason."""
    allowed = [c.strip() for c in (profile.input_values.get("cluster_details") or "").split(",") if c.strip()]
    if pool.cluster_id:
        if allowed and pool.cluster.name not in allowed:
            return (
                (),
                f"cluster {pool.cluster.name} is not among the profile's clusters ({', '.join(allowed)})",
            )
        return (pool.cluster.name,), ""
    if pool.datacenter_id:
        names = set(Cluster.objects.filter(datacenter=pool.datacenter).values_list("name", flat=True))
        if allowed:
            names &= set(allowed)
        if not names:
            return (), f"no cluster of datacenter {pool.datacenter.name} may run the profile"
        return tuple(sorted(names)), ""
    return None, ""


def _no_fit(placement) -> str:
    for line in placement.explain().splitlines():
        if line.startswith("No cluster fits"):
            return line
    return "no cluster fits"


def _provision(pool: WarmPool, profile: ComputeProfile, *, want: int, target: int, have: int):
    """Create up to ``want`` standbys (PROVISIONING, deploy enqueued); returns (rows, why short or "")."""
    if profile.org_id is not None and pool.max_gpus == 0:
        return [], "tenant profile: an operator must set the pool quota"
    # One loop provisions at a time (until its transaction ends): a loop may reserve on several
    # clusters, in the matchmaker's order, and two doing so in opposite orders would deadlock.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [capacity.MULTI_CLUSTER_LOCK])
    allowed, why = _scope(pool, profile)
    if why:
        return [], why
    base = profile_totals(profile)
    per_units = base["gpu_units"]
    short = ""
    # What the pool holds, from its usage row (made now from the re-sum if it has none): an upper
    # bound, as only a loop raises it and this one holds the advisory lock. The take after the batch is
    # the decision (instances.pool_quota).
    held = pool_quota.pool_held(pool.pk) if per_units else 0
    if pool.max_gpus is not None and per_units:
        room = pool.max_gpus * mig.UNITS_PER_GPU - held
        fits = max(room // per_units, 0)
        if fits < want:
            allows = pool.max_gpus * mig.UNITS_PER_GPU // per_units
            short = f"pool quota {pool.max_gpus} GPUs allows {allows} of {target}"
            if allows > have + fits:
                short += " (retiring standby instances still hold their GPUs)"
            want = fits
    request = selectors.placement_request(profile, profile.org_id)
    if allowed is not None:
        request = replace(request, allowed_clusters=allowed)
    snapshot = pool_claims.launch_snapshot(profile)
    digest = pool_claims.snapshot_digest(snapshot)
    try:
        with transaction.atomic():  # a savepoint: a refused take rolls back the batch, its deploys too
            made, no_fit = _provision_batch(
                pool, profile, request=request, snapshot=snapshot, digest=digest, want=want
            )
            if no_fit:
                short = short or f"no capacity for {target - have - len(made)} more of {target}: {no_fit}"
            if not pool_quota.pool_take(pool_id=pool.pk, units=sum(s.gpu_units for s in made)):
                raise _QuotaRefused
    except _QuotaRefused:
        log.warning("Warm pool %s: the pool quota refused %s new standbys (drift?)", pool.pk, len(made))
        return [], (
            f"pool quota {pool.max_gpus} GPUs refused {len(made)} more standby instances: the pool's usage "
            "row disagrees with its standbys (the drift check reports it)"
        )
    if made:
        audit_log(
            actor=None,
            action="warm_pool.provision",
            target=pool,
            details={
                "count": len(made),
                "target": target,
                "had": have,
                "clusters": dict(Counter(s.cluster.name for s in made)),
                "standbys": [s.namespace for s in made],
                "short": short,
            },
        )
    return made, short


class _QuotaRefused(Exception):
    """The pool quota's take refused the loop's batch (rolled back to its savepoint)."""


def _provision_batch(pool, profile, *, request, snapshot, digest, want: int) -> tuple[list, str]:
    """Place, reserve and create up to ``want`` standbys (PROVISIONING, deploy enqueued on commit);
    returns them and, if fewer than ``want`` fit on the clusters, the matchmaker's reason."""
    made: list[StandbyInstance] = []
    clusters: dict[str, dict] = {}
    for _ in range(want):
        # Placed and reserved as a launch is (instances.capacity): the cluster's reservation row is
        # taken with a conditional UPDATE, so a standby never takes GPUs a launch has just taken.
        placement, cluster = capacity.standby_place_and_reserve(request)
        if cluster is None:
            return made, _no_fit(placement)
        if cluster.name not in clusters:
            clusters[cluster.name] = profile_totals(profile, cluster_id=cluster.pk)
        totals = clusters[cluster.name]
        standby = StandbyInstance.objects.create(
            pool=pool,
            profile=profile,
            snapshot=snapshot,
            snapshot_digest=digest,
            cluster=cluster,
            namespace=f"pending-{uuid.uuid4().hex}",
            placement=placement.as_dict(),
            state=State.PROVISIONING,
            state_reason=f"Provisioning on {cluster.name}.",
            **totals,
        )
        standby.namespace = standby_namespace_name(profile.name, standby.pk)
        standby.save(update_fields=["namespace"])
        enqueue_for_cluster(cluster, DEPLOY, standby.pk)
        made.append(standby)
    return made, ""
