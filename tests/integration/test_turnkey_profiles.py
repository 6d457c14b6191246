"""Every system service profile deploys to ready on the local control plane, and goes away again.

One compute instance of the small system profile is launched (its namespace, quota, Pod Security
"restricted", guardrails and the ``workspace`` claim, bound by the local cluster's provisioner); then
each service profile of the system catalog is rendered with the service render context of
CONTRACTS13.md (built here from the profile's template version, input settings and the cluster's
ingress settings), validated like the deployer validates, applied into the instance's namespace,
its KServe/KubeRay objects get the status their controllers would write
(``tests/support/controllers.py``: the operators cannot run here, their real CRDs are installed), and
every object must become ready: workloads and pods (``inventory.kube.wait_ready``), claims bound,
custom resources Ready. The Jupyter profile is deployed once per notebook profile, the seven side by
side in the one namespace. Then the service's objects are deleted and must be gone.

Also here: the local cluster's default StorageClass and provisioner (a claim binds, a released volume
goes), ``wait_ready`` naming an unbound claim, and the API server refusing custom objects the
operators' schemas refuse.
"""

from __future__ import annotations

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient

from catalog import selectors as catalog_selectors
from catalog import templating
from catalog.models import ServiceProfile
from inventory import guardrails, kube
from tests.localkube import provisioner
from tests.localkube.helpers import create_namespace, unique_name
from tests.support import controllers
from tests.support.instances import launch_instance
from tests.support.wait import wait_for

pytestmark = [pytest.mark.kube, pytest.mark.django_db]

SERVICE_LABEL = "gpu-paas.io/service"
NOTEBOOK_PROFILES = [
    "Minimal",
    "Data Science",
    "Spark",
    "TensorFlow",
    "TensorFlow with CUDA",
    "PyTorch",
    "PyTorch with CUDA",
]
#: What a user types for the inputs that are required and have no default.
GIVEN = {"token": "notebook-token-0123456789", "ngc_api_key": "nvapi-test-key-not-real"}


def service_context(profile: ServiceProfile, compute, name: str, given: dict) -> dict:
    """The render context of CONTRACTS13.md for ``name`` deployed from ``profile`` onto ``compute``."""
    version = profile.template_version
    declared = {item["name"] for item in version.inputs}
    defaults = {
        k: s["default"] for k, s in (profile.input_settings or {}).items() if s.get("default") is not None
    }
    values = {**defaults, **{k: v for k, v in given.items() if k in declared}}
    cluster = compute.cluster
    suffix = guardrails.instance_host_suffix(cluster, compute.namespace)
    host = f"{name}.{suffix}"
    scheme = "https" if cluster.ingress_tls else "http"
    own = {
        "name": name,
        "namespace": compute.namespace,
        "host_suffix": suffix,
        "host": host,
        "project": compute.project.name,
        "org": compute.org.name,
        "owner": compute.owner.username,
    }
    groups = [{**g, "cpu": g.get("cpu_cores")} for g in compute.snapshot.get("resource_groups", [])]
    return {
        "inputs": templating.resolve_inputs(version.inputs, values),
        "instance": own,
        "service": own | {"type": profile.service_type, "url": f"{scheme}://{host}"},
        "compute_instance": {
            "name": compute.name,
            "namespace": compute.namespace,
            "profile": compute.snapshot.get("name", ""),
            "resource_groups": groups,
        },
        "profile": {"name": profile.name, "display_name": profile.display_name, "resource_groups": groups},
        "ingress": {
            "host": host,
            "class_name": cluster.ingress_class or "",
            "tls": bool(cluster.ingress_tls),
            "scheme": scheme,
            "url": f"{scheme}://{host}",
        },
        "extra": dict(profile.extra_config or {}),
        "storage": [],
        "storage_class": "",
        "action": None,
    }


def render(profile: ServiceProfile, compute, name: str, given: dict) -> tuple[list[dict], dict]:
    """Rendered and validated as the deployer does; every object labelled with the service's name."""
    version = profile.template_version
    context = service_context(profile, compute, name, given)
    objects = templating.parse(templating.render(version.manifests, context))
    templating.validate_objects(
        objects,
        namespace=compute.namespace,
        kubernetes_version=version.kubernetes_version,
        custom_resources=version.custom_resources,
        host_suffix=context["instance"]["host_suffix"],
        allowed_custom_resources=catalog_selectors.allowed_custom_resource_kinds(),
    )
    for obj in objects:  # as the deployer does (CONTRACTS13.md): objects and their pod templates
        obj["metadata"].setdefault("labels", {})[SERVICE_LABEL] = name
        template = _pod_template(obj)
        if template is not None:
            template.setdefault("metadata", {}).setdefault("labels", {})[SERVICE_LABEL] = name
    return objects, context


