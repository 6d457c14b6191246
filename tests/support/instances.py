"""Launching a compute instance end to end on the local control plane (shared by the kube tests)."""

from instances import deployer, services
from instances.models import Run


def launch_instance(live: dict, name: str = "dev"):
    """Launch ``name`` in org A's project as its workspace admin and run the deploy to ready."""
    world = live["world"]
    instance = services.instance_launch(
        actor=world.a.users["workspace_admin"], project=world.a.project, name=name, profile=live["profile"]
    )
    run = instance.runs.get()
    assert deployer.execute(run.pk) == "ready", Run.objects.get(pk=run.pk).log
    instance.refresh_from_db()
    return instance
