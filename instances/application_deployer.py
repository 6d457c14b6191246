"""The application deployer (worker side): an application's deploy, retry and delete runs, driven by
``instances.deployer.execute`` (claims, retries, failure and the reconcile are the compute instances'
own)."""

from django.utils import timezone

from instances.models import Application, ComputeInstance, Run
from instances.states import State, transition
from paas.audit import audit_log


def deleted_with(compute: ComputeInstance) -> None:
    """The compute instance is deleted (in its delete run's success transaction): so are its
    applications (their rows, revisions, runs and audit stay)."""
    for application in (
        Application.objects.select_for_update().filter(compute_instance=compute).exclude(state=State.DELETED)
    ):
        if application.state != State.DELETING:
            transition(application, State.DELETING, f"Its compute instance {compute.name} was deleted.")
        transition(application, State.DELETED, f"Deleted with its compute instance {compute.name}.")
        Run.objects.filter(
            application=application, outcome__in=(Run.Outcome.QUEUED, Run.Outcome.RUNNING)
        ).update(
            outcome=Run.Outcome.FAILED,
            message="The compute instance was deleted.",
            finished_at=timezone.now(),
        )
        audit_log(
            actor=None,
            action="application.deleted",
            target=application,
            project=application.project,
            details={"with_instance": compute.name},
        )
