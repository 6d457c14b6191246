"""The Django side of the load test: seed tenants through the services, start the production server and
real workers, run the ``locust`` process, read its figures back. Used by tests/integration/test_load.py
(a short run) and tests/benchmarks/bench_load.py (a longer one).

The server is ``manage.py serve --workers N --no-worker`` (uvicorn, as production runs it) and the
workers ``manage.py qcluster`` processes, all on the caller's database (the test's or the benchmark's)
and the local Kubernetes control plane registered as a cluster.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.load import report

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = "tests/load/locustfile.py"

#: The instance profile: no GPU, so that the load's launches are never short of capacity on the local
#: cluster's few GPU nodes (placement still runs: CPU and memory per node), with room for the services.
CPU_GROUPS = [{"cpu_cores": "2", "memory_gib": 4, "storage_gib": 1}]
#: One MIG slice of 1g.10gb: every other launch places a GPU (72 such slices on the default inventory).
MIG_GROUPS = [{"mig_profile": "1g.10gb", "mig_count": 1, "cpu_cores": "1", "memory_gib": 2}]
COMPUTE_MANIFESTS = (
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ instance.name }}-info\ndata:\n  load: test\n"
)


@dataclass
class Stack:
    web: object  # tests.support.processes.Process
    workers: list

    @property
    def everyone(self) -> list:
        return [self.web, *self.workers]

    def check_alive(self) -> None:
        for process in self.everyone:
            if not process.alive():
                raise AssertionError(f"{process.name} exited:\n{process.output()}")


def seed(*, kubeconfig: str, orgs: int, workspaces: int, prefix: str = "load") -> dict:
    """Through the services: an operator, the local cluster registered and synced, system compute and
    service profiles shared with every org, ``orgs`` orgs of ``workspaces`` workspaces each, one person
    per workspace (its workspace admin, with a password and a personal API token); their ready
    instances come from :func:`launch_ready` once the workers run. The first workspace is ``tight``: a
    quota of two instances (its ready one and one more). Returns the plan for the locustfile (secrets in
    it: :func:`run_locust` writes it to a private file)."""
    from inventory import services as inventory_services
    from inventory import tasks as inventory_tasks
    from tests.factories import make_operator

    operator = make_operator(username=f"{prefix}-op")
    cluster = inventory_services.cluster_register(
        actor=operator, name=f"{prefix}-local", kubeconfig=kubeconfig
    )
    inventory_tasks.cluster_refresh(cluster.pk)
    return seed_catalog(operator, prefix=prefix) | seed_people(
        operator, orgs=orgs, workspaces=workspaces, prefix=prefix
    )


def seed_catalog(operator, *, prefix: str) -> dict:
    """Two compute profiles (CPU only; one MIG slice) and a service profile (tests/support/services.py's
    web service), in the system catalog and shared with every org."""
    from catalog import services as catalog_services
    from catalog.models import ComputeProfile, ServiceProfile, SystemSharing
    from tests.support.services import (
        WEB_INPUT_SETTINGS,
        WEB_INPUTS,
        WEB_MANIFESTS,
        WEB_OUTPUT_SETTINGS,
        WEB_OUTPUTS,
    )

    def published(name: str, manifests: str, **version):
        template = catalog_services.template_create(actor=operator, project=None, name=f"{prefix}-{name}")
        catalog_services.item_share(actor=operator, item=template, sharing=SystemSharing.ALL)
        created = catalog_services.template_version_create(
            actor=operator, template=template, version="v1", manifests=manifests, **version
        )
        return catalog_services.template_version_publish(actor=operator, version=created)

    def shared(model, name: str, **fields):
        profile = catalog_services.profile_create(
            actor=operator, model=model, project=None, name=f"{prefix}-{name}", published=True, **fields
        )
        catalog_services.item_share(actor=operator, item=profile, sharing=SystemSharing.ALL)
        return profile

    box = published("box", COMPUTE_MANIFESTS)
    cpu = shared(ComputeProfile, "cpu", template_version=box, resource_groups=CPU_GROUPS)
    mig = shared(ComputeProfile, "mig", template_version=box, resource_groups=MIG_GROUPS)
    web = shared(
        ServiceProfile,
        "web",
        template_version=published("web", WEB_MANIFESTS, inputs=WEB_INPUTS, outputs=WEB_OUTPUTS),
        service_type=ServiceProfile.ServiceType.CUSTOM,
        input_settings=WEB_INPUT_SETTINGS,
        output_settings=WEB_OUTPUT_SETTINGS,
    )
    return {"compute_profiles": [cpu.pk, mig.pk], "service_profile": web.pk}


def seed_people(operator, *, orgs: int, workspaces: int, prefix: str) -> dict:
    """``orgs`` orgs onboarded by the operator, ``workspaces`` workspaces each, a person per workspace
    (invited as its workspace admin; a password and an API token); the first workspace's quota tight."""
    from paas.services import api_token_create
    from tenancy import services as tenancy_services
    from tenancy.roles import Role
    from tests.factories import PASSWORD, UserFactory, add_member, make_org

    people, tight = [], None
    for o in range(orgs):
        org, admin = make_org(operator=operator, name=f"{prefix}{o}")
        for w in range(workspaces):
            project = tenancy_services.project_create(actor=admin, org=org, name=f"ws{w}")
            user = UserFactory(username=f"{prefix}{o}-ws{w}")
            add_member(admin=admin, user=user, role=Role.WORKSPACE_ADMIN, project=project)
            _row, token = api_token_create(actor=user, name="load", expires_in_days=1)
            people.append(
                {"username": user.username, "password": PASSWORD, "token": token, "project": project.pk}
            )
            tight = tight or (admin, project)
    tenancy_services.quota_update(actor=tight[0], quota=tight[1].quota, instances=2)
    people[0]["tight"] = True
    return {"people": people, "orgs": [f"{prefix}{o}" for o in range(orgs)]}


