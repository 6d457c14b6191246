"""Smoke tests proving that tests.localkube runs a real Kubernetes control plane.

Each test exercises a behaviour that only a real API server / controller manager / scheduler
produces (admission plugins, RBAC with bound tokens, namespace finalization, scheduling onto
KWOK-simulated GPU nodes), and asserts a positive control next to every rejection.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.localkube.helpers import bearer_token_client, create_namespace, unique_name
from tests.localkube.inventory import NodeSpec
from tests.support.wait import wait_for

pytestmark = pytest.mark.kube

H100 = "NVIDIA-H100-80GB-HBM3"
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"


# ------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def api(kube_cluster: Any) -> Iterator[Any]:
    api_client = kube_cluster.api_client()
    yield api_client
    api_client.close()


@pytest.fixture(scope="module")
def core(api: Any) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest.fixture
def namespaces(api: Any, core: client.CoreV1Api) -> Iterator[Any]:
    """Factory creating throw-away namespaces, deleted after the test."""
    created: list[str] = []

    def make(prefix: str, labels: dict[str, str] | None = None) -> str:
        name = unique_name(prefix)
        create_namespace(api, name, labels)
        created.append(name)
        return name

    yield make
    for name in created:
        try:
            core.delete_namespace(name)
        except ApiException as error:
            if error.status != 404:
                raise


# ------------------------------------------------------------------------------------- helpers
def restricted_container(name: str = "app", **extra: Any) -> dict[str, Any]:
    """A container that satisfies the PSA ``restricted`` profile."""
    return {
        "name": name,
        "image": PAUSE_IMAGE,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        **extra,
    }


def pod(name: str, containers: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": containers, **spec},
    }


def gpu_container(resource: str, count: int) -> dict[str, Any]:
    quantity = {resource: str(count)}
    return restricted_container(resources={"requests": dict(quantity), "limits": dict(quantity)})


def pod_is_running_and_ready(core: client.CoreV1Api, namespace: str, name: str) -> Any:
    current = core.read_namespaced_pod(name, namespace)
    conditions = {c.type: c.status for c in current.status.conditions or []}
    if current.status.phase == "Running" and conditions.get("Ready") == "True":
        return current
    return None


def pod_unschedulable(core: client.CoreV1Api, namespace: str, name: str) -> Any:
    current = core.read_namespaced_pod(name, namespace)
    for condition in current.status.conditions or []:
        if (
            condition.type == "PodScheduled"
            and condition.status == "False"
            and condition.reason == "Unschedulable"
        ):
            return condition
    return None


# --------------------------------------------------------------------------------------- tests
def test_api_server_is_real_with_conflicts_and_server_side_apply(
    core: client.CoreV1Api, namespaces: Any
) -> None:
    ns = namespaces("lk-real")
    body = {"metadata": {"name": "settings"}, "data": {"a": "1"}}
    created = core.create_namespaced_config_map(ns, body)
    with pytest.raises(ApiException) as duplicate:
        core.create_namespaced_config_map(ns, body)
    assert duplicate.value.status == 409

    updated = core.replace_namespaced_config_map(
        "settings", ns, {**body, "data": {"a": "2"}, "metadata": created.metadata.to_dict()}
    )
    assert int(updated.metadata.resource_version) > int(created.metadata.resource_version)
    stale = {
        "metadata": {"name": "settings", "resourceVersion": created.metadata.resource_version},
        "data": {"a": "3"},
    }
    with pytest.raises(ApiException) as conflict:
        core.replace_namespaced_config_map("settings", ns, stale)
    assert conflict.value.status == 409

    applied = core.patch_namespaced_config_map(
        "settings",
        ns,
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"b": "x"}},
        field_manager="localkube-smoke",
        force=True,
        _content_type="application/apply-patch+yaml",
    )
    assert applied.data == {"a": "2", "b": "x"}
    assert "localkube-smoke" in {entry.manager for entry in applied.metadata.managed_fields}
    selected = core.list_namespaced_config_map(ns, label_selector="app=nothing-has-this")
    assert selected.items == []


def test_pod_security_admission_rejects_privileged_pod(core: client.CoreV1Api, namespaces: Any) -> None:
    ns = namespaces("lk-psa", {"pod-security.kubernetes.io/enforce": "restricted"})
    privileged = pod(
        "privileged", [{"name": "app", "image": PAUSE_IMAGE, "securityContext": {"privileged": True}}]
    )
    with pytest.raises(ApiException) as rejected:
        core.create_namespaced_pod(ns, privileged)
    assert rejected.value.status == 403
    message = json.loads(rejected.value.body)["message"]
    assert 'violates PodSecurity "restricted:latest"' in message
    assert 'privileged (container "app" must not set securityContext.privileged=true)' in message

    compliant = core.create_namespaced_pod(ns, pod("compliant", [restricted_container()]))
    assert compliant.metadata.uid


def test_validating_admission_policy_is_enforced(api: Any, core: client.CoreV1Api, namespaces: Any) -> None:
    ns = namespaces("lk-vap", {"localkube-smoke/vap": "on"})
    registration = client.AdmissionregistrationV1Api(api)
    policy, binding = unique_name("lk-no-gpu-in-configmaps"), unique_name("lk-binding")
    registration.create_validating_admission_policy(
        {
            "metadata": {"name": policy},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE", "UPDATE"],
                            "resources": ["configmaps"],
                        }
                    ]
                },
                "validations": [
                    {
                        "expression": "!has(object.data) || !('gpu' in object.data)",
                        "message": "configmaps may not carry a gpu key",
                    }
                ],
            },
        }
    )
    registration.create_validating_admission_policy_binding(
        {
            "metadata": {"name": binding},
            "spec": {
                "policyName": policy,
                "validationActions": ["Deny"],
                "matchResources": {"namespaceSelector": {"matchLabels": {"localkube-smoke/vap": "on"}}},
            },
        }
    )
    try:

        def rejected() -> str | None:
            name = unique_name("probe")
            try:
                core.create_namespaced_config_map(ns, {"metadata": {"name": name}, "data": {"gpu": "1"}})
            except ApiException as error:
                return json.loads(error.body)["message"] if error.status == 422 else None
            core.delete_namespaced_config_map(name, ns)
            return None  # the policy is not active yet

        message = wait_for(rejected, timeout=30, what="ValidatingAdmissionPolicy to take effect")
        assert f"ValidatingAdmissionPolicy '{policy}'" in message
        assert "configmaps may not carry a gpu key" in message
        core.create_namespaced_config_map(ns, {"metadata": {"name": "fine"}, "data": {"cpu": "1"}})
        other = namespaces("lk-vap-off")
        core.create_namespaced_config_map(other, {"metadata": {"name": "allowed"}, "data": {"gpu": "1"}})
    finally:
        registration.delete_validating_admission_policy_binding(binding)
        registration.delete_validating_admission_policy(policy)


def test_resource_quota_caps_gpu_requests(api: Any, core: client.CoreV1Api, namespaces: Any) -> None:
    ns = namespaces("lk-quota")
    core.create_namespaced_resource_quota(
        ns, {"metadata": {"name": "gpus"}, "spec": {"hard": {"requests.nvidia.com/gpu": "1"}}}
    )
    wait_for(
        lambda: (core.read_namespaced_resource_quota("gpus", ns).status.hard or {}).get(
            "requests.nvidia.com/gpu"
        ),
        what="quota status computed by the controller manager",
    )

    too_many = pod("two-gpus", [gpu_container("nvidia.com/gpu", 2)])
    with pytest.raises(ApiException) as rejected:
        core.create_namespaced_pod(ns, too_many)
    assert rejected.value.status == 403
    assert "exceeded quota: gpus" in rejected.value.body
    assert "requests.nvidia.com/gpu=2" in rejected.value.body

    core.create_namespaced_pod(ns, pod("one-gpu", [gpu_container("nvidia.com/gpu", 1)]))
    used = core.read_namespaced_resource_quota("gpus", ns).status.used
    assert used["requests.nvidia.com/gpu"] == "1"
    with pytest.raises(ApiException) as second:
        core.create_namespaced_pod(ns, pod("another-gpu", [gpu_container("nvidia.com/gpu", 1)]))
    assert second.value.status == 403


def test_bound_service_account_token_is_confined_to_its_namespace(
    kube_cluster: Any, api: Any, core: client.CoreV1Api, namespaces: Any
) -> None:
    home, other = namespaces("lk-home"), namespaces("lk-other")
    core.create_namespaced_service_account(home, {"metadata": {"name": "robot"}})
    rbac = client.RbacAuthorizationV1Api(api)
    rbac.create_namespaced_role(
        home,
        {
            "metadata": {"name": "pod-reader"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}],
        },
    )
    rbac.create_namespaced_role_binding(
        home,
        {
            "metadata": {"name": "robot-reads-pods"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": home}],
        },
    )
    token = core.create_namespaced_service_account_token(
        "robot", home, {"spec": {"expirationSeconds": 600}}
    ).status.token
    assert token.count(".") == 2  # a signed JWT

    robot_api = bearer_token_client(kube_cluster.kubeconfig_path, token)
    try:
        robot = client.CoreV1Api(robot_api)
        whoami = client.AuthenticationV1Api(robot_api).create_self_subject_review({})
        assert whoami.status.user_info.username == f"system:serviceaccount:{home}:robot"
        assert robot.list_namespaced_pod(home).items == []
        for forbidden in (
            lambda: robot.list_namespaced_pod(other),
            robot.list_node,
            lambda: robot.list_namespaced_secret(home),
        ):
            with pytest.raises(ApiException) as denied:
                forbidden()
            assert denied.value.status == 403
    finally:
        robot_api.close()

    broken_api = bearer_token_client(kube_cluster.kubeconfig_path, token[:-4] + "AAAA")
    try:
        with pytest.raises(ApiException) as unauthenticated:
            client.CoreV1Api(broken_api).list_namespaced_pod(home)
        assert unauthenticated.value.status == 401
    finally:
        broken_api.close()


def test_deleted_namespace_is_finalized(api: Any, core: client.CoreV1Api) -> None:
    ns = unique_name("lk-doomed")
    create_namespace(api, ns)
    core.create_namespaced_config_map(ns, {"metadata": {"name": "leftover"}})
    core.create_namespaced_pod(ns, pod("sleeper", [restricted_container()]))
    core.delete_namespace(ns)
    phases: list[str] = []

    def gone() -> bool:
        try:
            phases.append(core.read_namespace(ns).status.phase)
        except ApiException as error:
            return error.status == 404
        return False

    wait_for(gone, timeout=60, what=f"namespace {ns} to be finalized")
    assert set(phases) <= {"Terminating"}  # never Active again once deletion started


def test_gpu_pod_is_scheduled_onto_a_gpu_node_and_runs(core: client.CoreV1Api, namespaces: Any) -> None:
    ns = namespaces("lk-gpu")
    h100_nodes = {
        n.metadata.name for n in core.list_node(label_selector=f"nvidia.com/gpu.product={H100}").items
    }
    assert h100_nodes, "the default inventory has H100 nodes"
    selector = {"nvidia.com/gpu.product": H100}
    core.create_namespaced_pod(
        ns, pod("trainer", [gpu_container("nvidia.com/gpu", 1)], nodeSelector=selector)
    )
    running = wait_for(
        lambda: pod_is_running_and_ready(core, ns, "trainer"), timeout=30, what="GPU pod Running and Ready"
    )
    assert running.spec.node_name in h100_nodes
    assert running.status.pod_ip

    core.create_namespaced_pod(ns, pod("greedy", [gpu_container("nvidia.com/gpu", 9)], nodeSelector=selector))
    condition = wait_for(
        lambda: pod_unschedulable(core, ns, "greedy"), timeout=30, what="9-GPU pod reported unschedulable"
    )
    assert "Insufficient nvidia.com/gpu" in condition.message


def test_mig_nodes_expose_mig_resources_and_take_mig_pods(core: client.CoreV1Api, namespaces: Any) -> None:
    node = core.read_node("gpu-a100-mig-0")
    labels, allocatable = node.metadata.labels, node.status.allocatable
    assert allocatable["nvidia.com/mig-1g.10gb"] == "56"
    assert allocatable["nvidia.com/gpu"] == "0"
    assert labels["nvidia.com/mig.strategy"] == "mixed"
    assert labels["nvidia.com/mig.config"] == "all-1g.10gb"
    assert labels["nvidia.com/mig.config.state"] == "success"

    ns = namespaces("lk-mig")
    core.create_namespaced_pod(ns, pod("slice", [gpu_container("nvidia.com/mig-3g.40gb", 1)]))
    running = wait_for(
        lambda: pod_is_running_and_ready(core, ns, "slice"), timeout=30, what="MIG pod Running"
    )
    assert running.spec.node_name == "gpu-a100-mig-1"  # the only node with 3g.40gb slices


def test_inventory_and_kata_runtime_class(kube_cluster: Any, api: Any, core: client.CoreV1Api) -> None:
    nodes = {n.metadata.name: n for n in core.list_node(label_selector="type=kwok").items}
    assert {"gpu-a100-0", "gpu-h100-0", "cpu-0", "gpu-a100-mig-0"} <= set(nodes)
    a100 = nodes["gpu-a100-0"]
    assert a100.metadata.labels["nvidia.com/gpu.product"] == "A100-SXM4-40GB"
    assert a100.metadata.labels["nvidia.com/gpu.count"] == "8"
    assert a100.status.allocatable["nvidia.com/gpu"] == "8"
    assert "nvidia.com/gpu" not in (nodes["cpu-0"].status.allocatable or {})
    handler = client.NodeV1Api(api).read_runtime_class("kata").handler
    assert handler == "kata"


def test_factory_starts_an_independent_second_cluster(
    kube_cluster: Any, kube_cluster_factory: Any, core: client.CoreV1Api
) -> None:
    solo = NodeSpec("solo-cpu", cpu=8, memory_gib=32)
    second = kube_cluster_factory("second", nodes=[solo])
    assert second.server != kube_cluster.server
    assert second.kubeconfig_path != kube_cluster.kubeconfig_path
    with second.api_client() as second_api:
        second_core = client.CoreV1Api(second_api)
        assert [n.metadata.name for n in second_core.list_node().items] == ["solo-cpu"]
        with pytest.raises(ApiException) as missing:
            client.NodeV1Api(second_api).read_runtime_class("kata")
        assert missing.value.status == 404
        marker = unique_name("lk-only-in-second")
        create_namespace(second_api, marker)
        with pytest.raises(ApiException) as absent:
            core.read_namespace(marker)
        assert absent.value.status == 404
