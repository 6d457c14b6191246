"""Actions on compute instances on the real local control plane: stop releases GPUs, CPU and memory
(quota and cluster, pods gone, storage kept), start takes them again through a launch's checks and
fails clearly when they are gone; action variables; who may run actions."""

import pytest
from kubernetes import client as k8s

from instances import actions, deployer, services
from instances.models import ComputeInstance, Run
from instances.selectors import reservations, workspace_summary
from instances.states import State
from inventory.kube.scaling import STOPPED_ANNOTATION
from paas.errors import Conflict
from tenancy import services as tenancy_services
from tests.support.instances import launch, launch_instance
from tests.support.wait import wait_for

pytestmark = pytest.mark.kube

SECURE = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def _gpu_deployment(name: str, replicas: int = 1) -> dict:
    """A tenant's own workload: one A100 per pod."""
    labels = {"app": name}
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "runtimeClassName": "kata",
                    "containers": [
                        {
                            "name": "c",
                            "image": "registry.example/train:1",
                            "securityContext": SECURE,
                            "resources": {"limits": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "1"}},
                        }
                    ],
                },
            },
        },
    }


def _pod_spec(gpus: int = 0, restart: str = "Always") -> dict:
    limits = {"cpu": "1", "memory": "1Gi"} | ({"nvidia.com/gpu": str(gpus)} if gpus else {})
    return {
        "runtimeClassName": "kata",
        "restartPolicy": restart,
        "containers": [
            {
                "name": "c",
                "image": "registry.example/job:1",
                "securityContext": SECURE,
                "resources": {"limits": limits},
            }
        ],
    }


def _cron_job(name: str) -> dict:
    return {
        "metadata": {"name": name},
        "spec": {
            "schedule": "0 3 * * *",
            "jobTemplate": {"spec": {"template": {"spec": _pod_spec(restart="Never")}}},
        },
    }


def _running(core, namespace: str) -> list[str]:
    pods = core.list_namespaced_pod(namespace).items
    return [p.metadata.name for p in pods if p.status.phase not in ("Succeeded", "Failed")]


def _run_to_end(run_id: int, expected: str) -> Run:
    outcome = deployer.execute(run_id)
    run = Run.objects.get(pk=run_id)
    assert outcome == expected, (outcome, run.log)
    return run