def launch_ready(plan: dict, *, check, timeout: float = 180) -> None:
    """Launch one instance of the CPU profile per person (the service call, as the API does) and wait
    until the workers have deployed every one to ready: the instances kubeconfigs and services use."""
    from catalog.models import ComputeProfile
    from instances import services
    from instances.models import ComputeInstance
    from instances.states import State
    from tenancy.models import Project, User
    from tests.support.wait import wait_for

    profile = ComputeProfile.objects.get(pk=plan["compute_profiles"][0])
    for person in plan["people"]:
        instance = services.instance_launch(
            actor=User.objects.get(username=person["username"]),
            project=Project.objects.get(pk=person["project"]),
            name="ready",
            profile=profile,
        )
        person["ready_instance"] = instance.pk
    ids = [person["ready_instance"] for person in plan["people"]]

    def all_ready():
        states = dict(ComputeInstance.objects.filter(pk__in=ids).values_list("pk", "state"))
        failed = {pk: state for pk, state in states.items() if state == State.FAILED}
        if failed:
            raise AssertionError(f"a ready instance failed to deploy: {failed}")
        return all(state == State.READY for state in states.values())

    wait_for(all_ready, timeout, 0.25, "every person's instance ready", check=check)


def start_stack(log_dir: Path, *, web_workers: int = 2, workers: int = 2, pool: int = 6) -> Stack:
    """``manage.py serve --workers N --no-worker`` and ``workers`` qcluster processes of one worker each.
    ``pool``: database connections per web process (``PAAS_DB_POOL_MAX``)."""
    from tests.support import processes

    port = processes.free_port()
    web = processes.start(
        "load-web",
        ["serve", f"127.0.0.1:{port}", "--workers", str(web_workers), "--no-worker"],
        log_dir,
        port=port,
        PAAS_DB_POOL_MAX=str(pool),
    )
    clusters = [
        processes.qcluster(f"load-worker-{n}", log_dir, PAAS_WORKERS="1") for n in range(1, workers + 1)
    ]
    return Stack(web=web, workers=clusters)


def stop_stack(stack: Stack, *, grace: float = 20) -> None:
    """SIGTERM every process group at once (a graceful stop), SIGKILL what is left after ``grace`` s."""
    deadline = time.monotonic() + grace
    for process in stack.everyone:
        if process.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
    for process in stack.everyone:
        try:
            process.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()


