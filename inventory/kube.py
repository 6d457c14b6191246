"""The Kubernetes client layer: the only module of the platform that imports ``kubernetes``.

Every function takes a kubeconfig (the decrypted text, never logged) and talks to the cluster with
short timeouts. Failures to reach or authenticate raise :class:`KubeUnreachable` with a message fit
for the studio; nothing here knows about Django models.
"""

import base64
import copy
import json
import os
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import urllib3
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ResourceNotFoundError, ResourceNotUniqueError
from kubernetes.utils import parse_quantity

from inventory import kubeconfig_policy
from paas import outbound, yamlsafe

TIMEOUT = (3, 10)  # connect, read (seconds)

GFD = "nvidia.com/"


class KubeUnreachable(Exception):
    """The cluster could not be reached or refused our credentials."""


MAX_KUBECONFIG_CHARS = 1024 * 1024  # a real kubeconfig is a few KiB; embedded certificates included


class KubeconfigInvalid(ValueError):
    """The kubeconfig text is not a usable kubeconfig."""


def parse_kubeconfig(text: str) -> dict:
    """Validate a kubeconfig: YAML, a current context with a cluster (server) and a user."""
    if len(text) > MAX_KUBECONFIG_CHARS:
        raise KubeconfigInvalid(f"The kubeconfig is larger than {MAX_KUBECONFIG_CHARS // 1024} KiB.")
    try:
        data = yamlsafe.safe_load(text)  # bounded nesting, no aliases: a crafted file is an error
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None)
        ours = problem and ("nested more than" in problem or "aliases" in problem)  # our limits, said plainly
        detail = f" ({problem})" if ours else ""
        raise KubeconfigInvalid(f"Not valid YAML: {exc.__class__.__name__}{detail}.") from exc
    if not isinstance(data, dict) or data.get("kind", "Config") != "Config":
        raise KubeconfigInvalid("Not a kubeconfig (expected kind: Config).")
    for kind in ("contexts", "clusters", "users"):
        names = [e.get("name") for e in data.get(kind) or [] if isinstance(e, dict)]
        if len(names) != len(set(names)):  # the client would use the first, our checks the last
            raise KubeconfigInvalid(f"The kubeconfig has two {kind} with the same name.")
    contexts = {
        c.get("name"): c.get("context", {}) for c in data.get("contexts") or [] if isinstance(c, dict)
    }
    current = data.get("current-context") or (next(iter(contexts)) if len(contexts) == 1 else None)
    if not current or current not in contexts:
        raise KubeconfigInvalid("The kubeconfig has no usable current-context.")
    context = contexts[current]
    clusters = {
        c.get("name"): c.get("cluster", {}) for c in data.get("clusters") or [] if isinstance(c, dict)
    }
    users = {u.get("name"): u.get("user", {}) for u in data.get("users") or [] if isinstance(u, dict)}
    cluster = clusters.get(context.get("cluster"))
    if not cluster or not str(cluster.get("server", "")).startswith("https://"):
        raise KubeconfigInvalid("The current context's cluster needs an https:// server.")
    if context.get("user") not in users:
        raise KubeconfigInvalid("The current context's user is missing.")
    data["current-context"] = current
    return data


def kubeconfig_server(text: str) -> str:
    data = parse_kubeconfig(text)
    contexts = {c["name"]: c["context"] for c in data["contexts"]}
    clusters = {c["name"]: c["cluster"] for c in data["clusters"]}
    return clusters[contexts[data["current-context"]]["cluster"]]["server"]


