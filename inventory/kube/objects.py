"""Writes: server-side apply, listing and deleting objects by kind, pruning, deleting namespaces."""

import copy
import json
import re
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ResourceNotFoundError, ResourceNotUniqueError
from kubernetes.utils import parse_quantity

from inventory.kube.clients import TIMEOUT, _dynamic, _resource, _unreachable, api_client

FIELD_MANAGER = "gpu-paas"

_RBAC_DENIED = re.compile(r'forbidden: User ".*" cannot ')


class ApplyError(Exception):
    """The API server refused an object (validation, admission: quota, Pod Security, policies)."""

    def __init__(self, kind: str, name: str, message: str, status: int | None = None) -> None:
        super().__init__(kind, name, message, status)
        self.kind, self.name, self.message, self.status = kind, name, message, status

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}: {self.message}"


def _api_message(exc: ApiException) -> str:
    try:
        message = json.loads(exc.body or "").get("message")
    except (ValueError, AttributeError):
        message = None
    return message or f"HTTP {exc.status} ({exc.reason})"


def _is_auth_failure(exc: ApiException) -> bool:
    """401, or a 403 from RBAC (not from admission such as quota or Pod Security)."""
    return exc.status == 401 or (exc.status == 403 and bool(_RBAC_DENIED.search(_api_message(exc))))


_SERVER_SET_METADATA = ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields")


def _prepare(dynamic: DynamicClient, obj: dict, namespace: str | None) -> tuple[Any, dict]:
    """Resolve the object's resource and the body to apply; refuse what cannot be applied as asked."""
    kind, api_version = obj.get("kind"), obj.get("apiVersion")
    name = (obj.get("metadata") or {}).get("name")
    if not (kind and api_version and name):
        raise ApplyError(kind or "?", name or "?", "an object needs apiVersion, kind and metadata.name")
    try:
        resource = _resource(dynamic, api_version, kind)
    except (ResourceNotFoundError, ResourceNotUniqueError) as exc:
        raise ApplyError(kind, name, f"the cluster does not serve {api_version} {kind}") from exc
    body = copy.deepcopy(obj)
    body.pop("status", None)
    metadata = body["metadata"]
    for key in _SERVER_SET_METADATA:
        metadata.pop(key, None)
    declared = metadata.get("namespace")
    if resource.namespaced:
        if namespace is not None:
            if declared not in (None, namespace):
                raise ApplyError(kind, name, f"declares namespace {declared!r}, not {namespace!r}")
            metadata["namespace"] = namespace
        elif not declared:
            raise ApplyError(kind, name, "a namespaced object needs metadata.namespace (or namespace=)")
    else:
        if namespace is not None:
            # Into a namespace go namespaced objects only: cluster-scoped ones are platform business.
            raise ApplyError(
                kind, name, f"is cluster-scoped and cannot be applied into namespace {namespace}"
            )
        metadata.pop("namespace", None)
    return resource, body


