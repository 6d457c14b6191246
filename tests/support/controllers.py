"""Playing the operators that cannot run on the local control plane: KServe and KubeRay.

The local cluster has the operators' real CRDs (``tests/localkube/crds.py``: KServe v0.17.0, KubeRay
v1.5.0, from their Go modules), so the API server validates every custom object the templates create
— spec and, through the status subresource, the status written here — against the operators' own
schemas. Their controllers do not run (no containers, no webhooks), so a test plays them: once an
object exists, :func:`play` writes the status the controller would write when everything went well
(what a controller *creates* — predictor Deployments, Ray head pods — is not simulated: the templates'
own workloads are judged by ``inventory.kube.wait_ready``). This is the same stand-in the MIG tests
use for the GPU operator (they set the node labels and allocatable resources the operator would).

* KServe ``InferenceService``: ``Ready``, ``IngressReady``, ``PredictorReady`` conditions, ``url``
  (KServe's own domain, ``http://<name>-<namespace>.example.com``), ``address.url`` (the predictor
  Service), the predictor component and ``modelStatus`` Loaded.
* KubeRay ``RayCluster``: ``state: ready`` with ``RayClusterProvisioned`` and ``HeadPodReady``, the
  worker counts, head service name and endpoints; a suspended one ``state: suspended``.
* KubeRay ``RayService``: ``Ready`` (``NonZeroServeEndpoints``), ``UpgradeInProgress`` False, the
  active cluster's name and every application of ``serveConfigV2`` ``RUNNING``.

:func:`playing` runs :func:`play` in a thread next to a deploy (the service deployer waits until
``kube.wait_ready`` finds the template's custom resources Ready); :func:`custom_resources_ready` reads
them back by the same rule and names what is not ready (a status the schema rejected never arrives,
so a wrong shape fails the test).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import yaml
from kubernetes import client as k8s
from kubernetes import config
from kubernetes.client.exceptions import ApiException

from inventory import kube

#: (group, version, plural, kind) of the custom resources played here.
KSERVE = ("serving.kserve.io", "v1beta1", "inferenceservices", "InferenceService")
RAY_CLUSTER = ("ray.io", "v1", "rayclusters", "RayCluster")
RAY_SERVICE = ("ray.io", "v1", "rayservices", "RayService")
PLAYED = (KSERVE, RAY_CLUSTER, RAY_SERVICE)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _condition(kind: str, reason: str = "", status: str = "True", **extra: Any) -> dict:
    condition = {"type": kind, "status": status, "lastTransitionTime": _now(), **extra}
    if reason:
        condition["reason"] = reason
    return condition


def inference_service_status(obj: dict) -> dict:
    """What KServe (RawDeployment mode) reports for a healthy InferenceService."""
    name, namespace = obj["metadata"]["name"], obj["metadata"]["namespace"]
    internal = f"http://{name}-predictor.{namespace}.svc.cluster.local"
    return {
        "observedGeneration": obj["metadata"].get("generation", 1),
        "url": f"http://{name}-{namespace}.example.com",
        "address": {"url": internal},
        "conditions": [
            _condition("IngressReady"),
            _condition("PredictorReady"),
            _condition("Ready"),
        ],
        "components": {"predictor": {"url": internal, "latestCreatedRevision": f"{name}-predictor-1"}},
        "modelStatus": {
            "states": {"activeModelState": "Loaded", "targetModelState": "Loaded"},
            "transitionStatus": "UpToDate",
        },
        "deploymentMode": "RawDeployment",
    }


def _workers(spec: dict) -> int:
    return sum(int(group.get("replicas") or 0) for group in spec.get("workerGroupSpecs") or [])


def ray_cluster_status(obj: dict) -> dict:
    """What KubeRay reports for a RayCluster whose head and workers are up (or that is suspended)."""
    name, spec = obj["metadata"]["name"], obj.get("spec") or {}
    if spec.get("suspend"):
        return {
            "state": "suspended",
            "observedGeneration": obj["metadata"].get("generation", 1),
            "conditions": [_condition("RayClusterSuspended", "RayClusterSuspended", message="")],
            "readyWorkerReplicas": 0,
            "desiredWorkerReplicas": 0,
        }
    workers = _workers(spec)
    return {
        "state": "ready",
        "observedGeneration": obj["metadata"].get("generation", 1),
        "conditions": [
            _condition("RayClusterProvisioned", "AllPodRunningAndReadyFirstTime", message=""),
            _condition("HeadPodReady", "HeadPodRunningAndReady", message=""),
        ],
        "readyWorkerReplicas": workers,
        "availableWorkerReplicas": workers,
        "desiredWorkerReplicas": workers,
        "minWorkerReplicas": workers,
        "maxWorkerReplicas": workers,
        "endpoints": {"client": "10001", "dashboard": "8265", "gcs-server": "6379", "metrics": "8080"},
        "head": {"serviceName": f"{name}-head-svc", "podIP": "10.244.0.10", "serviceIP": "10.96.0.10"},
    }


def ray_service_status(obj: dict) -> dict:
    """What KubeRay reports for a RayService whose Serve applications all run."""
    name, spec = obj["metadata"]["name"], obj.get("spec") or {}
    config = yaml.safe_load(spec.get("serveConfigV2") or "") or {}
    applications = {
        app.get("name") or "default": {"status": "RUNNING", "message": ""}
        for app in config.get("applications") or []
    }
    return {
        "observedGeneration": obj["metadata"].get("generation", 1),
        "serviceStatus": "Running",
        "numServeEndpoints": 1,
        "conditions": [
            _condition(
                "Ready", "NonZeroServeEndpoints", message="Number of serve endpoints is greater than 0"
            ),
            _condition("UpgradeInProgress", "NoPendingCluster", status="False", message=""),
        ],
        "activeServiceStatus": {
            "rayClusterName": f"{name}-raycluster-local",
            "applicationStatuses": applications,
            "rayClusterStatus": ray_cluster_status(
                {"metadata": {"name": f"{name}-raycluster-local"}, "spec": spec.get("rayClusterConfig") or {}}
            ),
        },
    }


STATUS = {KSERVE: inference_service_status, RAY_CLUSTER: ray_cluster_status, RAY_SERVICE: ray_service_status}


def _items(custom: k8s.CustomObjectsApi, kind: tuple, namespace: str) -> list[dict]:
    group, version, plural, _ = kind
    try:
        return custom.list_namespaced_custom_object(group, version, namespace, plural)["items"]
    except ApiException as error:
        if error.status == 404:  # the CRD is not installed: nothing to play
            return []
        raise


def play(api: k8s.ApiClient, namespace: str) -> list[str]:
    """Write the controllers' status on every KServe/KubeRay object of ``namespace`` whose status is
    not current (new, or changed since: ``observedGeneration``); returns ``Kind/name`` of each."""
    custom = k8s.CustomObjectsApi(api)
    played: list[str] = []
    for kind in PLAYED:
        group, version, plural, kind_name = kind
        for obj in _items(custom, kind, namespace):
            status = obj.get("status") or {}
            if status.get("observedGeneration") == obj["metadata"].get("generation", 1) and status:
                continue
            try:
                custom.patch_namespaced_custom_object_status(
                    group, version, namespace, plural, obj["metadata"]["name"], {"status": STATUS[kind](obj)}
                )
            except ApiException as error:
                # Gone since the list (a service deleted meanwhile) or changed under us: as an operator
                # would, skip it this round (the next round lists it again if it is still there).
                if error.status in (404, 409):
                    continue
                raise
            played.append(f"{kind_name}/{obj['metadata']['name']}")
    return played


def custom_resources_ready(api: k8s.ApiClient, namespace: str) -> tuple[list[str], list[str]]:
    """(ready notes, waiting notes) of the namespace's KServe and KubeRay objects, judged by the rule
    the deployer's ``kube.wait_ready`` applies (``kube.custom_resource_note``)."""
    custom = k8s.CustomObjectsApi(api)
    ready: list[str] = []
    waiting: list[str] = []
    for kind in PLAYED:
        for obj in _items(custom, kind, namespace):
            ok, note = kube.custom_resource_note(obj)
            (ready if ok else waiting).append(note)
    return ready, waiting


@contextmanager
def playing(kubeconfig_path: str, namespace: str, interval: float = 0.2) -> Iterator[list[str]]:
    """Run :func:`play` on ``namespace`` in a background thread while the block runs, as the operators
    would run next to the platform's deployer (which waits for the Ready they report). Yields the
    list of ``Kind/name`` played so far (and ``error: ...`` for a round that failed: it is
    retried, as an operator retries, and raised when the block ends only if it keeps failing)."""
    played: list[str] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def loop() -> None:
        api = config.new_client_from_config(config_file=kubeconfig_path)
        try:
            while not stop.is_set():
                try:
                    played.extend(play(api, namespace))
                except Exception as error:  # an operator retries; the test is told below
                    errors.append(error)
                    played.append(f"error: {type(error).__name__}: {str(error)[:200]}")
                    if len(errors) > 50:  # not a passing hiccup: stop and report it
                        return
                stop.wait(interval)
        finally:
            api.close()

    thread = threading.Thread(target=loop, name=f"controllers-{namespace}", daemon=True)
    thread.start()
    try:
        yield played
    finally:
        stop.set()
        thread.join(timeout=10)
    if len(errors) > 50:
        raise errors[-1]
