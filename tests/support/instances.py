"""Launching compute instances in tests: the one helper every test file uses.

``launch`` only launches (the service call: quota, placement, snapshot, the queued deploy run);
``launch_instance`` also runs the deploy to ready on the local control plane (the kube tests, with the
``live`` fixture of tests/integration/conftest.py).
"""

from instances import deployer, services
from instances.models import ComputeInstance, Run

#: A template of one small pod (a Deployment): every deploy of it waits for that pod (KWOK runs it).
#: The deploy tests (test_deploy_parallel) and the deploy benchmark (bench_deploy) launch it.
ONE_POD = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ instance.name }}-agent
spec:
  replicas: 1
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      runtimeClassName: kata
      securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
      containers:
        - name: agent
          image: registry.example/agent:1
          resources: {limits: {cpu: 100m, memory: 128Mi}}
          securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
"""


def launch(world, profile, name: str = "dev", *, actor=None, project=None) -> ComputeInstance:
    """Launch ``profile`` as ``name`` in tenant A's 'team' workspace (or ``project``), by its workspace
    admin (or ``actor``)."""
    return services.instance_launch(
        actor=actor or world.a.users["workspace_admin"],
        project=project or world.a.project,
        name=name,
        profile=profile,
    )


def launch_instance(live: dict, name: str = "dev", *, actor=None, project=None) -> ComputeInstance:
    """Launch the small system profile as ``name`` (see ``launch``) and run the deploy to ready."""
    instance = launch(live["world"], live["profile"], name, actor=actor, project=project)
    run = instance.runs.get()
    assert deployer.execute(run.pk) == "ready", Run.objects.get(pk=run.pk).log
    instance.refresh_from_db()
    return instance


def force_state(instance, state: str) -> None:
    """Set ``instance``'s state in the database directly (no transition, no run: a test's shortcut to
    a state the deployer would reach) and re-sum the usage counters, as ``manage.py usage_recount
    --fix`` would after such a write (``instances.transition`` is what moves them in the platform)."""
    from instances.counters import counters_rebuild

    ComputeInstance.objects.filter(pk=instance.pk).update(state=state)
    counters_rebuild()
