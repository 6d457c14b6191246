"""Every system service profile deploys to ready on the local control plane, and goes away again.

One compute instance of the small system profile is launched (its namespace, quota, Pod Security
"restricted", guardrails and the ``workspace`` claim, bound by the local cluster's provisioner); then
each service profile of the system catalog is launched and deployed onto it through the platform
(``tests.support.services.deploy_service``: the service render context of CONTRACTS13.md, validation,
apply, and the deployer's wait), while ``tests/support/controllers.py`` plays KServe and KubeRay in a
thread (the operators cannot run here; their real CRDs are installed, so the API server validates
every custom object and status). Every object must be ready: workloads and pods, claims bound,
custom resources Ready (the deployer waits for them too); Ingress hosts are the assigned host. The
Jupyter profile is launched once per notebook profile, the seven side by side in the one namespace.
Then each service is deleted through the platform and nothing of it may be left.

Also here: the local cluster's default StorageClass and provisioner (a claim binds, a released volume
goes), ``wait_ready`` naming an unbound claim, and the API server refusing custom objects the
operators' schemas refuse.
"""

from __future__ import annotations

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from catalog.models import ServiceProfile
from instances import service_instances
from instances.models import Run
from inventory import guardrails, kube
from paas.platform_owned import LABEL_SERVICE
from tests.localkube import provisioner
from tests.localkube.helpers import create_namespace, unique_name
from tests.support import controllers
from tests.support.instances import launch_instance
from tests.support.services import deploy_service, run_to_end
from tests.support.wait import wait_for

pytestmark = [pytest.mark.kube, pytest.mark.django_db]

NOTEBOOK_PROFILES = [
    "Minimal",
    "Data Science",
    "Spark",
    "TensorFlow",
    "TensorFlow with CUDA",
    "PyTorch",
    "PyTorch with CUDA",
]
#: What a user types for the exposed inputs that are required and have no default.
GIVEN = {"nvidia-nim": {"ngc_api_key": "nvapi-test-key-not-real"}}
EXPECTED = {
    "jupyter-notebook",
    "training-job",
    "fine-tuning-job",
    "inference-kserve",
    "ray-serve",
    "nvidia-nim",
    "ray-cluster",
    "mlops-platform",
    "kubernetes-yaml-app",
}


def _plan(profile: ServiceProfile) -> list[tuple[str, dict]]:
    """(service name, inputs) to launch: the notebook once per notebook profile, side by side."""
    if profile.name == "jupyter-notebook":
        return [(f"nb-{i}", {"notebook_profile": option}) for i, option in enumerate(NOTEBOOK_PROFILES)]
    return [(profile.name, GIVEN.get(profile.name, {}))]


def _gone(api, namespace: str, name: str) -> bool:
    """Nothing labelled as the service's is left: pods (a Job's too), claims, custom objects."""
    core = k8s.CoreV1Api(api)
    selector = f"{LABEL_SERVICE}={name}"
    pods = core.list_namespaced_pod(namespace, label_selector=selector).items
    claims = core.list_namespaced_persistent_volume_claim(namespace, label_selector=selector).items
    custom = k8s.CustomObjectsApi(api)
    crs = [
        item
        for group, version, plural, _kind in controllers.PLAYED
        for item in custom.list_namespaced_custom_object(
            group, version, namespace, plural, label_selector=selector
        )["items"]
    ]
    return not pods and not claims and not crs


