"""Receivers of tenancy's signals that are about instances as a whole (not one instance's access)."""

from instances.models import ComputeInstance, ServiceInstance
from instances.states import State
from paas.errors import Conflict

SHOWN_NAMES = 5


def project_deleting(*, project, actor, **kwargs) -> None:
    """Receiver of ``tenancy.signals.project_deleting`` (inside the delete's transaction).

    A workspace that still has instances (anything not yet deleted: running, failed, being deleted)
    is not deleted: their namespaces and GPUs would be orphaned. The rows of deleted instances (their
    runs and collaborators) go with the workspace; the audit trail keeps their history.
    """
    live = ComputeInstance.objects.filter(project=project).exclude(state=State.DELETED).order_by("name")
    names = list(live.values_list("name", flat=True)[: SHOWN_NAMES + 1])
    if names:
        count = live.count()
        shown = ", ".join(names[:SHOWN_NAMES]) + (", …" if count > SHOWN_NAMES else "")
        noun = "instance" if count == 1 else "instances"
        raise Conflict(
            f"The workspace still has {count} {noun} ({shown}): delete {'it' if count == 1 else 'them'} "
            "first, then delete the workspace.",
            code="project_not_empty",
        )
    ServiceInstance.objects.filter(project=project, state=State.DELETED).delete()  # (they protect theirs)
    ComputeInstance.objects.filter(project=project, state=State.DELETED).delete()
