"""The states of a compute instance (and of a service instance, which has the same lifecycle), the
transitions allowed between them and the one function that moves an instance
(:func:`transition`, which publishes every change: ``instance_state_changed``)."""

from django.db import models
from django.utils import timezone

from instances.signals import instance_state_changed
from paas.errors import Conflict


class State(models.TextChoices):
    PENDING = "pending", "Pending"
    PROVISIONING = "provisioning", "Provisioning"
    READY = "ready", "Ready"
    STOPPED = "stopped", "Stopped"
    FAILED = "failed", "Failed"
    DELETING = "deleting", "Deleting"
    DELETED = "deleted", "Deleted"


TRANSITIONS: dict[str, frozenset[str]] = {
    State.PENDING: frozenset({State.PROVISIONING, State.FAILED, State.DELETING}),
    State.PROVISIONING: frozenset(
        {State.READY, State.STOPPED, State.FAILED, State.DELETING, State.PROVISIONING}
    ),
    State.READY: frozenset({State.PROVISIONING, State.DELETING}),
    # A stopped instance or service keeps its storage and its objects but no pods: GPUs, CPU and
    # memory are released (instances.quota counts only its storage). "start" goes through
    # PROVISIONING again, after the same quota and capacity checks as a launch.
    State.STOPPED: frozenset({State.PROVISIONING, State.DELETING}),
    State.FAILED: frozenset({State.PROVISIONING, State.DELETING}),
    State.DELETING: frozenset({State.DELETED, State.FAILED, State.DELETING}),
    State.DELETED: frozenset(),
}

# States whose instances hold quota and capacity.
ACTIVE = frozenset(
    {State.PENDING, State.PROVISIONING, State.READY, State.STOPPED, State.FAILED, State.DELETING}
)
# Active states whose instances hold only their storage (no GPUs, CPU or memory).
STORAGE_ONLY = frozenset({State.STOPPED})


def can_move(current: str, target: str) -> bool:
    return target in TRANSITIONS.get(current, frozenset())


def transition(instance, target: str, reason: str = "") -> None:
    """Move an instance to ``target`` if the state machine allows it (call inside a transaction, with
    the instance's row locked), then send ``instances.signals.instance_state_changed`` synchronously,
    in that same transaction: a receiver sees the new state saved, and one that raises undoes it."""
    if not can_move(instance.state, target):
        raise Conflict(f"An instance cannot go from {instance.get_state_display()} to {State(target).label}.")
    previous = instance.state
    instance.state, instance.state_reason = target, reason
    fields = ["state", "state_reason"]
    if target == State.READY:
        instance.ready_at = timezone.now()
        fields.append("ready_at")
    if target == State.DELETED:
        instance.deleted_at = timezone.now()
        fields.append("deleted_at")
    instance.save(update_fields=fields)
    instance_state_changed.send(
        sender=type(instance), instance=instance, previous=previous, state=target, reason=reason
    )