def _check_ready(kubeconfig: str, api, service, namespace: str) -> None:
    """The service as deployed: its host, Ingresses, workloads, claims and custom objects."""
    assert service.state == "ready", service.state
    assert (
        service.host
        == f"{service.name}.{guardrails.instance_host_suffix(service.compute_instance.cluster, namespace)}"
    )
    objects = service.objects_applied
    for ref in objects:
        if ref["kind"] == "Ingress":
            host = kube.read_field(
                kubeconfig,
                api_version="networking.k8s.io/v1",
                kind="Ingress",
                name=ref["name"],
                namespace=namespace,
                path="spec.rules[0].host",
            )
            assert host == service.host, (ref, host)
    kinds = [(ref["apiVersion"], ref["kind"]) for ref in objects]
    custom = [pair for pair in kinds if pair[0].split("/")[0] in ("serving.kserve.io", "ray.io")]
    notes = kube.wait_ready(
        kubeconfig,
        namespace,
        timeout=0,
        label_selector=f"{LABEL_SERVICE}={service.name}",
        custom_resources=sorted(set(custom)),
    )
    for ref in objects:
        kind, name = ref["kind"], ref["name"]
        if kind in ("Deployment", "StatefulSet", "Job", "InferenceService", "RayService", "RayCluster"):
            assert any(n.startswith(f"{kind} {name}: ") for n in notes), (kind, name, notes)
    ready, waiting = controllers.custom_resources_ready(api, namespace)
    assert not waiting, waiting
    for kind, name in ((r["kind"], r["name"]) for r in objects if (r["apiVersion"], r["kind"]) in custom):
        assert any(n.startswith(f"{kind} {name}: ") for n in ready), (kind, name, ready)
    for output in ("url", "mlflow_url"):  # the URLs users open are on the assigned host
        if output in service.outputs:
            assert f"://{service.host}" in str(service.outputs[output]), (output, service.outputs)


def test_every_system_service_profile_deploys_to_ready_and_is_deleted(live, kube_cluster, operator_crds):
    compute = launch_instance(live, "turnkey")
    kubeconfig = compute.cluster.kubeconfig.reveal()
    namespace = compute.namespace
    api = kube_cluster.api_client()
    try:
        notes = kube.wait_ready(kubeconfig, namespace, timeout=30)
        assert "PersistentVolumeClaim workspace: Bound" in notes, "the default class provisions the workspace"
        profiles = list(ServiceProfile.objects.filter(org__isnull=True).order_by("name"))
        assert {p.name for p in profiles} >= EXPECTED
        deployed: list[str] = []
        with controllers.playing(kube_cluster.kubeconfig_path, namespace) as played:
            for profile in profiles:
                services = [
                    deploy_service(live, compute, profile, name, inputs=given)
                    for name, given in _plan(profile)
                ]
                for service in services:
                    _check_ready(kubeconfig, api, service, namespace)
                claims = kube.wait_ready(kubeconfig, namespace, timeout=0)
                assert [n for n in claims if n.startswith("PersistentVolumeClaim")] == [
                    "PersistentVolumeClaim workspace: Bound"
                ], "services keep their data on the workspace claim"
                for service in services:
                    run = service_instances.service_delete(actor=compute.owner, service=service)
                    assert run_to_end(run) == "deleted", Run.objects.get(pk=run.pk).log
                for service in services:
                    wait_for(
                        lambda s=service: _gone(api, namespace, s.name),
                        timeout=30,
                        what=f"{service.name} gone",
                    )
                deployed += [s.name for s in services]
        assert len(deployed) == len(profiles) - 1 + len(NOTEBOOK_PROFILES)
        assert {"InferenceService/inference-kserve", "RayService/ray-serve", "RayCluster/ray-cluster"} <= set(
            played
        ) and "InferenceService/mlops-platform-model" in played
    finally:
        api.close()


def test_the_default_storage_class_binds_claims_and_releases_volumes(kube_cluster):
    api = kube_cluster.api_client()
    try:
        core, storage = k8s.CoreV1Api(api), k8s.StorageV1Api(api)
        default = storage.read_storage_class(provisioner.STORAGE_CLASS)
        assert default.metadata.annotations["storageclass.kubernetes.io/is-default-class"] == "true"
        assert (default.provisioner, default.volume_binding_mode) == (provisioner.PROVISIONER, "Immediate")
        namespace = unique_name("pv")
        create_namespace(api, namespace)
        claim = {
            "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "3Gi"}}},
        }
        core.create_namespaced_persistent_volume_claim(namespace, claim)

        def bound():
            item = core.read_namespaced_persistent_volume_claim("data", namespace)
            return item if item.status.phase == "Bound" else None

        item = wait_for(bound, timeout=30, what="claim bound")
        assert item.spec.storage_class_name == provisioner.STORAGE_CLASS, "the default class was assigned"
        volume = core.read_persistent_volume(item.spec.volume_name)
        assert volume.spec.capacity["storage"] == "3Gi" and volume.spec.claim_ref.uid == item.metadata.uid
        assert volume.metadata.annotations["pv.kubernetes.io/provisioned-by"] == provisioner.PROVISIONER

        core.delete_namespaced_persistent_volume_claim("data", namespace)

        def released() -> bool:
            try:
                core.read_persistent_volume(volume.metadata.name)
            except ApiException as error:
                return error.status == 404
            return False

        wait_for(released, timeout=30, what="released volume deleted")
        core.delete_namespace(namespace)
    finally:
        api.close()