def apply(
    kubeconfig: str,
    objects: list[dict],
    *,
    namespace: str | None = None,
    field_manager: str = FIELD_MANAGER,
    replace: bool = False,
) -> list[dict]:
    """Server-side apply ``objects`` in order (``field_manager``, default :data:`FIELD_MANAGER`,
    conflicts forced). With ``replace`` each object is replaced whole instead (PUT, unconditional):
    fields other managers added are dropped too (drift repair of platform-owned objects).

    With ``namespace``, namespaced objects are applied into it (an object declaring another
    namespace is refused) and cluster-scoped objects are refused; without it, objects are applied
    where they declare (a namespaced object must declare its namespace). Every object is checked
    before the first is sent. Applying the same objects again changes nothing (same resourceVersion).
    Returns the objects as the API server stored them. Raises :class:`ApplyError` when the API
    server refuses an object (4xx: validation, quota, Pod Security, admission policies, a kind it does
    not serve), :class:`KubeUnreachable` on connection and authentication/authorisation failures.
    """
    applied: list[dict] = []
    with api_client(kubeconfig) as api:
        current: dict = {}
        try:
            dynamic = _dynamic(api)
            prepared = []
            for obj in objects:
                current = obj
                prepared.append(_prepare(dynamic, obj, namespace))
            for resource, body in prepared:
                current = body
                # serialize=False: the answer's JSON as it is (a dict), not wrapped field by field into
                # the dynamic client's ResourceInstance and unwrapped again (most of a write's CPU).
                if replace:
                    result = resource.replace(
                        body=body,
                        namespace=body["metadata"].get("namespace"),
                        field_manager=field_manager,
                        serialize=False,
                    )
                else:
                    result = resource.server_side_apply(
                        body=body,
                        name=body["metadata"]["name"],
                        namespace=body["metadata"].get("namespace"),
                        field_manager=field_manager,
                        force_conflicts=True,
                        serialize=False,
                    )
                applied.append(json.loads(result.data))
        except ApiException as exc:
            if _is_auth_failure(exc) or exc.status is None or not 400 <= exc.status < 500:
                raise _unreachable(exc) from exc
            kind, name = current.get("kind") or "?", (current.get("metadata") or {}).get("name") or "?"
            raise ApplyError(kind, name, _api_message(exc), status=exc.status) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _unreachable(exc) from exc
    return applied


def ensure_objects(kubeconfig: str, objects: list[dict], *, field_manager: str = FIELD_MANAGER) -> None:
    """Server-side apply platform-owned objects (e.g. the sandbox admission policy), as :func:`apply`."""
    apply(kubeconfig, objects, field_manager=field_manager)


def quantity(value: Any) -> Any:
    """A Kubernetes quantity (``"1Gi"``, ``"500m"``, ``2``) as a Decimal; anything else unchanged."""
    try:
        return parse_quantity(value)
    except (ValueError, TypeError):
        return value


def _served(dynamic: DynamicClient, kinds):
    """``(apiVersion, kind, resource)`` for each of ``kinds`` the cluster serves (others are skipped)."""
    for api_version, kind in kinds:
        try:
            yield api_version, kind, _resource(dynamic, api_version, kind)
        except (ResourceNotFoundError, ResourceNotUniqueError):
            continue


def list_objects(kubeconfig: str, kinds: list[tuple[str, str]]) -> dict[tuple[str, str, str], dict]:
    """Every object of ``kinds`` (``(apiVersion, kind)``) in the cluster, one list call per kind:
    ``{(kind, namespace or "", name): object}``. A kind the cluster does not serve lists nothing."""
    found: dict[tuple[str, str, str], dict] = {}
    with api_client(kubeconfig) as api:
        try:
            for api_version, kind, resource in _served(_dynamic(api), kinds):
                for item in resource.get().to_dict().get("items") or []:
                    metadata = item.get("metadata") or {}
                    key = (kind, metadata.get("namespace") or "", metadata.get("name") or "")
                    found[key] = {"apiVersion": api_version, "kind": kind, **item}
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise _unreachable(exc) from exc
    return found


def delete_objects(kubeconfig: str, objects: list[dict], *, propagation: str | None = None) -> None:
    """Delete objects where they declare to be (e.g. an instance's cluster-scoped policy binding).

    Gone already (404) is fine; so is a kind the cluster does not serve. ``propagation`` is the
    deletion's propagation policy (``"Foreground"``: the object goes once its dependents, e.g. a
    Deployment's pods, are gone); default the API server's.
    """
    body = {"propagationPolicy": propagation} if propagation else None
    with api_client(kubeconfig) as api:
        try:
            dynamic = _dynamic(api)
            for obj in objects:
                try:
                    resource = _resource(dynamic, obj["apiVersion"], obj["kind"])
                except (ResourceNotFoundError, ResourceNotUniqueError):
                    continue
                metadata = obj["metadata"]
                try:
                    resource.delete(
                        name=metadata["name"],
                        namespace=metadata.get("namespace") if resource.namespaced else None,
                        body=body,
                    )
                except ApiException as exc:
                    if exc.status != 404:
                        raise
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise _unreachable(exc) from exc


