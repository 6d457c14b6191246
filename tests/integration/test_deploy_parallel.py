"""Deploys in parallel (issue 20): a deploy's round trips are its writes, one wait by watching and a few
reads, over one client per cluster; a run delivered twice is applied once; real workers run several
deploys at once. Requests are counted at the platform's own HTTP client (tests/support/kube_requests.py),
against the real local control plane."""

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from kubernetes import client as k8s

from instances import deployer, pull_secrets
from instances.models import ComputeInstance, Run
from instances.namespace import baseline_objects
from instances.rendering import instance_render
from inventory import kube
from tests.factories import make_profile
from tests.localkube.helpers import create_namespace, unique_name
from tests.support.instances import ONE_POD, launch, launch_instance
from tests.support.kube_requests import counting
from tests.support.wait import wait_for

pytestmark = pytest.mark.kube

#: One small pod: every deploy waits for it, and eight of them fit on the shared cluster.
AGENT = ONE_POD

#: What a deploy may read besides its writes: one list per kind ``wait_ready`` judges (8), pods and
#: claims once more after it waited for a workload (2), the pull secrets present (1) and the
#: namespace's events for the run's log (1).
READS = 12
#: Watches: at most one per judged kind that was not ready at its list.
WATCHES = 8


@pytest.fixture
def agent(live) -> dict:
    """``live`` with ``profile`` a small CPU profile whose template is :data:`AGENT`."""
    world = live["world"]
    profile = make_profile(
        actor=world.a.users["org_admin"],
        project=world.a.project,
        manifests=AGENT,
        name="agent",
        template="agent",
        resource_groups=[{"cpu_cores": "1", "memory_gib": 1, "storage_gib": 1}],
    )
    return {**live, "profile": profile}


def test_a_deploy_is_its_writes_one_wait_and_a_few_reads(agent):
    launch_instance(agent, "warm")  # this process's client for the cluster exists from here on
    with counting() as seen:
        instance = launch_instance(agent, "counted")
    base = baseline_objects(instance, instance.namespace)
    objects, _ = instance_render(instance, instance.namespace)
    secrets = pull_secrets.desired(instance)
    field_outputs = [
        o for o in instance.snapshot["template"].get("outputs", []) if o["source"]["type"] == "field"
    ]
    assert seen.resource("discovery") == 0, seen.counts  # the client (and its discovery) was reused
    # Server-side apply of each object once (the baseline is not applied again: the template names
    # none of its objects), no read before a write, no object read again and again while waiting.
    assert seen.verb("PATCH") == len(base) + len(objects) + len(secrets), seen.counts
    assert seen.verb("GET") == len(field_outputs), seen.counts
    assert seen.verb("LIST") <= READS and seen.verb("WATCH") <= WATCHES, seen.counts
    assert seen.total() == seen.verb("PATCH") + seen.verb("GET") + seen.verb("LIST") + seen.verb("WATCH")
    log = [step["message"] for step in Run.objects.get(instance=instance).log]
    assert any("baseline stands over the template" in message for message in log), log


