"""Scaling a namespace's workloads to zero and back (stopping and starting an instance or a service),
and waiting until their pods are gone.

To zero: every Deployment, StatefulSet and ReplicaSet (one no Deployment controls) to 0 replicas,
every Job and CronJob suspended; each object changed is annotated with what it had
(:data:`STOPPED_ANNOTATION`), so that :func:`scale_back` restores exactly what was stopped and nothing
else. Pods no such controller owns (bare pods, pods of custom controllers) are deleted: with the
namespace's quota at zero CPU and memory nothing can take their place.
"""

import time

import urllib3
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from inventory.kube.clients import TIMEOUT, _unreachable, api_client
from inventory.kube.objects import ApplyError, _api_message

STOPPED_ANNOTATION = "paas.gpu/stopped-replicas"  # the replicas before the stop, or "suspended"
SUSPENDED = "suspended"
MAX_RESTORED_REPLICAS = 1000  # the annotation is tenant-writable: never trusted beyond this
_SCALED_OWNERS = {"ReplicaSet", "StatefulSet", "Job"}  # their pods go when they are scaled/suspended
_TERMINAL = {"Succeeded", "Failed"}


def _controller(obj) -> str:
    refs = obj.metadata.owner_references or []
    return next((ref.kind for ref in refs if ref.controller), "")


def _call(kind: str, name: str, fn, *args, **kwargs):
    try:
        return fn(*args, _request_timeout=TIMEOUT, **kwargs)
    except ApiException as exc:
        if exc.status == 404:
            return None
        if exc.status is not None and 400 <= exc.status < 500 and exc.status not in (401, 403):
            raise ApplyError(kind, name, _api_message(exc), status=exc.status) from exc
        raise


def _scalables(apps: k8s.AppsV1Api, batch: k8s.BatchV1Api, namespace: str, label_selector: str):
    """(kind, object, patch function, is_suspendable) for every scalable workload, one list per kind."""
    kw = {"label_selector": label_selector, "_request_timeout": TIMEOUT}
    for item in apps.list_namespaced_deployment(namespace, **kw).items:
        yield "Deployment", item, apps.patch_namespaced_deployment, False
    for item in apps.list_namespaced_stateful_set(namespace, **kw).items:
        yield "StatefulSet", item, apps.patch_namespaced_stateful_set, False
    for item in apps.list_namespaced_replica_set(namespace, **kw).items:
        if _controller(item) != "Deployment":  # a Deployment's ReplicaSets follow the Deployment
            yield "ReplicaSet", item, apps.patch_namespaced_replica_set, False
    for item in batch.list_namespaced_cron_job(namespace, **kw).items:
        yield "CronJob", item, batch.patch_namespaced_cron_job, True
    for item in batch.list_namespaced_job(namespace, **kw).items:
        yield "Job", item, batch.patch_namespaced_job, True


def scale_to_zero(kubeconfig: str, namespace: str, *, label_selector: str = "") -> list[str]:
    """Scale every workload of the namespace (or those matching ``label_selector``) to zero, suspend
    every Job and CronJob, delete pods none of those controls. Returns ``Kind/name`` notes of what
    changed. Idempotent: an object stopped already keeps the annotation of what it had."""
    changed: list[str] = []
    with api_client(kubeconfig) as api:
        core, apps, batch = k8s.CoreV1Api(api), k8s.AppsV1Api(api), k8s.BatchV1Api(api)
        try:
            for kind, item, patch, suspendable in _scalables(apps, batch, namespace, label_selector):
                name = item.metadata.name
                annotations = item.metadata.annotations or {}
                if suspendable:
                    finished = (
                        kind == "Job" and item.status and item.status.succeeded and not item.status.active
                    )
                    if item.spec.suspend or finished:
                        continue  # suspended already, or finished: nothing runs, nothing to restore
                    body = {
                        "metadata": {"annotations": {STOPPED_ANNOTATION: SUSPENDED}},
                        "spec": {"suspend": True},
                    }
                    _call(kind, name, patch, name, namespace, body)
                    changed.append(f"{kind}/{name} suspended")
                    continue
                replicas = 1 if item.spec.replicas is None else item.spec.replicas
                if replicas == 0:
                    continue
                before = annotations.get(STOPPED_ANNOTATION) or str(replicas)
                body = {"metadata": {"annotations": {STOPPED_ANNOTATION: before}}, "spec": {"replicas": 0}}
                _call(kind, name, patch, name, namespace, body)
                changed.append(f"{kind}/{name} {replicas}→0")
            pods = core.list_namespaced_pod(
                namespace, label_selector=label_selector, _request_timeout=TIMEOUT
            )
            for pod in pods.items:
                phase = pod.status.phase if pod.status else ""
                if (
                    phase in _TERMINAL
                    or pod.metadata.deletion_timestamp
                    or _controller(pod) in _SCALED_OWNERS
                ):
                    continue
                _call("Pod", pod.metadata.name, core.delete_namespaced_pod, pod.metadata.name, namespace)
                changed.append(f"Pod/{pod.metadata.name} deleted")
        except ApiException as exc:
            raise _unreachable(exc) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _unreachable(exc) from exc
    return changed


def scale_back(kubeconfig: str, namespace: str, *, label_selector: str = "") -> list[str]:
    """Undo :func:`scale_to_zero`: the replicas each stopped workload had, Jobs and CronJobs resumed;
    the annotation removed. Objects it did not stop are not touched."""
    restored: list[str] = []
    with api_client(kubeconfig) as api:
        apps, batch = k8s.AppsV1Api(api), k8s.BatchV1Api(api)
        try:
            for kind, item, patch, suspendable in _scalables(apps, batch, namespace, label_selector):
                name = item.metadata.name
                before = (item.metadata.annotations or {}).get(STOPPED_ANNOTATION)
                if before is None:
                    continue
                body: dict = {"metadata": {"annotations": {STOPPED_ANNOTATION: None}}}
                if suspendable:
                    body["spec"] = {"suspend": False}
                    note = f"{kind}/{name} resumed"
                else:
                    try:
                        replicas = min(max(int(before), 0), MAX_RESTORED_REPLICAS)
                    except ValueError:
                        replicas = 1
                    body["spec"] = {"replicas": replicas}
                    note = f"{kind}/{name} 0→{replicas}"
                _call(kind, name, patch, name, namespace, body)
                restored.append(note)
        except ApiException as exc:
            raise _unreachable(exc) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _unreachable(exc) from exc
    return restored


def running_pods(kubeconfig: str, namespace: str, *, label_selector: str = "") -> list[str]:
    """Names of the namespace's pods (matching ``label_selector``) that are not finished: pending,
    running, or being deleted."""
    with api_client(kubeconfig) as api:
        try:
            pods = k8s.CoreV1Api(api).list_namespaced_pod(
                namespace, label_selector=label_selector, _request_timeout=TIMEOUT
            )
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise _unreachable(exc) from exc
    return sorted(
        pod.metadata.name for pod in pods.items if not (pod.status and pod.status.phase in _TERMINAL)
    )


def wait_pods_gone(
    kubeconfig: str, namespace: str, *, label_selector: str = "", timeout: float = 120, poll: float = 0.5
) -> None:
    """Poll until no unfinished pod is left; ``TimeoutError`` naming them after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        left = running_pods(kubeconfig, namespace, label_selector=label_selector)
        if not left:
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"{len(left)} pod(s) still running in namespace {namespace} after {timeout:g}s: "
                + ", ".join(left[:10])
            )
        time.sleep(poll)
