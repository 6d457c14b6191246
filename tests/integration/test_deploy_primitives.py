"""The deploy primitives of ``inventory.kube`` and the isolation baseline, against a real API server.

A tenant namespace gets the full baseline (``instances.baseline``) by server-side apply; its user
then works through a TokenRequest kubeconfig, like a real tenant. The checks mirror the Kubernetes
Multi-Tenancy Benchmarks (MTB): no access to cluster-scoped resources or to other tenants; no way
to weaken the namespace's quota, RBAC or network policies; Pod Security ``restricted`` blocks
privileged pods, host paths and host networking; the quota blocks NodePorts and extra GPUs; the
sandbox policy blocks pods without the Kata runtime class. Every rejection has a positive control.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from instances import baseline
from inventory import guardrails, kube
from paas.units import GIB
from tests.localkube.helpers import bearer_token_client, unique_name
from tests.support import guardrails as installed_guardrails
from tests.support.wait import wait_for

pytestmark = pytest.mark.kube

PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
USER = "alice@example.com"
SANDBOX_POLICY = guardrails.PREFIX + guardrails.RULE_SANDBOX  # the cluster-wide, label-bound rule
OTHER_RUNTIME = installed_guardrails.OTHER_RUNTIME
RESOURCES = baseline.Resources(cpu_millis=8000, memory_bytes=16 * GIB, storage_bytes=50 * GIB, gpus=1)


# -------------------------------------------------------------------------------------- helpers
def restricted_container(name: str = "app", **extra: Any) -> dict[str, Any]:
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


def pod(name: str, containers: list[dict] | None = None, *, kata: bool = True, **spec: Any) -> dict:
    body = {"containers": containers or [restricted_container()], **spec}
    if kata:
        body["runtimeClassName"] = "kata"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": body}


def deployment(name: str, *, replicas: int = 2, kata: bool = True, runtime: str | None = None) -> dict:
    template_spec: dict[str, Any] = {"containers": [restricted_container()]}
    if kata or runtime:
        template_spec["runtimeClassName"] = runtime or "kata"
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": template_spec},
        },
    }


def gpu_pod(name: str, resource: str, count: int) -> dict:
    quantity = {resource: str(count)}
    return pod(name, [restricted_container(resources={"requests": dict(quantity), "limits": dict(quantity)})])


def denied(call: Any) -> ApiException:
    with pytest.raises(ApiException) as error:
        call()
    return error.value


def message(error: ApiException) -> str:
    return json.loads(error.body)["message"]


def resource_versions(objects: list[dict]) -> dict[str, str]:
    return {f"{o['kind']}/{o['metadata']['name']}": o["metadata"]["resourceVersion"] for o in objects}


@dataclass
class Tenant:
    namespace: str
    account: str
    objects: list[dict]
    applied: list[dict]
    token: str
    expires: datetime
    kubeconfig: str
    api: client.ApiClient

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)


def sandbox_enforced(core: client.CoreV1Api, namespace: str) -> bool:
    """Whether the sandbox policy already denies (dry run) a compliant pod of another runtime there."""
    probe = pod(unique_name("probe"), kata=False, runtimeClassName=OTHER_RUNTIME)
    try:
        core.create_namespaced_pod(namespace, probe, dry_run="All")
    except ApiException as error:
        return error.status in (403, 422) and SANDBOX_POLICY in error.body
    return False


def launch(admin_kc: str, admin: client.ApiClient, instance: str, resources=RESOURCES) -> Tenant:
    """What a launch does: the guardrails (once per cluster), the baseline, a user kubeconfig."""
    namespace = baseline.namespace_name(org="mtb", project=unique_name("p"), instance=instance)
    labels = baseline.tenant_labels(org="mtb", project="p", instance=instance, instance_id=1)
    objects = baseline.baseline(namespace_name=namespace, labels=labels, resources=resources, users=[USER])
    installed_guardrails.ensure_runtime_class(admin)
    installed_guardrails.install(admin_kc)
    applied = kube.apply(admin_kc, objects)
    kube.wait_ready(admin_kc, namespace, timeout=30)
    wait_for(lambda: sandbox_enforced(client.CoreV1Api(admin), namespace), timeout=30, what="sandbox policy")
    account = baseline.service_account_name(USER)
    token, expires = kube.issue_token(admin_kc, namespace=namespace, service_account=account, seconds=3600)
    tenant_kc = kube.kubeconfig_for_token(admin_kc, token=token, namespace=namespace, user=USER)
    return Tenant(namespace, account, objects, applied, token, expires, tenant_kc, kube.api_client(tenant_kc))


def tear_down(admin_kc: str, tenant: Tenant) -> None:
    tenant.api.close()
    kube.delete_objects(admin_kc, baseline.cluster_scoped_objects(tenant.objects))
    kube.delete_namespace(admin_kc, tenant.namespace)


# ------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def admin_kc(kube_cluster: Any) -> str:
    return Path(kube_cluster.kubeconfig_path).read_text()


@pytest.fixture(scope="module")
def admin(kube_cluster: Any) -> Iterator[client.ApiClient]:
    api = kube_cluster.api_client()
    yield api
    api.close()


@pytest.fixture(scope="module")
def tenant(admin_kc: str, admin: client.ApiClient) -> Iterator[Tenant]:
    launched = launch(admin_kc, admin, "notebook")
    yield launched
    tear_down(admin_kc, launched)


@pytest.fixture(scope="module")
def neighbour(admin_kc: str, admin: client.ApiClient) -> Iterator[Tenant]:
    launched = launch(admin_kc, admin, "other")
    yield launched
    tear_down(admin_kc, launched)


# ------------------------------------------------------------------------------ apply semantics
def test_baseline_apply_is_idempotent_and_server_side(admin_kc: str, tenant: Tenant) -> None:
    assert [o["kind"] for o in tenant.applied] == [o["kind"] for o in tenant.objects]
    again = kube.apply(admin_kc, tenant.objects)
    once_more = kube.apply(admin_kc, tenant.objects)
    assert resource_versions(once_more) == resource_versions(again), "a no-op apply must not write"
    first = resource_versions(tenant.applied)
    # Only the ResourceQuota changed in between: the controller manager wrote its status.
    changed = {key for key, version in resource_versions(again).items() if first[key] != version}
    assert changed <= {"ResourceQuota/paas-quota"}, changed
    for obj in once_more:
        managers = {(entry["manager"], entry["operation"]) for entry in obj["metadata"]["managedFields"]}
        assert (kube.FIELD_MANAGER, "Apply") in managers, obj["kind"]
    quota = next(o for o in once_more if o["kind"] == "ResourceQuota")
    assert quota["spec"]["hard"]["services.nodeports"] == "0"
    assert quota["status"]["hard"]["requests.nvidia.com/gpu"] == "1", "the quota is in force"


def test_namespace_carries_pod_security_and_tenant_labels(admin_kc: str, tenant: Tenant) -> None:
    labels = kube.read_field(
        admin_kc,
        api_version="v1",
        kind="Namespace",
        name=tenant.namespace,
        namespace=None,
        path="metadata.labels",
    )
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
        assert labels[f"pod-security.kubernetes.io/{mode}-version"] == "latest"
    assert labels["paas.gpu/org"] == "mtb" and labels["paas.gpu/instance"] == "notebook"
    assert labels["app.kubernetes.io/managed-by"] == "gpu-paas"
    assert labels["kubernetes.io/metadata.name"] == tenant.namespace
    assert kube.namespace_exists(admin_kc, tenant.namespace)
    assert not kube.namespace_exists(admin_kc, unique_name("never-made"))


def test_apply_refuses_what_it_must_not_do(admin_kc: str, tenant: Tenant) -> None:
    ns = tenant.namespace
    stray = unique_name("stray")
    cluster_scoped = baseline.namespace(name=stray, labels={})
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "first"}, "data": {"a": "1"}}
    with pytest.raises(kube.ApplyError, match="cluster-scoped"):
        kube.apply(admin_kc, [configmap, cluster_scoped], namespace=ns)
    assert not kube.namespace_exists(admin_kc, stray), "nothing cluster-scoped was created"
    assert (
        kube.read_field(admin_kc, api_version="v1", kind="ConfigMap", name="first", namespace=ns, path="data")
        is None
    ), "every object is checked before the first one is sent"
    elsewhere = {**configmap, "metadata": {"name": "x", "namespace": "kube-system"}}
    with pytest.raises(kube.ApplyError, match="declares namespace 'kube-system'"):
        kube.apply(admin_kc, [elsewhere], namespace=ns)
    with pytest.raises(kube.ApplyError, match=r"needs metadata\.namespace"):
        kube.apply(admin_kc, [configmap])
    with pytest.raises(kube.ApplyError, match=r"does not serve example\.com/v1 Widget"):
        kube.apply(
            admin_kc,
            [{"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}],
            namespace=ns,
        )

    with pytest.raises(kube.ApplyError) as psa:
        as_root = {"name": "app", "image": PAUSE_IMAGE, "securityContext": {"runAsUser": 0}}
        kube.apply(admin_kc, [pod("root", [as_root])], namespace=ns)  # unset fields are defaulted
    assert psa.value.status == 403 and psa.value.kind == "Pod" and psa.value.name == "root"
    assert str(psa.value).startswith("Pod/root: ")
    assert 'violates PodSecurity "restricted:latest"' in str(psa.value)
    with pytest.raises(kube.ApplyError) as invalid:
        kube.apply(admin_kc, [{**configmap, "metadata": {"name": "Bad_Name"}}], namespace=ns)
    assert invalid.value.status == 422 and "Bad_Name" in invalid.value.message

    applied = kube.apply(admin_kc, [configmap], namespace=ns)
    assert applied[0]["metadata"]["namespace"] == ns and applied[0]["data"] == {"a": "1"}


def test_connection_and_credential_failures_are_unreachable(admin_kc: str, tenant: Tenant) -> None:
    dead = yaml.safe_load(admin_kc)
    dead["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"
    with pytest.raises(kube.KubeUnreachable, match="Cannot reach"):
        kube.apply(yaml.safe_dump(dead), tenant.objects[:1])
    with pytest.raises(kube.KubeUnreachable):
        kube.wait_ready(yaml.safe_dump(dead), tenant.namespace, timeout=1)
    forged = kube.kubeconfig_for_token(
        admin_kc, token=tenant.token[:-4] + "AAAA", namespace=tenant.namespace, user="x"
    )
    with pytest.raises(kube.KubeUnreachable, match="HTTP 401"):
        kube.apply(forged, [pod("p")], namespace=tenant.namespace)
    with pytest.raises(kube.KubeUnreachable, match="HTTP 401"):
        kube.events(forged, tenant.namespace)


# ------------------------------------------------------------------------------ tenant identity
def test_token_kubeconfig_is_the_users_service_account(
    admin_kc: str, kube_cluster: Any, tenant: Tenant
) -> None:
    now = datetime.now(UTC)
    assert tenant.token.count(".") == 2
    assert now + timedelta(minutes=55) < tenant.expires < now + timedelta(minutes=65)
    config = kube.parse_kubeconfig(tenant.kubeconfig)
    source = yaml.safe_load(admin_kc)["clusters"][0]["cluster"]
    (cluster,) = config["clusters"]
    assert cluster["cluster"]["server"] == source["server"] == kube_cluster.server
    assert cluster["cluster"]["certificate-authority-data"] == source["certificate-authority-data"]
    (context,) = config["contexts"]
    assert context["context"]["namespace"] == tenant.namespace
    (user,) = config["users"]
    assert user == {"name": USER, "user": {"token": tenant.token}}, "no admin credentials carried over"
    whoami = client.AuthenticationV1Api(tenant.api).create_self_subject_review({})
    assert whoami.status.user_info.username == f"system:serviceaccount:{tenant.namespace}:{tenant.account}"
    with pytest.raises(ValueError):
        kube.issue_token(admin_kc, namespace=tenant.namespace, service_account=tenant.account, seconds=60)
    # The same token works with the test helper (server + CA only, bearer token).
    helper_api = bearer_token_client(kube_cluster.kubeconfig_path, tenant.token)
    try:
        assert client.CoreV1Api(helper_api).list_namespaced_pod(tenant.namespace).items is not None
    finally:
        helper_api.close()


def test_tenant_deploys_a_sandboxed_restricted_workload(admin_kc: str, tenant: Tenant) -> None:
    ns = tenant.namespace
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "scratch"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    applied = kube.apply(tenant.kubeconfig, [claim, deployment("web")], namespace=ns)
    assert [o["metadata"]["namespace"] for o in applied] == [ns, ns]
    notes = kube.wait_ready(tenant.kubeconfig, ns, timeout=60)
    assert "Deployment web: 2/2 ready" in notes
    assert "PersistentVolumeClaim scratch: Bound" in notes, "the default class provisions it"
    assert "ResourceQuota paas-quota: in force" in notes
    pods = tenant.core.list_namespaced_pod(ns, label_selector="app=web").items
    assert len(pods) == 2
    for item in pods:
        assert item.spec.runtime_class_name == "kata" and item.spec.node_name
        assert item.spec.containers[0].resources.requests == {"cpu": "100m", "memory": "256Mi"}, "LimitRange"
        assert f"Pod {item.metadata.name}: Running Ready" in notes
    path = "spec.template.spec.containers[0].securityContext.runAsNonRoot"
    assert kube.read_field(
        tenant.kubeconfig, api_version="apps/v1", kind="Deployment", name="web", namespace=ns, path=path
    )
    assert (
        kube.read_field(
            admin_kc,
            api_version="apps/v1",
            kind="Deployment",
            name="web",
            namespace=ns,
            path="status.readyReplicas",
        )
        == 2
    )

    # A Deployment asking for another runtime never gets a pod: wait_ready says what is missing.
    kube.apply(
        tenant.kubeconfig, [deployment("unsandboxed", replicas=1, runtime=OTHER_RUNTIME)], namespace=ns
    )
    with pytest.raises(TimeoutError) as timeout:
        kube.wait_ready(tenant.kubeconfig, ns, timeout=5, poll=0.2)
    assert "Deployment unsandboxed: 0/1 ready" in str(timeout.value)
    assert f"ValidatingAdmissionPolicy '{SANDBOX_POLICY}'" in str(timeout.value), "says why"
    assert "Deployment web" not in str(timeout.value)

    def failed_create() -> list[dict]:
        return [
            e
            for e in kube.events(admin_kc, ns)
            if e["reason"] == "FailedCreate" and SANDBOX_POLICY in e["message"]
        ]

    (event, *_) = wait_for(failed_create, timeout=30, what="FailedCreate event from the sandbox policy")
    assert event["type"] == "Warning" and event["object"].startswith("ReplicaSet/unsandboxed-")
    recent = kube.events(admin_kc, ns)
    reasons = {(e["reason"], e["object"].split("/")[0]) for e in recent}
    assert ("Scheduled", "Pod") in reasons and ("ScalingReplicaSet", "Deployment") in reasons
    assert [e["time"] for e in recent] == sorted(e["time"] for e in recent)
    assert all(e["time"].tzinfo is not None for e in recent)
    assert len(kube.events(admin_kc, ns, limit=2)) == 2
    client.AppsV1Api(tenant.api).delete_namespaced_deployment("unsandboxed", ns)
    wait_for(
        lambda: "Deployment unsandboxed" not in " ".join(kube.wait_ready(tenant.kubeconfig, ns)), what="clean"
    )


# ---------------------------------------------------------------------------- MTB: isolation
def test_tenant_cannot_touch_cluster_scoped_resources(tenant: Tenant) -> None:
    rbac = client.RbacAuthorizationV1Api(tenant.api)
    registration = client.AdmissionregistrationV1Api(tenant.api)
    for call in (
        tenant.core.list_node,
        tenant.core.list_namespace,
        rbac.list_cluster_role,
        rbac.list_cluster_role_binding,
        lambda: tenant.core.read_namespace(tenant.namespace),
        lambda: tenant.core.create_namespace({"metadata": {"name": unique_name("mine")}}),
        lambda: tenant.core.patch_namespace(
            tenant.namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "privileged"}}}
        ),
        registration.list_validating_admission_policy,
        lambda: registration.delete_validating_admission_policy_binding(SANDBOX_POLICY),
        lambda: client.NodeV1Api(tenant.api).create_runtime_class(
            {"metadata": {"name": "x"}, "handler": "runc"}
        ),
        tenant.core.list_persistent_volume,
    ):
        assert denied(call).status == 403
    assert tenant.core.list_namespaced_pod(tenant.namespace).items is not None  # positive control


def test_tenant_cannot_reach_another_tenant(tenant: Tenant, neighbour: Tenant) -> None:
    theirs = neighbour.namespace
    apps = client.AppsV1Api(tenant.api)
    for call in (
        lambda: tenant.core.list_namespaced_pod(theirs),
        lambda: tenant.core.list_namespaced_secret(theirs),
        lambda: tenant.core.list_namespaced_config_map(theirs),
        lambda: tenant.core.read_namespaced_resource_quota(baseline.QUOTA_NAME, theirs),
        lambda: apps.list_namespaced_deployment(theirs),
        lambda: tenant.core.create_namespaced_pod(theirs, pod("intruder")),
        lambda: tenant.core.create_namespaced_service_account_token(
            neighbour.account, theirs, {"spec": {"expirationSeconds": 600}}
        ),
        lambda: tenant.core.list_pod_for_all_namespaces(),
    ):
        assert denied(call).status == 403
    # and the other way round
    assert denied(lambda: neighbour.core.list_namespaced_secret(tenant.namespace)).status == 403
    assert neighbour.core.list_namespaced_secret(theirs).items is not None


def test_tenant_cannot_weaken_its_own_baseline(tenant: Tenant) -> None:
    ns = tenant.namespace
    rbac = client.RbacAuthorizationV1Api(tenant.api)
    net = client.NetworkingV1Api(tenant.api)
    quota_patch = {"spec": {"hard": {"requests.nvidia.com/gpu": "64", "services.nodeports": "10"}}}
    subject = {"kind": "ServiceAccount", "name": "default", "namespace": ns}
    for call in (
        lambda: tenant.core.patch_namespaced_resource_quota(baseline.QUOTA_NAME, ns, quota_patch),
        lambda: tenant.core.delete_namespaced_resource_quota(baseline.QUOTA_NAME, ns),
        lambda: tenant.core.delete_namespaced_limit_range(baseline.LIMIT_RANGE_NAME, ns),
        lambda: rbac.patch_namespaced_role_binding(baseline.TENANT_ROLE, ns, {"subjects": [subject]}),
        lambda: rbac.read_namespaced_role_binding(baseline.TENANT_ROLE, ns),
        lambda: rbac.patch_namespaced_role(
            baseline.TENANT_ROLE, ns, {"rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}
        ),
        lambda: rbac.create_namespaced_role_binding(
            ns,
            {
                "metadata": {"name": "admin"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
                "subjects": [subject],
            },
        ),
        lambda: net.delete_namespaced_network_policy(baseline.DEFAULT_DENY, ns),
        lambda: net.patch_namespaced_network_policy(
            baseline.DEFAULT_DENY, ns, {"spec": {"policyTypes": ["Ingress"]}}
        ),
        lambda: net.create_namespaced_network_policy(
            ns,
            {"metadata": {"name": "allow-all"}, "spec": {"podSelector": {}, "ingress": [{}], "egress": [{}]}},
        ),
        lambda: tenant.core.create_namespaced_service_account_token(
            tenant.account, ns, {"spec": {"expirationSeconds": 600}}
        ),
    ):
        assert denied(call).status == 403
    with pytest.raises(kube.KubeUnreachable, match="HTTP 403"):
        kube.apply(tenant.kubeconfig, [{**next(o for o in tenant.objects if o["kind"] == "ResourceQuota")}])
    # positive controls: the tenant may read its limits
    hard = tenant.core.read_namespaced_resource_quota(baseline.QUOTA_NAME, ns).spec.hard
    assert hard["services.nodeports"] == "0" and hard["requests.nvidia.com/gpu"] == "1"
    assert {p.metadata.name for p in net.list_namespaced_network_policy(ns).items} == {
        baseline.DEFAULT_DENY,
        baseline.ALLOW_SAME_NAMESPACE,
        baseline.ALLOW_DNS,
    }


def test_admission_rejects_what_would_break_isolation(tenant: Tenant) -> None:
    ns, core = tenant.namespace, tenant.core
    privileged = pod("privileged", [restricted_container(securityContext={"privileged": True})])
    error = denied(lambda: core.create_namespaced_pod(ns, privileged))
    assert error.status == 403 and 'violates PodSecurity "restricted:latest"' in message(error)
    assert "privileged" in message(error)

    host_path = pod(
        "hostpath",
        [restricted_container(volumeMounts=[{"name": "root", "mountPath": "/host"}])],
        volumes=[{"name": "root", "hostPath": {"path": "/"}}],
    )
    error = denied(lambda: core.create_namespaced_pod(ns, host_path))
    assert (
        error.status == 403
        and 'restricted volume types (volume "root" uses restricted volume type "hostPath")' in message(error)
    )

    error = denied(lambda: core.create_namespaced_pod(ns, pod("hostnet", hostNetwork=True)))
    assert error.status == 403 and "host namespaces (hostNetwork=true)" in message(error)

    unsandboxed = pod("unsandboxed", kata=False, runtimeClassName=OTHER_RUNTIME)
    error = denied(lambda: core.create_namespaced_pod(ns, unsandboxed))
    assert error.status == 403
    assert f"ValidatingAdmissionPolicy '{SANDBOX_POLICY}'" in message(error)
    assert "spec.runtimeClassName to 'kata'" in message(error)

    def service(name: str, kind: str) -> dict:
        return {
            "metadata": {"name": name},
            "spec": {"type": kind, "selector": {"app": "x"}, "ports": [{"port": 80}]},
        }

    error = denied(lambda: core.create_namespaced_service(ns, service("nodeport", "NodePort")))
    assert error.status == 403 and "exceeded quota: paas-quota" in message(error)
    assert "services.nodeports=1" in message(error)
    error = denied(lambda: core.create_namespaced_service(ns, service("lb", "LoadBalancer")))
    assert error.status == 403 and "LoadBalancer are not allowed" in message(error), "guardrail before quota"

    error = denied(lambda: core.create_namespaced_pod(ns, gpu_pod("two-gpus", "nvidia.com/gpu", 2)))
    assert error.status == 403 and "exceeded quota: paas-quota" in message(error)
    assert "requests.nvidia.com/gpu=2" in message(error)
    error = denied(lambda: core.create_namespaced_pod(ns, gpu_pod("mig", "nvidia.com/mig-1g.10gb", 1)))
    assert error.status == 403 and "requests.nvidia.com/mig-1g.10gb=1" in message(error), "MIG not granted"

    # positive controls: compliant, sandboxed, within quota
    assert core.create_namespaced_pod(ns, pod("compliant")).metadata.uid
    assert core.create_namespaced_service(ns, service("internal", "ClusterIP")).spec.cluster_ip
    core.create_namespaced_pod(ns, gpu_pod("one-gpu", "nvidia.com/gpu", 1))

    def gpu_pod_running() -> Any:
        current = core.read_namespaced_pod("one-gpu", ns)
        return current if current.status.phase == "Running" else None

    running = wait_for(gpu_pod_running, timeout=30, what="1-GPU pod Running")
    assert running.spec.node_name.startswith("gpu-")
    error = denied(lambda: core.create_namespaced_pod(ns, gpu_pod("another-gpu", "nvidia.com/gpu", 1)))
    assert error.status == 403 and "exceeded quota" in message(error), "the one GPU is in use"


# --------------------------------------------------------------------------------- read helpers
def test_read_field_and_read_secret_key(admin_kc: str, tenant: Tenant) -> None:
    ns = tenant.namespace
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db"},
        "stringData": {"password": "s3cr3t-ünïcode", "user": "app"},
    }
    kube.apply(tenant.kubeconfig, [secret], namespace=ns)
    assert kube.read_secret_key(admin_kc, namespace=ns, name="db", key="password") == "s3cr3t-ünïcode"
    assert kube.read_secret_key(tenant.kubeconfig, namespace=ns, name="db", key="user") == "app"
    assert kube.read_secret_key(admin_kc, namespace=ns, name="db", key="missing") is None
    assert kube.read_secret_key(admin_kc, namespace=ns, name="missing", key="password") is None

    def quota(path: str) -> Any:
        return kube.read_field(
            admin_kc, api_version="v1", kind="ResourceQuota", name="paas-quota", namespace=ns, path=path
        )

    assert quota('spec.hard["requests.nvidia.com/gpu"]') == "1"
    assert quota("spec.hard['services.nodeports']") == "0"
    assert quota("spec.hard.nothing") is None
    assert quota("spec.hard[0]") is None
    binding = kube.read_field(
        admin_kc,
        api_version="rbac.authorization.k8s.io/v1",
        kind="RoleBinding",
        name="paas-tenant",
        namespace=ns,
        path="subjects[0].name",
    )
    assert binding == tenant.account
    assert kube.read_field(
        admin_kc,
        api_version="admissionregistration.k8s.io/v1",
        kind="ValidatingAdmissionPolicyBinding",
        name=SANDBOX_POLICY,
        namespace=None,
        path="spec.matchResources.namespaceSelector.matchExpressions",
    ) == [{"key": baseline.LABEL_INSTANCE_ID, "operator": "Exists"}]
    assert (
        kube.read_field(admin_kc, api_version="v1", kind="ConfigMap", name="nope", namespace=ns, path="data")
        is None
    )
    assert (
        kube.read_field(
            admin_kc, api_version="example.com/v1", kind="Widget", name="w", namespace=ns, path="a"
        )
        is None
    )
    with pytest.raises(ValueError):
        quota("spec..hard[")


# ------------------------------------------------------------------------------------- teardown
def test_delete_namespace_removes_everything(admin_kc: str, admin: client.ApiClient) -> None:
    doomed = launch(admin_kc, admin, "doomed")
    try:
        kube.apply(doomed.kubeconfig, [deployment("web", replicas=1)], namespace=doomed.namespace)
        kube.wait_ready(doomed.kubeconfig, doomed.namespace, timeout=60)
    finally:
        doomed.api.close()
    assert baseline.cluster_scoped_objects(doomed.objects) == [], "nothing per instance outside it"
    kube.delete_namespace(admin_kc, doomed.namespace)  # the platform's identity: the guardrails let it
    started = time.monotonic()
    wait_for(lambda: not kube.namespace_exists(admin_kc, doomed.namespace), timeout=90, what="namespace gone")
    assert time.monotonic() - started < 90
    kube.delete_namespace(admin_kc, doomed.namespace)  # already gone: fine
    kube.delete_objects(admin_kc, baseline.cluster_scoped_objects(doomed.objects))  # likewise
    # the platform-wide policy stays for the other instances
    assert kube.read_field(
        admin_kc,
        api_version="admissionregistration.k8s.io/v1",
        kind="ValidatingAdmissionPolicy",
        name=SANDBOX_POLICY,
        namespace=None,
        path="metadata.name",
    )
