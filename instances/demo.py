"""Demo data for instances: when the demo cluster is up, Bob has one instance in acme/research with a
Jupyter notebook on it, so the developer hub's pages (instances and *My deployments*) show live,
deployed objects from the first sign-in. Both deploys run here, synchronously (a few seconds on the
local cluster; the worker finds them finished). Idempotent."""

from catalog.models import ComputeProfile, ServiceProfile
from instances import deployer, service_instances, services
from instances.models import ComputeInstance, ServiceInstance
from instances.states import State
from inventory.models import Cluster
from paas.errors import ApplicationError
from tenancy.models import Project, User


def seed() -> list[str]:
    if not Cluster.objects.filter(name="local", status=Cluster.Status.REACHABLE).exists():
        return ["Demo instances: none (no reachable demo cluster)."]
    research = Project.objects.get(org__name="acme", name="research")
    bob = User.objects.get(username="bob")
    instance = ComputeInstance.objects.filter(project=research, name="demo-box").first()
    report = []
    if instance is None:
        profile = ComputeProfile.objects.get(org__isnull=True, project__isnull=True, name="small")
        try:
            instance = services.instance_launch(
                actor=bob,
                project=research,
                name="demo-box",
                description="Launched by the demo set-up.",
                profile=profile,
            )
        except ApplicationError as exc:
            return [f"Demo instances: 'demo-box' could not be launched: {exc.message}"]
        deployer.execute(instance.runs.get().pk)
        instance.refresh_from_db()
        report.append(f"Demo instances: bob's 'demo-box' (Small) in acme/research is {instance.state}.")
    else:
        report.append(f"Demo instances: 'demo-box' in acme/research is {instance.state}.")
    if instance.state != State.READY or instance.services.exclude(state=State.DELETED).exists():
        return report
    return [*report, _notebook(bob, instance)]


def _notebook(bob, instance: ComputeInstance) -> str:
    notebook = ServiceProfile.objects.filter(org__isnull=True, name="jupyter-notebook").first()
    if notebook is None:
        return "Demo services: none (the system catalog has no Jupyter profile)."
    try:
        service = service_instances.service_launch(
            actor=bob,
            compute_instance=instance,
            profile=notebook,
            name="demo-notebook",
            description="Deployed by the demo set-up.",
            inputs={"notebook_profile": "Minimal"},
        )
    except ApplicationError as exc:
        return f"Demo services: 'demo-notebook' could not be deployed: {exc.message}"
    deployer.execute(service.runs.get().pk)
    state = ServiceInstance.objects.get(pk=service.pk).state
    return f"Demo services: bob's Jupyter notebook 'demo-notebook' on demo-box is {state}."