def test_stop_releases_gpus_then_start_takes_them_again(live, api):
    world, core, cluster = live["world"], live["core"], live["cluster"]
    admin = world.a.users["workspace_admin"]
    project = world.a.project
    tenancy_services.quota_update(actor=world.a.users["org_admin"], quota=project.quota, gpus=1)
    instance = launch_instance(live, "trainer")
    namespace = instance.namespace
    apps = k8s.AppsV1Api(live["core"].api_client)
    apps.create_namespaced_deployment(namespace, _gpu_deployment("train"))
    batch = k8s.BatchV1Api(live["core"].api_client)
    batch.create_namespaced_cron_job(namespace, _cron_job("nightly"))
    core.create_namespaced_pod(namespace, {"metadata": {"name": "scratch"}, "spec": _pod_spec()})
    # (a Job's pods complete at once on this cluster's simulated nodes: a CronJob stands for them)
    wait_for(lambda: len(_running(core, namespace)) == 2, what="the tenant's pods (GPU, bare)")

    # Over the workspace's quota of 1 GPU while it runs.
    with pytest.raises(Conflict, match="Workspace quota of 1 GPUs"):
        launch(world, live["profile"], "second")

    # Stop (API): 202 with the run; the instance provisions towards stopped.
    response = api.as_user(admin).post(f"/api/v1/instances/{instance.pk}/actions/stop/", {}, format="json")
    assert response.status_code == 202, response.content
    assert response.json()["action"] == "stop" and response.json()["variables"] == {"run_strategy": "halted"}
    instance.refresh_from_db()
    assert instance.state == State.PROVISIONING
    run = _run_to_end(response.json()["id"], State.STOPPED)
    instance.refresh_from_db()
    assert instance.state == State.STOPPED
    assert "GPUs, CPU and memory are released" in instance.state_reason and "100 GiB" in instance.state_reason
    assert any("Scaled to zero: Deployment/train 1→0" in e["message"] for e in run.log), run.log
    # In the cluster: no pod left, the workload at zero (remembering it had 1), the quota at zero
    # compute with the storage kept, the template re-applied with the stop action.
    assert _running(core, namespace) == []
    train = apps.read_namespaced_deployment("train", namespace)
    assert train.spec.replicas == 0 and train.metadata.annotations[STOPPED_ANNOTATION] == "1"
    assert batch.read_namespaced_cron_job("nightly", namespace).spec.suspend is True
    assert any("Pod/scratch deleted" in e["message"] for e in run.log), run.log
    hard = core.read_namespaced_resource_quota("paas-quota", namespace).spec.hard
    assert hard["requests.nvidia.com/gpu"] == "0" and hard["requests.cpu"] == "0"
    assert hard["requests.memory"] == "0" and hard["requests.storage"] == "100Gi"
    assert core.read_namespaced_config_map("instance-info", namespace).data["RUN_STRATEGY"] == "halted"
    # A new GPU pod is not admitted any more.
    with pytest.raises(k8s.ApiException) as refused:
        k8s.CoreV1Api(live["core"].api_client).create_namespaced_pod(
            namespace,
            {
                "metadata": {"name": "sneaky"},
                "spec": {
                    "runtimeClassName": "kata",
                    "containers": [
                        {
                            "name": "c",
                            "image": "x:1",
                            "securityContext": SECURE,
                            "resources": {"limits": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "1"}},
                        }
                    ],
                },
            },
        )
    assert refused.value.status == 403 and "exceeded quota" in refused.value.body

    # Quota and matchmaker: only the storage is counted; the cluster holds nothing for it.
    summary = workspace_summary(admin, project.pk)
    assert summary["in_use"]["gpu_units"] == 0 and summary["in_use"]["storage_gib"] == 100
    assert summary["instances"]["stopped"] == 1
    assert cluster.pk not in reservations()
    # The launch that did not fit now fits (and takes the workspace's one GPU).
    second = launch(world, live["profile"], "second")

    # Start: refused with the numbers while the GPU is taken...
    response = api.as_user(admin).post(f"/api/v1/instances/{instance.pk}/actions/start/", {}, format="json")
    assert response.status_code == 409, response.content
    body = response.json()
    assert "cannot start: over quota" in str(body) and "1 in use, this start needs 1" in str(body), body
    instance.refresh_from_db()
    assert instance.state == State.STOPPED

    # ... and takes it again once it is free.
    services.instance_delete(actor=admin, instance=second)
    _run_to_end(second.runs.get(kind=Run.Kind.DELETE).pk, State.DELETED)
    response = api.as_user(admin).post(f"/api/v1/instances/{instance.pk}/actions/start/", {}, format="json")
    assert response.status_code == 202, response.content
    instance.refresh_from_db()
    assert instance.state == State.PROVISIONING  # counted in full from now on
    assert workspace_summary(admin, project.pk)["in_use"]["gpu_units"] == 28
    _run_to_end(response.json()["id"], State.READY)
    instance.refresh_from_db()
    assert instance.state == State.READY and instance.state_reason == ""
    train = apps.read_namespaced_deployment("train", namespace)
    assert train.spec.replicas == 1 and STOPPED_ANNOTATION not in (train.metadata.annotations or {})
    assert batch.read_namespaced_cron_job("nightly", namespace).spec.suspend is False
    # The GPU pod is back; the bare pod was deleted (nothing would recreate it).
    wait_for(
        lambda: _running(core, namespace) and all(p.startswith("train-") for p in _running(core, namespace)),
        what="the GPU pod back",
    )
    hard = core.read_namespaced_resource_quota("paas-quota", namespace).spec.hard
    assert hard["requests.nvidia.com/gpu"] == "1" and hard["requests.cpu"] == "26"
    assert core.read_namespaced_config_map("instance-info", namespace).data["RUN_STRATEGY"] == "started"
    # Each step in the audit trail, with who asked.
    from paas.audit import AuditEvent

    events = list(
        AuditEvent.objects.filter(target_id=str(instance.pk), action__startswith="instance.")
        .order_by("pk")
        .values_list("action", flat=True)
    )
    assert events[-4:] == ["instance.action", "instance.stopped", "instance.action", "instance.ready"], events


