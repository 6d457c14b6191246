"""Actions and day-2 on service instances, on the real local control plane: stop and start (alone and
with their compute instance), an action's overridable and fixed variables, and a redeploy with changed
inputs (allowed by the profile's ALLOW_DAY2_OPERATIONS label) that re-checks the fit and removes what
the template no longer renders."""

import pytest

from catalog import services as catalog_services
from catalog.models import ServiceProfile
from instances import actions, deployer, service_instances
from instances.models import Run, ServiceInstance
from instances.states import State
from paas.errors import Conflict
from paas.platform_owned import LABEL_SERVICE
from tests.support.instances import launch_instance
from tests.support.services import (
    WEB_INPUT_SETTINGS,
    WEB_INPUTS,
    WEB_MANIFESTS,
    WEB_OUTPUT_SETTINGS,
    WEB_OUTPUTS,
    deploy_service,
)
from tests.support.wait import wait_for

pytestmark = pytest.mark.kube

# The test web service, stopped by run_strategy (replicas 0), scaled by an action, and with a ConfigMap
# only while it runs more than one replica (what a redeploy removes again).
MANIFESTS = (
    '{% set strategy = ((action.variables or {}).get("run_strategy") or "started") '
    'if (action is defined and action) else "started" %}\n'
    '{% set scale = (action.variables.replicas if (action is defined and action and action.name == "scale") '
    "else none) %}\n"
    + WEB_MANIFESTS.replace(
        "replicas: {{ inputs.replicas }}",
        'replicas: {{ 0 if strategy == "halted" else (scale if scale is not none else inputs.replicas) }}',
    )
    + """{% if inputs.replicas > 1 %}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ instance.name }}-scaled
data: {replicas: "{{ inputs.replicas }}"}
{% endif %}
"""
)
RUN_STRATEGY = {"name": "run_strategy", "type": "select", "options": ["started", "halted"]}
ACTIONS = [
    {"name": "start", "description": "Start.", "variables": [RUN_STRATEGY | {"default": "started"}]},
    {"name": "stop", "description": "Stop.", "variables": [RUN_STRATEGY | {"default": "halted"}]},
    {
        "name": "scale",
        "description": "Run more or fewer replicas.",
        "variables": [{"name": "replicas", "type": "number", "default": 1, "description": "Replicas."}],
    },
]
ACTION_SETTINGS = {
    "start": {
        "run_strategy": {
            "alias": "Run strategy",
            "tooltip": "",
            "allow_override": False,
            "default": "started",
        }
    },
    "stop": {
        "run_strategy": {"alias": "Run strategy", "tooltip": "", "allow_override": False, "default": "halted"}
    },
    "scale": {
        "replicas": {
            "alias": "Replicas",
            "tooltip": "How many servers.",
            "allow_override": True,
            "default": 1,
        }
    },
}


def _profile(world, name: str = "acting", labels=None) -> ServiceProfile:
    actor = world.a.users["paas_admin_org"]
    template = catalog_services.template_create(actor=actor, project=world.a.project, name=f"{name}-tpl")
    version = catalog_services.template_version_create(
        actor=actor,
        template=template,
        version="v1",
        manifests=MANIFESTS,
        inputs=WEB_INPUTS,
        outputs=WEB_OUTPUTS,
        actions=ACTIONS,
    )
    version = catalog_services.template_version_publish(actor=actor, version=version)
    return catalog_services.profile_create(
        actor=actor,
        model=ServiceProfile,
        project=world.a.project,
        name=name,
        template_version=version,
        published=True,
        service_type=ServiceProfile.ServiceType.CUSTOM,
        input_settings=WEB_INPUT_SETTINGS,
        output_settings=WEB_OUTPUT_SETTINGS,
        action_settings=ACTION_SETTINGS,
        labels=labels or {},
    )


def _pods(core, service) -> list[str]:
    pods = core.list_namespaced_pod(service.namespace, label_selector=f"{LABEL_SERVICE}={service.name}")
    return [p.metadata.name for p in pods.items if p.status.phase not in ("Succeeded", "Failed")]


def _replicas(live, service) -> int:
    from kubernetes import client as k8s

    apps = k8s.AppsV1Api(live["core"].api_client)
    return apps.read_namespaced_deployment(service.name, service.namespace).spec.replicas