def kubeconfig_from_token(*, server: str, ca_data_b64: str, token: str, name: str = "cluster") -> str:
    """Build a kubeconfig for a server, its CA (base64 PEM) and a bearer token."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": name, "cluster": {"server": server, "certificate-authority-data": ca_data_b64}}
        ],
        "users": [{"name": f"{name}-user", "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": f"{name}-user"}}],
        "current-context": name,
    }
    return yaml.safe_dump(config)


def api_client(kubeconfig: str) -> k8s.ApiClient:
    """A client for the kubeconfig's current context, under the outbound-address policy.

    Checked again here (each client): the kubeconfig's credential rules and the server's addresses as
    they resolve now (:mod:`inventory.kubeconfig_policy`). Every connection then goes through
    :func:`paas.outbound.checked_pool_manager`: resolved, checked and made to the checked address (TLS
    still verifies the server's name), redirects never followed, no environment proxy.
    """
    data = parse_kubeconfig(kubeconfig)
    refusal = kubeconfig_policy.connect_refusal(data)
    if refusal:
        raise KubeUnreachable(f"Not connecting: {refusal}")
    api = k8s_config.new_client_from_config_dict(kubeconfig_policy.current_only(data))
    api.configuration.retries = urllib3.Retry(
        total=1, connect=1, read=0, redirect=0, raise_on_redirect=False, backoff_factor=0.2
    )
    # The client built its pool manager already (from the kubeconfig's TLS settings, and any proxy of
    # the environment): replaced by a checked one with the same TLS settings and retries (redirect=0).
    unchecked = api.rest_client.pool_manager
    api.rest_client.pool_manager = outbound.checked_pool_manager(
        purpose=kubeconfig_policy.SERVER_PURPOSE, **unchecked.connection_pool_kw
    )
    unchecked.clear()
    return api


def _unreachable(exc: Exception) -> KubeUnreachable:
    if isinstance(exc, ApiException):
        if exc.status in (401, 403):
            return KubeUnreachable(f"The cluster refused the credentials (HTTP {exc.status}).")
        return KubeUnreachable(f"The API server answered HTTP {exc.status} ({exc.reason}).")
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    if isinstance(exc, outbound.OutboundConnectionRefused):
        return KubeUnreachable(f"Not connecting: {exc.reason}")
    return KubeUnreachable(f"Cannot reach the API server: {exc.__class__.__name__}.")


@dataclass(frozen=True)
class ProbeResult:
    version: str
    healthy: bool
    health_detail: str
    runtime_classes: tuple[str, ...]


def probe(kubeconfig: str) -> ProbeResult:
    """Reachability and control-plane health: /version, /readyz, RuntimeClasses."""
    with api_client(kubeconfig) as api:
        try:
            version = k8s.VersionApi(api).get_code(_request_timeout=TIMEOUT).git_version
            status, ready_text = _get_raw(api, "/readyz")
            runtime = k8s.NodeV1Api(api).list_runtime_class(_request_timeout=TIMEOUT)
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise _unreachable(exc) from exc
    names = tuple(sorted(rc.metadata.name for rc in runtime.items))
    return ProbeResult(
        version=version, healthy=status == 200, health_detail=ready_text[:500], runtime_classes=names
    )


def _get_raw(api: k8s.ApiClient, path: str) -> tuple[int, str]:
    """GET a non-resource path (e.g. /readyz) with the client's own authentication."""
    method, url, headers, body, post_params = api.param_serialize(
        "GET", path, header_params={"Accept": "text/plain"}, auth_settings=["BearerToken"]
    )
    try:
        response = api.call_api(
            method, url, header_params=headers, body=body, post_params=post_params, _request_timeout=TIMEOUT
        )
    except ApiException as exc:
        if exc.status and exc.status >= 500:
            return exc.status, exc.body or ""
        raise
    return response.status, (response.read() or b"").decode(errors="replace")


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


# ------------------------------------------------------------------------------ deploy primitives
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


def _dynamic(api: k8s.ApiClient) -> DynamicClient:
    """A DynamicClient whose requests (discovery included) all have :data:`TIMEOUT`.

    Discovery stays in memory for this client: the cache path cannot exist (a file under
    /dev/null), so nothing is shared through the temporary directory between processes or clusters
    (the client ignores failures to write it).
    """
    call_api = api.call_api

    def call_with_timeout(*args, _request_timeout=None, **kwargs):
        return call_api(*args, _request_timeout=_request_timeout or TIMEOUT, **kwargs)

    api.call_api = call_with_timeout
    return DynamicClient(api, cache_file=os.path.join(os.devnull, "no-discovery-cache"))


def _resource(dynamic: DynamicClient, api_version: str, kind: str):
    prefix = "apis" if "/" in api_version else "api"
    return dynamic.resources.get(prefix=prefix, api_version=api_version, kind=kind)


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
                if replace:
                    result = resource.replace(
                        body=body, namespace=body["metadata"].get("namespace"), field_manager=field_manager
                    )
                else:
                    result = resource.server_side_apply(
                        body=body,
                        name=body["metadata"]["name"],
                        namespace=body["metadata"].get("namespace"),
                        field_manager=field_manager,
                        force_conflicts=True,
                    )
                applied.append(result.to_dict())
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


def delete_objects(kubeconfig: str, objects: list[dict]) -> None:
    """Delete objects where they declare to be (e.g. an instance's cluster-scoped policy binding).

    Gone already (404) is fine; so is a kind the cluster does not serve.
    """
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
                    )
                except ApiException as exc:
                    if exc.status != 404:
                        raise
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


