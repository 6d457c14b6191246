"""The states of a compute instance and the transitions allowed between them, in one place."""

from django.db import models


class State(models.TextChoices):
    PENDING = "pending", "Pending"
    PROVISIONING = "provisioning", "Provisioning"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"
    DELETING = "deleting", "Deleting"
    DELETED = "deleted", "Deleted"


TRANSITIONS: dict[str, frozenset[str]] = {
    State.PENDING: frozenset({State.PROVISIONING, State.FAILED, State.DELETING}),
    State.PROVISIONING: frozenset({State.READY, State.FAILED, State.DELETING, State.PROVISIONING}),
    State.READY: frozenset({State.PROVISIONING, State.DELETING}),
    State.FAILED: frozenset({State.PROVISIONING, State.DELETING}),
    State.DELETING: frozenset({State.DELETED, State.FAILED, State.DELETING}),
    State.DELETED: frozenset(),
}

# States whose instances hold quota and capacity.
ACTIVE = frozenset({State.PENDING, State.PROVISIONING, State.READY, State.FAILED, State.DELETING})


def can_move(current: str, target: str) -> bool:
    return target in TRANSITIONS.get(current, frozenset())
