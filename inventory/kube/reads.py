"""Reads: nodes (and their labels), readiness of a namespace's workloads, fields and Secret keys of
objects, events, and what the API server says about itself (whoami, version, RuntimeClasses)."""

import base64
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic.exceptions import ResourceNotFoundError, ResourceNotUniqueError
from kubernetes.utils import parse_quantity

from inventory.kube.clients import TIMEOUT, KubeUnreachable, _dynamic, _resource, _unreachable, api_client

GFD = "nvidia.com/"


@dataclass(frozen=True)
class NodeFacts:
    name: str
    labels: dict[str, str]
    gpu_product: str
    gpu_count: int
    gpu_memory_mib: int
    mig_capable: bool
    mig_strategy: str
    mig_config: str
    mig_config_state: str
    allocatable_cpu_millis: int
    allocatable_memory_bytes: int
    allocatable_gpus: int
    allocatable_mig: dict[str, int] = field(default_factory=dict)
    ready: bool = False
    schedulable: bool = False


def _int(value, default: int = 0) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return default


def node_facts(node) -> NodeFacts:
    """Read one ``V1Node`` (GPU Feature Discovery labels and allocatable resources)."""
    labels = dict(node.metadata.labels or {})
    allocatable = dict(node.status.allocatable or {}) if node.status else {}
    mig = {
        key.removeprefix(f"{GFD}mig-"): int(parse_quantity(value))
        for key, value in allocatable.items()
        if key.startswith(f"{GFD}mig-")
    }
    conditions = {c.type: c.status for c in (node.status.conditions or [])} if node.status else {}
    ready = conditions.get("Ready") == "True"
    return NodeFacts(
        name=node.metadata.name,
        labels=labels,
        gpu_product=labels.get(f"{GFD}gpu.product", ""),
        gpu_count=_int(labels.get(f"{GFD}gpu.count")),
        gpu_memory_mib=_int(labels.get(f"{GFD}gpu.memory")),
        mig_capable=labels.get(f"{GFD}mig.capable", "false").lower() == "true",
        mig_strategy=labels.get(f"{GFD}mig.strategy", ""),
        mig_config=labels.get(f"{GFD}mig.config", ""),
        mig_config_state=labels.get(f"{GFD}mig.config.state", ""),
        allocatable_cpu_millis=int(parse_quantity(allocatable.get("cpu", "0")) * 1000),
        allocatable_memory_bytes=int(parse_quantity(allocatable.get("memory", "0"))),
        allocatable_gpus=int(parse_quantity(allocatable.get(f"{GFD}gpu", "0"))),
        allocatable_mig=mig,
        ready=ready,
        schedulable=ready and not (node.spec and node.spec.unschedulable),
    )


def list_nodes(kubeconfig: str, *, label_selector: str = "") -> list[NodeFacts]:
    with api_client(kubeconfig) as api:
        try:
            nodes = k8s.CoreV1Api(api).list_node(label_selector=label_selector, _request_timeout=TIMEOUT)
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise _unreachable(exc) from exc
    return [node_facts(node) for node in nodes.items]


def label_nodes(kubeconfig: str, names: list[str], labels: dict[str, str]) -> None:
    """Merge-patch labels onto nodes."""
    with api_client(kubeconfig) as api:
        core = k8s.CoreV1Api(api)
        try:
            for name in names:
                core.patch_node(name, {"metadata": {"labels": labels}}, _request_timeout=TIMEOUT)
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise _unreachable(exc) from exc