def test_wait_ready_names_an_unbound_claim(kube_cluster):
    api = kube_cluster.api_client()
    try:
        namespace = unique_name("unbound")
        create_namespace(api, namespace)
        k8s.CoreV1Api(api).create_namespaced_persistent_volume_claim(
            namespace,
            {
                "metadata": {"name": "workspace"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": "standard",  # no such class here: it never binds
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            },
        )
        with open(kube_cluster.kubeconfig_path) as handle:
            kubeconfig = handle.read()

        def named() -> str:
            try:
                kube.wait_ready(kubeconfig, namespace, timeout=0, poll=0)
            except TimeoutError as error:
                return str(error) if 'storageclass.storage.k8s.io "standard" not found' in str(error) else ""
            return ""

        message = wait_for(named, timeout=30, what="the unbound claim named with its reason")
        assert "PersistentVolumeClaim workspace: Pending, not bound" in message
        k8s.CoreV1Api(api).delete_namespace(namespace)
    finally:
        api.close()


def test_the_api_server_validates_custom_objects_against_the_operators_crds(kube_cluster, operator_crds):
    assert {"inferenceservices.serving.kserve.io", "rayclusters.ray.io", "rayservices.ray.io"} <= set(
        operator_crds
    )
    api = kube_cluster.api_client()
    try:
        namespace = unique_name("crd")
        create_namespace(api, namespace)
        custom = k8s.CustomObjectsApi(api)
        bad_isvc = {
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": {"name": "bad"},
            "spec": {"predictor": {"minReplicas": "one", "model": {"modelFormat": {"name": "sklearn"}}}},
        }
        with pytest.raises(ApiException) as refused:
            custom.create_namespaced_custom_object(
                "serving.kserve.io", "v1beta1", namespace, "inferenceservices", bad_isvc
            )
        assert refused.value.status == 422 and "minReplicas" in refused.value.body
        bad_ray = {
            "apiVersion": "ray.io/v1",
            "kind": "RayCluster",
            "metadata": {"name": "bad"},
            "spec": {"headGroupSpec": {"template": {"spec": {"containers": "not-a-list"}}}},
        }
        with pytest.raises(ApiException) as refused:
            custom.create_namespaced_custom_object("ray.io", "v1", namespace, "rayclusters", bad_ray)
        assert refused.value.status == 422 and "containers" in refused.value.body
        good = {**bad_isvc, "metadata": {"name": "good"}}
        good["spec"] = {
            "predictor": {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "gs://b/m"}}
        }
        custom.create_namespaced_custom_object(
            "serving.kserve.io", "v1beta1", namespace, "inferenceservices", good
        )
        with open(kube_cluster.kubeconfig_path) as handle:
            kubeconfig = handle.read()
        isvc = [{"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService"}]
        with pytest.raises(TimeoutError, match="InferenceService good: no status from its operator yet"):
            kube.wait_ready(kubeconfig, namespace, timeout=0, custom_resources=isvc)
        assert controllers.play(api, namespace) == ["InferenceService/good"]
        assert "InferenceService good: Ready" in kube.wait_ready(
            kubeconfig, namespace, timeout=0, custom_resources=isvc
        )
        assert controllers.custom_resources_ready(api, namespace) == (["InferenceService good: Ready"], [])
        custom.patch_namespaced_custom_object_status(
            "serving.kserve.io",
            "v1beta1",
            namespace,
            "inferenceservices",
            "good",
            {"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "ModelLoadFailed"}]}},
        )
        with pytest.raises(TimeoutError, match=r"InferenceService good: not Ready \(ModelLoadFailed\)"):
            kube.wait_ready(kubeconfig, namespace, timeout=0, custom_resources=isvc)
        ready, waiting = controllers.custom_resources_ready(api, namespace)
        assert waiting == ["InferenceService good: not Ready (ModelLoadFailed)"] and not ready
        k8s.CoreV1Api(api).delete_namespace(namespace)
    finally:
        api.close()
