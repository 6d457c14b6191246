"""Metering: billable intervals opened and closed with the instances' state changes.

A compute or service instance's meter is created with the instance (``post_save``, in its launch
transaction: :func:`instance_saved`), so a period holds every instance that existed in it.
:func:`state_changed` receives ``instances.signals.instance_state_changed`` (connected in
``billing.apps``), which ``instances.states.transition`` sends inside the transaction of every state
change of a compute or service instance, with the instance's row locked. In that same transaction it
closes the meter's open interval and opens the one the new state bills, at one instant, and writes an
audit event: a change that rolls back leaves no interval behind, and none is lost or counted twice.

Which states bill what (:data:`KIND_OF_STATE`):

* *provisioning* and *ready*: **running** (the instance holds its GPUs, CPU, memory and storage);
* *stopped*: **stopped**, and *deleting*: **deleting**, both storage only;
* *pending*, *failed* and *deleted*: nothing (not placed yet, the platform's failure, gone).

A reserved instance is billed for the whole time it exists (``Meter.created_at`` to ``ended_at``),
whatever its intervals say. Warm-pool standby time is the provider's: a claiming instance's meter
starts at its own launch (the claim), never at the standby's creation.
"""

from decimal import Decimal

from django.db import transaction
from django.db.models import CharField, Value
from django.db.models.functions import Cast, Concat
from django.utils import timezone

from billing.models import Interval, Meter
from instances.models import ComputeInstance, ServiceInstance
from instances.states import State
from paas.audit import audit_log

KIND_OF_STATE: dict[str, str] = {
    State.PROVISIONING: Interval.Kind.RUNNING,
    State.READY: Interval.Kind.RUNNING,
    State.STOPPED: Interval.Kind.STOPPED,
    State.DELETING: Interval.Kind.DELETING,
}

_ZERO_PRICE = {
    "currency": "USD",
    "amount": "0",
    "period": "hour",
    "billing_model": "on_demand",
    "stopped_amount": "0",
}


def instance_key(instance) -> str:
    kind = Meter.Kind.SERVICE if isinstance(instance, ServiceInstance) else Meter.Kind.COMPUTE
    return f"{kind}:{instance.pk}"


def _person(user) -> str:
    return (user.email or user.get_username()) if user is not None else ""


def _meter_fields(instance) -> dict:
    """What a meter copies of ``instance`` (a compute or service instance) and its launch snapshot."""
    snapshot = instance.snapshot or {}
    price = _ZERO_PRICE | (snapshot.get("price") or {})
    service = isinstance(instance, ServiceInstance)
    compute = instance.compute_instance if service else instance
    project, org = instance.project, instance.org
    return {
        "kind": Meter.Kind.SERVICE if service else Meter.Kind.COMPUTE,
        "compute_instance": compute,
        "service_instance": instance if service else None,
        "name": instance.name,
        "org": org,
        "org_name": org.display_name or org.name,
        "project": project,
        "project_name": project.display_name or project.name,
        "owner": instance.owner,
        "owner_repr": _person(instance.owner),
        "profile_id": snapshot.get("profile_id") or instance.profile_id,
        "profile_name": snapshot.get("name") or (instance.profile.name if instance.profile_id else ""),
        "cluster": compute.cluster,
        "cluster_name": compute.cluster.name if compute.cluster_id else "",
        "namespace": compute.namespace,
        "currency": price["currency"],
        "amount": Decimal(str(price["amount"])),
        "unit": price["period"],
        "billing_model": price["billing_model"],
        "stopped_amount": Decimal(str(price["stopped_amount"])),
        "gpus": instance.gpus,
        "gpu_units": instance.gpu_units,
        "gpus_by_model": dict(getattr(instance, "gpus_by_model", None) or {}),
        "mig_slices": dict(instance.mig_slices or {}),
        "cpu_millis": instance.cpu_millis,
        "memory_gib": instance.memory_gib,
        "storage_gib": instance.storage_gib,
        "created_at": instance.created_at.replace(microsecond=0),
    }


#: Fields known only once the instance is placed and deployed (a namespace is named by the deploy).
PLACEMENT = ("cluster", "cluster_name", "namespace")
#: What an instance holds, as its meter copies it (followed when a launch is placed again).
RESOURCES = ("gpus", "gpu_units", "gpus_by_model", "mig_slices", "cpu_millis", "memory_gib", "storage_gib")