def delete_workloads(kubeconfig: str, namespace: str, *, label_selector: str) -> None:
    """Delete the Deployments, ReplicaSets and Pods of ``namespace`` matching ``label_selector`` at once,
    in that order (three collection deletions, no discovery, no wait): the pods go without a grace
    period, so they stop counting against the namespace's quota now instead of when the garbage
    collector reaches them, and no ReplicaSet is left to recreate them. Nothing matching is fine."""
    if not label_selector:
        raise ValueError("a label selector is required (this never deletes a whole namespace's workloads)")
    kw = {"label_selector": label_selector, "_request_timeout": TIMEOUT}
    with api_client(kubeconfig) as api:
        apps, core = k8s.AppsV1Api(api), k8s.CoreV1Api(api)
        try:
            apps.delete_collection_namespaced_deployment(namespace, propagation_policy="Background", **kw)
            apps.delete_collection_namespaced_replica_set(namespace, propagation_policy="Background", **kw)
            core.delete_collection_namespaced_pod(namespace, grace_period_seconds=0, **kw)
        except ApiException as exc:
            if exc.status != 404:
                raise _unreachable(exc) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _unreachable(exc) from exc


def existing(kubeconfig: str, objects: list[dict]) -> list[str]:
    """``Kind/name`` of those of ``objects`` that still exist where they declare to be (one client and
    one discovery for all; a kind the cluster does not serve has none)."""
    found = []
    with api_client(kubeconfig) as api:
        try:
            dynamic = _dynamic(api)
            for obj in objects:
                try:
                    resource = _resource(dynamic, obj["apiVersion"], obj["kind"])
                except (ResourceNotFoundError, ResourceNotUniqueError):
                    continue
                metadata = obj["metadata"]
                try:
                    resource.get(
                        name=metadata["name"],
                        namespace=metadata.get("namespace") if resource.namespaced else None,
                    )
                except ApiException as exc:
                    if exc.status != 404:
                        raise
                    continue
                found.append(f"{obj['kind']}/{metadata['name']}")
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise _unreachable(exc) from exc
    return found


def delete_namespace(kubeconfig: str, name: str) -> None:
    """Start deleting a namespace (foreground propagation); an absent namespace is fine.

    Returns at once: the namespace is Terminating until its contents are gone (poll
    :func:`namespace_exists`). Cluster-scoped objects made for it are deleted with :func:`delete_objects`.
    """
    with api_client(kubeconfig) as api:
        try:
            k8s.CoreV1Api(api).delete_namespace(
                name, propagation_policy="Foreground", _request_timeout=TIMEOUT
            )
        except ApiException as exc:
            if exc.status != 404:
                raise _unreachable(exc) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _unreachable(exc) from exc


def serves(kubeconfig: str, api_version: str, kind: str) -> bool:
    """Whether the API server serves ``kind`` at ``api_version`` (discovery)."""
    with api_client(kubeconfig) as api:
        try:
            _resource(_dynamic(api), api_version, kind)
        except (ResourceNotFoundError, ResourceNotUniqueError):
            return False
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise _unreachable(exc) from exc
    return True


def prune(kubeconfig: str, *, kinds, label_selector: str, keep: set[tuple[str, str]]) -> list[str]:
    """Delete cluster-scoped objects of ``kinds`` ((apiVersion, kind) pairs) matching ``label_selector``
    whose (kind, name) is not in ``keep``. Kinds the cluster does not serve are skipped. Returns
    ``Kind/name`` of what was deleted."""
    deleted: list[str] = []
    with api_client(kubeconfig) as api:
        try:
            for _api_version, kind, resource in _served(_dynamic(api), kinds):
                for item in resource.get(label_selector=label_selector).items:
                    name = item.metadata.name
                    if (kind, name) in keep:
                        continue
                    try:
                        resource.delete(name=name)
                    except ApiException as exc:
                        if exc.status != 404:
                            raise
                    deleted.append(f"{kind}/{name}")
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise _unreachable(exc) from exc
    return deleted