@contextlib.contextmanager
def running(log_dir: Path, **options) -> Iterator[Stack]:
    stack = start_stack(log_dir, **options)
    try:
        yield stack
    finally:
        stop_stack(stack)


def wait_served(stack: Stack, timeout: float = 300) -> None:
    """Until the web process answers a request through Django (``/api/v1/me/`` without a token: 401);
    uvicorn binds before its workers import the application, so accepting is not enough."""
    import httpx

    from tests.support.wait import wait_for

    def answers():
        if not stack.web.accepting():
            return False
        try:
            return httpx.get(f"{stack.web.url}/api/v1/me/", timeout=30).status_code == 401
        except httpx.HTTPError:
            return False

    wait_for(answers, timeout, 0.2, "the web process serving", check=stack.check_alive)


def write_private(path: Path, data: dict) -> Path:
    """Write ``data`` as JSON readable by this user only (it holds passwords and API tokens)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(data, out)
    return path


def run_locust(
    plan: dict,
    *,
    host: str,
    out_dir: Path,
    users: int,
    spawn_rate: float,
    run_time: str,
    timeout: float,
) -> report.Result:
    """Run ``locust --headless`` as its own process for ``run_time`` against ``host``; the plan reaches it
    through a private file named by ``LOAD_PLAN``. Returns what it measured. (Its exit status says only
    whether some request failed, which the result says in detail.)"""
    result_file = out_dir / "load-result.json"
    plan_file = write_private(out_dir / "load-plan.json", {**plan, "result_file": str(result_file)})
    csv_prefix = out_dir / "locust"
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        LOCUSTFILE,
        "--headless",
        "--users",
        str(users),
        "--spawn-rate",
        str(spawn_rate),
        "--run-time",
        run_time,
        "--host",
        host,
        "--csv",
        str(csv_prefix),
        "--only-summary",
        "--stop-timeout",
        "15",
        "--loglevel",
        "WARNING",
    ]
    env = {key: value for key, value in os.environ.items() if not key.startswith(("LOCUST_", "DJANGO_"))}
    log = out_dir / "locust.log"
    started = time.monotonic()
    with log.open("wb") as output:
        subprocess.run(
            command,
            cwd=ROOT,
            env={**env, "LOAD_PLAN": str(plan_file)},
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
    if not result_file.exists():
        raise AssertionError(
            f"locust left no result after {time.monotonic() - started:.0f} s:\n{log.read_text()[-4000:]}"
        )
    return report.read(result_file)


def remove_namespaces(api_client, orgs: list[str]) -> None:
    """Ask the cluster to delete what the run left (instances still deploying or being deleted when the
    workers stopped): every namespace of the seeded orgs. Not waited for."""
    from kubernetes import client as k8s

    from paas.platform_owned import LABEL_ORG

    if not orgs:
        return
    core = k8s.CoreV1Api(api_client)
    selector = f"{LABEL_ORG} in ({','.join(orgs)})"
    for namespace in core.list_namespace(label_selector=selector).items:
        with contextlib.suppress(k8s.ApiException):
            core.delete_namespace(namespace.metadata.name)


def seconds(run_time: str) -> float:
    """Locust's ``--run-time`` (``40s``, ``3m``, ``1h30m``) in seconds."""
    units = {"h": 3600, "m": 60, "s": 1}
    total, number = 0.0, ""
    for char in run_time.strip():
        if char.isdigit():
            number += char
        else:
            total += int(number) * units[char]
            number = ""
    return total + (int(number) if number else 0)


def launch_outcomes() -> dict[str, dict[str, int]]:
    """What became of the load's own launches (instances ``ld…``, services ``sv…``): counts by state."""
    from django.db.models import Count

    from instances.models import ComputeInstance, ServiceInstance

    return {
        label: dict(
            model.objects.filter(name__startswith=prefix)
            .values_list("state")
            .annotate(n=Count("pk"))
            .order_by("state")
        )
        for label, model, prefix in (
            ("instances", ComputeInstance, "ld"),
            ("services", ServiceInstance, "sv"),
        )
    }