def _pod_template(obj: dict) -> dict | None:
    spec = obj.get("spec") or {}
    if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        return spec.get("template")
    if obj["kind"] == "CronJob":
        return (spec.get("jobTemplate") or {}).get("spec", {}).get("template")
    return None


def _all_ready(kubeconfig: str, api, namespace: str) -> list[str] | None:
    """Notes when the namespace's workloads, claims and custom resources are all ready, else None."""
    controllers.play(api, namespace)
    ready, waiting = controllers.custom_resources_ready(api, namespace)
    if waiting:
        return None
    try:
        return kube.wait_ready(kubeconfig, namespace, timeout=0, poll=0) + ready
    except TimeoutError:
        return None


def _delete(api, objects: list[dict], namespace: str) -> None:
    """Delete a service's objects with their dependents (a Job's pods too: batch/v1 orphans them by
    default)."""
    dynamic = DynamicClient(api)
    for obj in objects:
        resource = dynamic.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        try:
            resource.delete(
                name=obj["metadata"]["name"], namespace=namespace, body={"propagationPolicy": "Background"}
            )
        except ApiException as error:
            if error.status != 404:
                raise


def _gone(api, namespace: str, name: str) -> bool:
    core = k8s.CoreV1Api(api)
    selector = f"{SERVICE_LABEL}={name}"
    pods = [
        p
        for p in core.list_namespaced_pod(namespace).items
        if (p.metadata.labels or {}).get(SERVICE_LABEL) == name
    ]
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


def test_every_system_service_profile_deploys_to_ready_and_is_deleted(live, kube_cluster, operator_crds):
    compute = launch_instance(live, "turnkey")
    kubeconfig = compute.cluster.kubeconfig.reveal()
    namespace = compute.namespace
    api = kube_cluster.api_client()
    try:
        notes = kube.wait_ready(kubeconfig, namespace, timeout=30)
        assert "PersistentVolumeClaim workspace: Bound" in notes, "the default class provisions the workspace"

        profiles = list(ServiceProfile.objects.filter(org__isnull=True).order_by("name"))
        expected = {
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
        assert expected <= {p.name for p in profiles}
        deployed: list[str] = []
        for profile in profiles:
            if profile.name == "jupyter-notebook":
                plan = [
                    (f"nb-{index}", {**GIVEN, "notebook_profile": option})
                    for index, option in enumerate(NOTEBOOK_PROFILES)
                ]
            else:
                plan = [(profile.name, GIVEN)]
            applied: dict[str, list[dict]] = {}
            for name, given in plan:
                objects, context = render(profile, compute, name, given)
                kube.apply(kubeconfig, objects, namespace=namespace)
                applied[name] = objects
                for ingress in (o for o in objects if o["kind"] == "Ingress"):
                    host = kube.read_field(
                        kubeconfig,
                        api_version="networking.k8s.io/v1",
                        kind="Ingress",
                        name=ingress["metadata"]["name"],
                        namespace=namespace,
                        path="spec.rules[0].host",
                    )
                    assert (
                        host == context["ingress"]["host"] == f"{name}.{context['instance']['host_suffix']}"
                    )
            notes = wait_for(
                lambda: _all_ready(kubeconfig, api, namespace), timeout=60, what=f"{profile.name} ready"
            )
            for objects in applied.values():
                for item in objects:
                    kind, item_name = item["kind"], item["metadata"]["name"]
                    if kind in ("Deployment", "StatefulSet"):
                        assert any(n.startswith(f"{kind} {item_name}: ") for n in notes), notes
                    if kind in ("InferenceService", "RayService"):
                        assert f"{kind} {item_name}: Ready" in notes, notes
                    if kind == "RayCluster":
                        assert f"RayCluster {item_name}: ready" in notes, notes
                    if kind == "Job":
                        assert any(n.startswith(f"Job {item_name}: ") for n in notes), notes
            assert all(not n.startswith("PersistentVolumeClaim") or n.endswith("Bound") for n in notes), notes
            for objects in applied.values():
                _delete(api, objects, namespace)
            for name in applied:
                wait_for(lambda name=name: _gone(api, namespace, name), timeout=60, what=f"{name} deleted")
            deployed += list(applied)
        assert len(deployed) == len(profiles) - 1 + len(NOTEBOOK_PROFILES)
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
        assert controllers.play(api, namespace) == ["InferenceService/good"]
        ready, waiting = controllers.custom_resources_ready(api, namespace)
        assert ready == ["InferenceService good: Ready"] and not waiting
        k8s.CoreV1Api(api).delete_namespace(namespace)
    finally:
        api.close()