def _execute(run_id: int, expected: str) -> Run:
    outcome = deployer.execute(run_id)
    run = Run.objects.get(pk=run_id)
    assert outcome == expected, (outcome, run.log)
    return run


def test_service_stop_start_alone_and_with_its_instance(live, api):
    world, core = live["world"], live["core"]
    instance = launch_instance(live, "host")  # one A100
    profile = _profile(world)
    web = deploy_service(live, instance, profile, "web", inputs={"gpus": 1})
    wait_for(lambda: len(_pods(core, web)) == 1, what="the service's pod")
    with pytest.raises(Conflict, match="GPUs: needs 1, 0 left"):
        service_instances.service_launch(
            actor=instance.owner, compute_instance=instance, profile=profile, name="other", inputs={"gpus": 1}
        )

    # A read-write collaborator stops it (API): its pods go, its GPU is free within the instance.
    rw = api.as_user(world.a.users["collaborator_rw"])
    listing = rw.get(f"/api/v1/service-instances/{web.pk}/actions/").json()
    assert [a["name"] for a in listing["actions"]] == ["start", "stop", "scale"] and listing["may_run"]
    assert listing["actions"][1]["variables"] == []  # run_strategy is fixed: not shown
    response = rw.post(
        f"/api/v1/service-instances/{web.pk}/actions/stop/",
        {"variables": {"run_strategy": "started"}},
        format="json",
    )
    assert response.status_code == 400 and "run_strategy" in response.json()["error"]["fields"]
    response = rw.post(f"/api/v1/service-instances/{web.pk}/actions/stop/", {}, format="json")
    assert response.status_code == 202, response.content
    _execute(response.json()["id"], State.STOPPED)
    web.refresh_from_db()
    assert web.state == State.STOPPED and "GPUs, CPU and memory are released" in web.state_reason
    assert _pods(core, web) == [] and _replicas(live, web) == 0
    other = deploy_service(live, instance, profile, "other", inputs={"gpus": 1})  # fits now

    # Start re-checks the fit: refused with the numbers while "other" holds the GPU.
    response = rw.post(f"/api/v1/service-instances/{web.pk}/actions/start/", {}, format="json")
    assert response.status_code == 409 and "GPUs: needs 1, 0 left" in response.json()["error"]["message"]
    run = service_instances.service_delete(actor=instance.owner, service=other)
    _execute(run.pk, State.DELETED)
    response = rw.post(f"/api/v1/service-instances/{web.pk}/actions/start/", {}, format="json")
    assert response.status_code == 202, response.content
    _execute(response.json()["id"], State.READY)
    assert _replicas(live, web) == 1
    wait_for(lambda: len(_pods(core, web)) == 1, what="the service's pod back")

    # An overridable variable is used (scale to 2), after the fit check with the action: two replicas of
    # the GPU service do not fit on a one-GPU instance (refused, nothing runs); of a CPU one they do.
    response = rw.post(
        f"/api/v1/service-instances/{web.pk}/actions/scale/", {"variables": {"replicas": 2}}, format="json"
    )
    assert response.status_code == 409 and "GPUs: needs 2, 1 left" in response.json()["error"]["message"]
    cpu = deploy_service(live, instance, profile, "cpu")
    response = rw.post(
        f"/api/v1/service-instances/{cpu.pk}/actions/scale/", {"variables": {"replicas": 2}}, format="json"
    )
    assert response.status_code == 202 and response.json()["variables"] == {"replicas": 2}
    _execute(response.json()["id"], State.READY)
    assert _replicas(live, cpu) == 2
    cpu.refresh_from_db()
    assert cpu.cpu_millis == 200  # what it uses now, for the next fit checks

    # Stopping the compute instance stops its running services, and its start brings them back.
    run = actions.action_run(actor=instance.owner, target=instance, action="stop")
    stop = _execute(run.pk, State.STOPPED)
    for service in (web, cpu):
        service.refresh_from_db()
        assert service.state == State.STOPPED
        assert service.state_reason.startswith("Stopped with its compute instance host")
        assert _pods(core, service) == []
    assert any(e.get("stopped_services") == [web.pk, cpu.pk] for e in stop.log), stop.log
    with pytest.raises(Conflict, match="its compute instance host is stopped"):
        actions.action_run(actor=instance.owner, target=web, action="start")
    run = actions.action_run(actor=instance.owner, target=instance, action="start")
    _execute(run.pk, State.READY)
    for service, replicas in ((web, 1), (cpu, 2)):
        service.refresh_from_db()
        assert service.state == State.READY and _replicas(live, service) == replicas
        wait_for(lambda s=service, n=replicas: len(_pods(core, s)) == n, what="pods back with the instance")