def meter_for(instance) -> Meter:
    """The meter of ``instance`` (created at its launch by :func:`instance_saved`; created here for one
    launched before billing was installed), with its placement filled in once it is known."""
    key = instance_key(instance)
    meter = Meter.objects.filter(instance_key=key).first()
    if meter is None:
        return Meter.objects.create(instance_key=key, **_meter_fields(instance))
    fields = _meter_fields(instance)
    changed = [f for f in PLACEMENT if not getattr(meter, f) and fields[f]]
    for f in changed:
        setattr(meter, f, fields[f])
    if changed:
        meter.save(update_fields=changed)
    return meter


def instance_saved(sender, instance, created: bool, raw: bool = False, **kwargs) -> None:
    """Receiver of ``post_save`` of compute and service instances: the meter is created with the
    instance, in its launch transaction, so that a period holds every instance that existed in it from
    the moment it was launched (a reserved price bills from then), whenever its first state change
    comes. Services are saved when they are deployed, with what they use of their compute instance.
    A compute instance placed again within its launch (saved with ``cluster`` among its
    ``update_fields``) moves its meter's cluster and resources with it."""
    if raw:
        return
    if created:
        # One statement in the launch's hot path (a meter of this key exists only if created already).
        Meter.objects.bulk_create(
            [Meter(instance_key=instance_key(instance), **_meter_fields(instance))], ignore_conflicts=True
        )
        return
    if "cluster" in (kwargs.get("update_fields") or ()) and isinstance(instance, ComputeInstance):
        # Placed again within its launch (the first cluster's capacity was taken meanwhile): the meter
        # follows the cluster and what the instance holds there.
        fields = _meter_fields(instance)
        Meter.objects.filter(instance_key=instance_key(instance)).update(
            **{f: fields[f] for f in ("cluster", "cluster_name", *RESOURCES)}
        )


def state_changed(sender, instance, previous: str, state: str, reason: str = "", **kwargs) -> None:
    """Receiver of ``instance_state_changed``: close and open intervals at the change's instant."""
    if sender not in (ComputeInstance, ServiceInstance):
        return  # applications are billed through their compute instance
    meter = meter_for(instance)
    was, now_kind = KIND_OF_STATE.get(previous), KIND_OF_STATE.get(state)
    if was == now_kind and state != State.DELETED:
        return
    at = timezone.now().replace(microsecond=0)  # whole seconds: periods' seconds are exact integers
    closed = Interval.objects.filter(meter=meter, ended_at__isnull=True).update(ended_at=at)
    opened = None
    if now_kind is not None:
        opened = Interval.objects.create(meter=meter, kind=now_kind, started_at=at)
    if state == State.DELETED and meter.ended_at is None:
        meter.ended_at = at
        meter.save(update_fields=["ended_at"])
    if not closed and opened is None and state != State.DELETED:
        return
    audit_log(
        actor=None,
        action="usage.interval",
        target=instance,
        project=instance.project,
        details={
            "meter": meter.pk,
            "previous": previous,
            "state": state,
            "at": at.isoformat(),
            "closed": bool(closed),
            "opened": now_kind or None,
            "reason": reason[:200],
        },
    )


def meter_untracked(*, limit: int = 500) -> int:
    """Meter the instances in a billed state that have no meter (those running before billing was
    installed): a meter and an open interval from now on, as if they had just changed state. The
    instance row is locked (skipped when a state change holds it: that change meters it). Returns how
    many were metered; called by the roll-up's schedule before each roll-up."""
    done = 0
    for model, kind in ((ComputeInstance, Meter.Kind.COMPUTE), (ServiceInstance, Meter.Kind.SERVICE)):
        keys = Meter.objects.filter(kind=kind).values("instance_key")
        untracked = (
            model.objects.filter(state__in=list(KIND_OF_STATE))
            .annotate(key=Concat(Value(f"{kind}:"), Cast("pk", CharField())))
            .exclude(key__in=keys)
            .values_list("pk", flat=True)[:limit]
        )
        for pk in list(untracked):
            with transaction.atomic():
                row = model.objects.select_for_update(skip_locked=True).filter(pk=pk).first()
                if row is None or Meter.objects.filter(instance_key=instance_key(row)).exists():
                    continue
                state_changed(model, row, previous=State.PENDING, state=row.state, reason="metering started")
                done += 1
    return done