def _ready_notes(core: k8s.CoreV1Api, apps: k8s.AppsV1Api, batch: k8s.BatchV1Api, namespace: str):
    """One readiness pass: (notes about what is ready, notes about what is not)."""
    ready: list[str] = []
    waiting: list[str] = []

    def note(ok: bool, text: str) -> None:
        (ready if ok else waiting).append(text)

    kw = {"_request_timeout": TIMEOUT}
    accounts = core.list_namespaced_service_account(namespace, field_selector="metadata.name=default", **kw)
    note(
        bool(accounts.items),
        "ServiceAccount default: " + ("present" if accounts.items else "not created yet"),
    )
    for quota in core.list_namespaced_resource_quota(namespace, **kw).items:
        hard = dict(quota.spec.hard or {}) if quota.spec else {}
        computed = quota.status is not None and set(hard) <= set(quota.status.hard or {})
        note(
            computed,
            f"ResourceQuota {quota.metadata.name}: " + ("in force" if computed else "not computed yet"),
        )
    for kind, items in (
        ("Deployment", apps.list_namespaced_deployment(namespace, **kw).items),
        ("StatefulSet", apps.list_namespaced_stateful_set(namespace, **kw).items),
    ):
        for item in items:
            status = item.status
            wanted = 1 if item.spec.replicas is None else item.spec.replicas
            ready_count = (status.ready_replicas or 0) if status else 0
            updated = (status.updated_replicas or 0) if status else 0
            observed = bool(status) and (status.observed_generation or 0) >= (item.metadata.generation or 0)
            ok = observed and ready_count == wanted and updated >= wanted
            failure = next(
                (
                    c.message
                    for c in (status.conditions or [] if status else [])
                    if c.type == "ReplicaFailure" and c.status == "True"
                ),
                None,
            )
            detail = f" ({_shorten(failure)})" if failure and not ok else ""
            note(ok, f"{kind} {item.metadata.name}: {ready_count}/{wanted} ready{detail}")
    for item in apps.list_namespaced_daemon_set(namespace, **kw).items:
        wanted = (item.status.desired_number_scheduled or 0) if item.status else 0
        ready_count = (item.status.number_ready or 0) if item.status else 0
        observed = bool(item.status) and (item.status.observed_generation or 0) >= (
            item.metadata.generation or 0
        )
        note(
            observed and ready_count == wanted,
            f"DaemonSet {item.metadata.name}: {ready_count}/{wanted} ready",
        )
    for job in batch.list_namespaced_job(namespace, **kw).items:
        conditions = {c.type: c for c in (job.status.conditions or [])} if job.status else {}
        failed = conditions.get("Failed")
        if failed is not None and failed.status == "True":
            note(False, f"Job {job.metadata.name}: failed ({failed.reason}: {failed.message or ''})".rstrip())
        else:
            complete = "Complete" in conditions and conditions["Complete"].status == "True"
            note(True, f"Job {job.metadata.name}: " + ("complete" if complete else "running"))
    for pod in core.list_namespaced_pod(namespace, **kw).items:
        owners = {ref.kind for ref in (pod.metadata.owner_references or []) if ref.controller}
        phase = pod.status.phase if pod.status else "Unknown"
        if pod.metadata.deletion_timestamp or "Job" in owners:
            continue  # going away, or judged by its Job
        if phase == "Failed" and owners:
            continue  # a leftover (e.g. evicted) its controller replaces; the controller is judged
        conditions = {c.type: c.status for c in (pod.status.conditions or [])} if pod.status else {}
        ok = phase == "Succeeded" or (phase == "Running" and conditions.get("Ready") == "True")
        state = "Ready" if ok and phase == "Running" else "not Ready" if phase == "Running" else ""
        problem = "" if ok else _pod_problem(pod)
        note(ok, f"Pod {pod.metadata.name}: {phase} {state}".rstrip() + (f" ({problem})" if problem else ""))
    for claim in core.list_namespaced_persistent_volume_claim(namespace, **kw).items:
        phase = claim.status.phase if claim.status else "Pending"
        note(
            True,
            f"PersistentVolumeClaim {claim.metadata.name}: {phase}"
            + ("" if phase == "Bound" else " (not waited for)"),
        )
    return ready, waiting