def test_wait_ready_wakes_on_the_change_it_watches_for(kube_cluster):
    """The Deployment cannot be scheduled until the test lets it: the wait lists once, then watches;
    with ``poll`` 10 ms a polling wait would have listed every kind dozens of times meanwhile. After
    the wait the pods are judged on a new list: they name the pod made meanwhile."""
    admin = kube_cluster.api_client()
    namespace = unique_name("watched")
    create_namespace(admin, namespace)
    apps = k8s.AppsV1Api(admin)
    apps.create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": "held"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "held"}},
                "template": {
                    "metadata": {"labels": {"app": "held"}},
                    "spec": {
                        "nodeSelector": {"paas.test/no-such-node": "true"},
                        "containers": [{"name": "c", "image": "registry.example/held:1"}],
                    },
                },
            },
        },
    )
    kubeconfig = Path(kube_cluster.kubeconfig_path).read_text()
    result: dict = {}

    def wait() -> None:
        try:
            result["notes"] = kube.wait_ready(kubeconfig, namespace, timeout=60, poll=0.01)
        except Exception as exc:  # the assertion below shows it
            result["error"] = exc

    with counting() as seen:
        waiter = threading.Thread(target=wait)
        waiter.start()
        wait_for(lambda: seen.verb("WATCH") >= 1 or not waiter.is_alive(), 30, what="the wait to watch")
        assert "notes" not in result, result  # not ready while it cannot be scheduled
        apps.patch_namespaced_deployment(
            "held", namespace, {"spec": {"template": {"spec": {"nodeSelector": None}}}}
        )
        waiter.join(timeout=60)
    assert "error" not in result, result
    assert "Deployment held: 1/1 ready" in result["notes"], result
    pods = k8s.CoreV1Api(admin).list_namespaced_pod(namespace).items
    running = [
        p.metadata.name for p in pods if p.status.phase == "Running" and not p.metadata.deletion_timestamp
    ]
    assert any(f"Pod {name}: Running Ready" in result["notes"] for name in running), result
    # One list per kind (8), and pods and claims once more after the wait (2).
    assert seen.verb("LIST") <= 10 and 1 <= seen.verb("WATCH") <= 8, seen.counts
    k8s.CoreV1Api(admin).delete_namespace(namespace)


@pytest.mark.django_db(transaction=True)
def test_a_run_taken_by_two_workers_at_once_is_applied_once(agent):
    instance = launch(agent["world"], agent["profile"], "twice")
    launch_instance(agent, "warm-twice")  # the shared client exists: both threads start equal
    run = instance.runs.get()
    gate, outcomes = threading.Barrier(2), []

    def worker() -> None:
        gate.wait()
        try:
            outcomes.append(deployer.execute(run.pk))
        finally:
            from django.db import connection

            connection.close()

    with counting() as seen:
        threads = [threading.Thread(target=worker) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    instance.refresh_from_db()
    base = baseline_objects(instance, instance.namespace)
    objects, _ = instance_render(instance, instance.namespace)
    writes = len(base) + len(objects) + len(pull_secrets.desired(instance))
    assert sorted(outcomes)[0] == "ready" and sorted(outcomes)[1] in (
        deployer.RUNNING_ELSEWHERE,
        "finished already",
    ), outcomes
    assert Run.objects.get(pk=run.pk).attempt == 1
    assert seen.verb("PATCH") == writes, seen.counts  # applied once, not twice


@pytest.mark.django_db(transaction=True)
def test_two_real_workers_deploy_several_runs_at_once_each_once(agent):
    """Two ``manage.py qcluster`` processes of one worker each, four runs at a time per worker: eight
    launches all end ready, each run in one attempt, and more runs overlapped than there are workers."""
    world, profile = agent["world"], agent["profile"]
    db = django_settings.DATABASES["default"]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "paas.settings.test",
        "PAAS_WORKERS": "1",
        "PAAS_RUN_CONCURRENCY": "4",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
    }
    root = Path(__file__).resolve().parents[2]
    instances = [launch(world, profile, f"par-{i}") for i in range(8)]
    workers = [
        subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    ids = [i.pk for i in instances]
    try:
        wait_for(
            lambda: ComputeInstance.objects.filter(pk__in=ids, state__in=("ready", "failed")).count() == 8,
            90,
            what="eight instances deployed by the workers",
        )
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=60)
    runs = list(Run.objects.filter(instance_id__in=ids))
    assert {i.state for i in ComputeInstance.objects.filter(pk__in=ids)} == {"ready"}, [r.log for r in runs]
    assert [r.attempt for r in runs] == [1] * 8
    # The most runs in flight at one moment: more than one per worker.
    moments = sorted([(r.started_at, 1) for r in runs] + [(r.finished_at, -1) for r in runs])
    in_flight = most = 0
    for _, change in moments:
        in_flight += change
        most = max(most, in_flight)
    assert most > 2, [(r.started_at, r.finished_at) for r in runs]