def test_day2_redeploy_with_changed_inputs(live, api):
    world = live["world"]
    instance = launch_instance(live, "day2")
    web = deploy_service(live, instance, _profile(world, labels={"ALLOW_DAY2_OPERATIONS": "True"}), "web")
    client = api.as_user(instance.owner)
    assert client.get(f"/api/v1/service-instances/{web.pk}/actions/").json()["redeploy_refusal"] is None
    url = f"/api/v1/service-instances/{web.pk}/redeploy/"
    # The launch's input rules: a non-overridable input changed, an unexposed one sent: 400 naming it.
    for inputs, field in (({"mode": "prod"}, "mode"), ({"admin_only": "x"}, "admin_only")):
        response = client.post(url, {"inputs": inputs}, format="json")
        assert response.status_code == 400 and field in response.json()["error"]["fields"], response.json()
    # The fit is re-checked (the instance has one GPU).
    response = client.post(url, {"inputs": {"gpus": 2}}, format="json")
    assert response.status_code == 409 and "GPUs: needs 2, 1 left" in response.json()["error"]["message"]

    response = client.post(url, {"inputs": {"replicas": 2, "note": "more"}}, format="json")
    assert response.status_code == 202 and response.json()["kind"] == "redeploy", response.content
    _execute(response.json()["id"], State.READY)
    web.refresh_from_db()
    assert web.input_values["replicas"] == 2 and web.input_values["note"] == "more"
    assert web.input_values["mode"] == "dev"  # kept
    core = live["core"]
    assert core.read_namespaced_config_map("web-scaled", web.namespace).data == {"replicas": "2"}
    assert _replicas(live, web) == 2
    # Back to one replica: the ConfigMap the template no longer renders is deleted.
    response = client.post(url, {"inputs": {"replicas": 1}}, format="json")
    _execute(response.json()["id"], State.READY)
    names = [c.metadata.name for c in core.list_namespaced_config_map(web.namespace).items]
    assert "web-scaled" not in names and _replicas(live, web) == 1
    assert ServiceInstance.objects.get(pk=web.pk).input_values["note"] == "more"  # kept from before


def test_the_system_notebook_stops_and_starts_by_its_run_strategy(live, api):
    """The shipped Jupyter profile: its stop and start actions (run_strategy fixed by the profile) take
    the notebook server to zero replicas and back; the workspace volume its home is on stays."""
    core = live["core"]
    instance = launch_instance(live, "nbhost")
    notebook = ServiceProfile.objects.get(org__isnull=True, name="jupyter-notebook")
    nb = deploy_service(live, instance, notebook, "nb", inputs={"notebook_profile": "Minimal"})
    wait_for(lambda: len(_pods(core, nb)) == 1, what="the notebook server")
    client = api.as_user(instance.owner)
    listing = client.get(f"/api/v1/service-instances/{nb.pk}/actions/").json()
    assert {a["name"]: a["variables"] for a in listing["actions"]} == {"start": [], "stop": []}
    response = client.post(f"/api/v1/service-instances/{nb.pk}/actions/stop/", {}, format="json")
    assert response.status_code == 202 and response.json()["variables"] == {"run_strategy": "halted"}
    run = _execute(response.json()["id"], State.STOPPED)
    assert not any("Scaled to zero" in e["message"] for e in run.log), run.log  # the template did it
    assert _pods(core, nb) == []
    # Its home is a directory of the instance's workspace volume, which stays.
    assert core.read_namespaced_persistent_volume_claim("workspace", nb.namespace).status.phase == "Bound"
    response = client.post(f"/api/v1/service-instances/{nb.pk}/actions/start/", {}, format="json")
    assert response.status_code == 202, response.content
    _execute(response.json()["id"], State.READY)
    wait_for(lambda: len(_pods(core, nb)) == 1, what="the notebook server back")