def wait_ready(kubeconfig: str, namespace: str, *, timeout: float = 60, poll: float = 0.5) -> list[str]:
    """Wait until the namespace's workloads are ready; return readiness notes.

    Ready means: the ``default`` ServiceAccount exists and every ResourceQuota is computed (pods are
    admitted only then); every Deployment and StatefulSet has ``replicas`` ready and up to date,
    every DaemonSet its desired pods ready; no Job has failed; every other pod is Running and Ready
    or Succeeded. PersistentVolumeClaims do not block (without a provisioner they stay Pending).
    Raises ``TimeoutError`` naming what is not ready after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    with api_client(kubeconfig) as api:
        core, apps, batch = k8s.CoreV1Api(api), k8s.AppsV1Api(api), k8s.BatchV1Api(api)
        while True:
            try:
                ready, waiting = _ready_notes(core, apps, batch, namespace)
            except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
                raise _unreachable(exc) from exc
            if not waiting:
                return ready
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"Not ready in namespace {namespace} after {timeout:g}s: " + "; ".join(waiting)
                )
            time.sleep(poll)


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
    steps = _path_steps(path)
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
    for step in steps:
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


MIN_TOKEN_SECONDS = 600  # the API server's lower bound for TokenRequest expirationSeconds


def issue_token(
    kubeconfig: str, *, namespace: str, service_account: str, seconds: int = 3600, audience: str | None = None
) -> tuple[str, datetime]:
    """A bound token for a ServiceAccount (TokenRequest API): the token and when it expires.

    Without ``audience`` the token is for the API server itself (what a kubeconfig needs).
    """
    if seconds < MIN_TOKEN_SECONDS:
        raise ValueError(f"A token must live at least {MIN_TOKEN_SECONDS} seconds.")
    spec: dict[str, Any] = {"expirationSeconds": int(seconds)}
    if audience:
        spec["audiences"] = [audience]
    with api_client(kubeconfig) as api:
        try:
            response = k8s.CoreV1Api(api).create_namespaced_service_account_token(
                service_account, namespace, {"spec": spec}, _request_timeout=TIMEOUT
            )
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise _unreachable(exc) from exc
    return response.status.token, response.status.expiration_timestamp


def kubeconfig_for_token(kubeconfig: str, *, token: str, namespace: str, user: str) -> str:
    """A kubeconfig for ``token`` with the same server and CA as ``kubeconfig``, defaulting to ``namespace``.

    Self-contained (a registered kubeconfig embeds its CA; file paths are refused). Nothing of the
    original user's credentials is carried over.
    """
    data = parse_kubeconfig(kubeconfig)
    contexts = {c["name"]: c["context"] for c in data["contexts"]}
    cluster_name = contexts[data["current-context"]]["cluster"]
    source = {c["name"]: c["cluster"] for c in data["clusters"]}[cluster_name]
    cluster: dict[str, Any] = {"server": source["server"]}
    if source.get("certificate-authority-data"):
        cluster["certificate-authority-data"] = source["certificate-authority-data"]
    for key in ("tls-server-name",):  # a CA file, proxy-url or insecure-skip-tls-verify is refused
        if key in source:
            cluster[key] = source[key]
    context_name = f"{user}@{namespace}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster_name, "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {"name": context_name, "context": {"cluster": cluster_name, "user": user, "namespace": namespace}}
        ],
        "current-context": context_name,
        "preferences": {},
    }
    return yaml.safe_dump(config, sort_keys=False)


# ------------------------------------------------------------------------------ guardrails support
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


def server_version(kubeconfig: str) -> str:
    """The API server's git version (``v1.37.2``)."""
    with api_client(kubeconfig) as api:
        try:
            return k8s.VersionApi(api).get_code(_request_timeout=TIMEOUT).git_version
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
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