def _shorten(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _pod_problem(pod) -> str:
    """Why a pod is not ready, from its conditions and container states (empty when unknown)."""
    status = pod.status
    if status is None:
        return ""
    for condition in status.conditions or []:
        if condition.type == "PodScheduled" and condition.status == "False":
            return _shorten(f"{condition.reason}: {condition.message or ''}".rstrip(": "))
    for container in [*(status.init_container_statuses or []), *(status.container_statuses or [])]:
        waiting = container.state.waiting if container.state else None
        if waiting and waiting.reason:
            return _shorten(f"{container.name}: {waiting.reason} {waiting.message or ''}".rstrip())
    return ""


#: ``status.state`` values of custom resources that count as ready (KubeRay's RayCluster says
#: ``ready``; a suspended one is as ready as it is meant to be).
_READY_STATES = {"ready", "running", "suspended"}


def custom_resource_note(obj: dict) -> tuple[bool, str]:
    """Whether one custom object is ready, as its operator reports it, and a note saying so.

    A ``Ready`` condition decides when there is one (KServe, KubeRay's RayService and most
    operators); otherwise ``status.state`` (KubeRay's RayCluster). No status yet: not ready (the
    operator has not seen it, or is not installed)."""
    status = obj.get("status") or {}
    label = f"{obj.get('kind')} {obj.get('metadata', {}).get('name')}"
    conditions = {c.get("type"): c for c in status.get("conditions") or [] if isinstance(c, dict)}
    if "Ready" in conditions:
        condition = conditions["Ready"]
        if condition.get("status") == "True":
            return True, f"{label}: Ready"
        why = ": ".join(str(x) for x in (condition.get("reason"), condition.get("message")) if x)
        return False, f"{label}: not Ready" + (f" ({_shorten(why)})" if why else "")
    state = status.get("state")
    if isinstance(state, str) and state:
        return state.lower() in _READY_STATES, f"{label}: {state}"
    return False, f"{label}: no status from its operator yet"


_PATH_TOKEN = re.compile(r"""\.?([^.\[\]]+)|\[(\d+)\]|\[(["'])(.*?)\3\]""")


def _path_steps(path: str) -> list[str | int]:
    steps: list[str | int] = []
    position = 0
    while position < len(path):
        match = _PATH_TOKEN.match(path, position)
        if not match or match.end() == position:
            raise ValueError(f"Cannot read the path {path!r} at position {position}.")
        key, index, _quote, quoted = match.groups()
        steps.append(int(index) if index is not None else key if key is not None else quoted)
        position = match.end()
    return steps


def read_field(
    kubeconfig: str, *, api_version: str, kind: str, name: str, namespace: str | None, path: str
) -> Any:
    """A field of an object by dotted path (``spec.rules[0].host``, ``metadata.labels["a.b/c"]``).

    ``None`` when the object, the kind or the field does not exist.
    """
    _path_steps(path)  # a malformed path fails before any request
    with api_client(kubeconfig) as api:
        try:
            dynamic = _dynamic(api)
            try:
                resource = _resource(dynamic, api_version, kind)
            except (ResourceNotFoundError, ResourceNotUniqueError):
                return None
            try:
                value: Any = resource.get(
                    name=name, namespace=namespace if resource.namespaced else None
                ).to_dict()
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise _unreachable(exc) from exc
    return field_at(value, path)


def field_at(obj: Any, path: str) -> Any:
    """The field at ``path`` (as :func:`read_field` takes it) of an object already read; None if absent."""
    value = obj
    for step in _path_steps(path):
        if isinstance(step, int):
            if not isinstance(value, list) or not -len(value) <= step < len(value):
                return None
            value = value[step]
        else:
            if not isinstance(value, dict) or step not in value:
                return None
            value = value[step]
    return value


def read_secret_key(kubeconfig: str, *, namespace: str, name: str, key: str) -> str | None:
    """One value of a Secret, base64-decoded (UTF-8); ``None`` when the Secret or the key is missing."""
    with api_client(kubeconfig) as api:
        try:
            secret = k8s.CoreV1Api(api).read_namespaced_secret(name, namespace, _request_timeout=TIMEOUT)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise _unreachable(exc) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _unreachable(exc) from exc
    value = (secret.data or {}).get(key)
    return None if value is None else base64.b64decode(value).decode()


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def events(kubeconfig: str, namespace: str, *, limit: int = 50) -> list[dict]:
    """The namespace's most recent events, oldest first.

    Each as ``{"time", "type", "reason", "object", "message", "count"}``; ``time`` is an aware
    datetime (the last occurrence), ``object`` is ``Kind/name``.
    """
    with api_client(kubeconfig) as api:
        try:
            items = k8s.CoreV1Api(api).list_namespaced_event(namespace, _request_timeout=TIMEOUT).items
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise _unreachable(exc) from exc
    rows = []
    for event in items:
        series_time = event.series.last_observed_time if event.series else None
        when = (
            series_time
            or event.last_timestamp
            or event.event_time
            or event.first_timestamp
            or event.metadata.creation_timestamp
            or _EPOCH
        )
        involved = event.involved_object
        rows.append(
            {
                "time": when,
                "type": event.type or "",
                "reason": event.reason or "",
                "object": f"{involved.kind}/{involved.name}" if involved else "",
                "message": (event.message or "").strip(),
                "count": (event.series.count if event.series else event.count) or 1,
            }
        )
    rows.sort(key=lambda row: row["time"])
    return rows[-limit:] if limit > 0 else []


def list_service_accounts(kubeconfig: str, namespace: str, *, label_selector: str) -> list[dict]:
    """The namespace's ServiceAccounts matching ``label_selector``, as dicts (API errors propagate)."""
    with api_client(kubeconfig) as api:
        accounts = k8s.CoreV1Api(api).list_namespaced_service_account(
            namespace, label_selector=label_selector
        )
        return [api.sanitize_for_serialization(a) for a in accounts.items]


def list_secret_names(kubeconfig: str, namespace: str, *, label_selector: str) -> list[str]:
    """The names of the namespace's Secrets matching ``label_selector`` (their data is never returned)."""
    with api_client(kubeconfig) as api:
        try:
            found = k8s.CoreV1Api(api).list_namespaced_secret(
                namespace, label_selector=label_selector, _request_timeout=TIMEOUT
            )
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise _unreachable(exc) from exc
    return sorted(item.metadata.name for item in found.items)


def namespace_exists(kubeconfig: str, name: str) -> bool:
    """Whether the namespace exists (a Terminating namespace still does)."""
    with api_client(kubeconfig) as api:
        try:
            k8s.CoreV1Api(api).read_namespace(name, _request_timeout=TIMEOUT)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise _unreachable(exc) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _unreachable(exc) from exc
    return True


def whoami(kubeconfig: str) -> str:
    """The username the API server sees for this kubeconfig (SelfSubjectReview, Kubernetes 1.28+)."""
    with api_client(kubeconfig) as api:
        try:
            review = k8s.AuthenticationV1Api(api).create_self_subject_review(
                {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
                _request_timeout=TIMEOUT,
            )
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise _unreachable(exc) from exc
    user = review.status.user_info if review.status else None
    if not user or not user.username:
        raise KubeUnreachable("The API server did not say who we are (SelfSubjectReview).")
    return user.username


def can_i(kubeconfig: str, *, verb: str, resource: str, group: str = "", namespace: str = "") -> bool:
    """Whether this kubeconfig's identity may ``verb`` ``resource`` (in every namespace when
    ``namespace`` is empty): the API server's own answer (SelfSubjectAccessReview)."""
    attributes = {"verb": verb, "resource": resource, "group": group}
    if namespace:
        attributes["namespace"] = namespace
    with api_client(kubeconfig) as api:
        try:
            review = k8s.AuthorizationV1Api(api).create_self_subject_access_review(
                {
                    "apiVersion": "authorization.k8s.io/v1",
                    "kind": "SelfSubjectAccessReview",
                    "spec": {"resourceAttributes": attributes},
                },
                _request_timeout=TIMEOUT,
            )
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise _unreachable(exc) from exc
    return bool(review.status and review.status.allowed)


def server_version(kubeconfig: str) -> str:
    """The API server's git version (``v1.37.2``)."""
    with api_client(kubeconfig) as api:
        try:
            return k8s.VersionApi(api).get_code(_request_timeout=TIMEOUT).git_version
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise _unreachable(exc) from exc


def runtime_class(kubeconfig: str, name: str) -> dict | None:
    """A RuntimeClass as a dict (``handler``, ``overhead``, ``scheduling``), or None when absent."""
    with api_client(kubeconfig) as api:
        try:
            found = k8s.NodeV1Api(api).read_runtime_class(name, _request_timeout=TIMEOUT)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise _unreachable(exc) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _unreachable(exc) from exc
    return api.sanitize_for_serialization(found)
