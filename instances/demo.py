"""Demo data for instances: when the demo cluster is up, Bob has one instance in acme/research, so
the developer hub's pages show a live, deployed instance from the first sign-in. Idempotent."""

from catalog.models import ComputeProfile
from instances import services
from instances.models import ComputeInstance
from inventory.models import Cluster
from paas.errors import ApplicationError
from tenancy.models import Project, User


def seed() -> list[str]:
    if not Cluster.objects.filter(name="local", status=Cluster.Status.REACHABLE).exists():
        return ["Demo instances: none (no reachable demo cluster)."]
    research = Project.objects.get(org__name="acme", name="research")
    existing = ComputeInstance.objects.filter(project=research, name="demo-box").first()
    if existing is not None:
        return [f"Demo instances: 'demo-box' in acme/research is {existing.state}."]
    profile = ComputeProfile.objects.get(org__isnull=True, project__isnull=True, name="small")
    try:
        services.instance_launch(
            actor=User.objects.get(username="bob"),
            project=research,
            name="demo-box",
            description="Launched by the demo set-up.",
            profile=profile,
        )
    except ApplicationError as exc:
        return [f"Demo instances: 'demo-box' could not be launched: {exc.message}"]
    return ["Demo instances: bob's 'demo-box' (Small) launched in acme/research; the worker deploys it."]