def test_start_fails_clearly_when_the_cluster_gpus_were_taken(live):
    """A stopped instance keeps its cluster: when other launches took its GPUs there, start says so."""
    from catalog.models import ComputeProfile

    world = live["world"]
    admin = world.a.users["workspace_admin"]
    medium = ComputeProfile.objects.get(org__isnull=True, name="medium")  # 8 A100s: a whole node
    first = launch(world, medium, "first")
    _run_to_end(first.runs.get().pk, State.READY)
    run = actions.action_run(actor=admin, target=first, action="stop")
    _run_to_end(run.pk, State.STOPPED)
    # The cluster's two A100 nodes are taken by two more launches (placed there: nothing else fits).
    others = [launch(world, medium, name) for name in ("second", "third")]
    assert {o.cluster_id for o in others} == {first.cluster_id}
    with pytest.raises(Conflict) as refused:
        actions.action_run(actor=admin, target=first, action="start")
    assert refused.value.code == "no_capacity"
    assert "its cluster local no longer has the free capacity" in refused.value.message
    assert "A100-SXM4-40GB" in refused.value.message, refused.value.message
    first.refresh_from_db()
    assert first.state == State.STOPPED and not first.runs.filter(outcome=Run.Outcome.QUEUED).exists()


def test_action_variables_and_states(live, api):
    world = live["world"]
    admin = world.a.users["workspace_admin"]
    instance = launch_instance(live, "vars")
    client = api.as_user(admin)
    listing = client.get(f"/api/v1/instances/{instance.pk}/actions/").json()
    # A compute profile has no action settings: the template's variables are fixed and not shown.
    assert listing == {
        "actions": [
            {"name": "start", "description": listing["actions"][0]["description"], "variables": []},
            {"name": "stop", "description": listing["actions"][1]["description"], "variables": []},
        ],
        "may_run": True,
    }
    # A fixed variable sent is refused, naming it; an unknown one too; an unknown action is a 404.
    response = client.post(
        f"/api/v1/instances/{instance.pk}/actions/stop/",
        {"variables": {"run_strategy": "started"}},
        format="json",
    )
    assert response.status_code == 400, response.json()
    assert "run_strategy" in response.json()["error"]["fields"]
    response = client.post(
        f"/api/v1/instances/{instance.pk}/actions/stop/", {"variables": {"nope": 1}}, format="json"
    )
    assert response.status_code == 400 and "nope" in response.json()["error"]["fields"]
    response = client.post(
        f"/api/v1/instances/{instance.pk}/actions/stop/", {"variables": "x"}, format="json"
    )
    assert response.status_code == 400
    assert (
        client.post(f"/api/v1/instances/{instance.pk}/actions/reboot/", {}, format="json").status_code == 404
    )
    # State rules: start on a ready instance, and anything during a run, are 409s.
    assert (
        client.post(f"/api/v1/instances/{instance.pk}/actions/start/", {}, format="json").status_code == 409
    )
    assert client.post(f"/api/v1/instances/{instance.pk}/actions/stop/", {}, format="json").status_code == 202
    assert client.post(f"/api/v1/instances/{instance.pk}/actions/stop/", {}, format="json").status_code == 409
    assert ComputeInstance.objects.get(pk=instance.pk).runs.filter(kind=Run.Kind.ACTION).count() == 1
