"""The Kubernetes client layer: the only module of the platform that imports ``kubernetes``.

Every function takes a kubeconfig (the decrypted text, never logged) and talks to the cluster with
short timeouts. Failures to reach or authenticate raise :class:`KubeUnreachable` with a message fit
for the studio; nothing here knows about Django models.
"""

from dataclasses import dataclass, field

import urllib3
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.utils import parse_quantity

TIMEOUT = (3, 10)  # connect, read (seconds)

GFD = "nvidia.com/"


class KubeUnreachable(Exception):
    """The cluster could not be reached or refused our credentials."""


class KubeconfigInvalid(ValueError):
    """The kubeconfig text is not a usable kubeconfig."""


def parse_kubeconfig(text: str) -> dict:
    """Validate a kubeconfig: YAML, a current context with a cluster (server) and a user."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise KubeconfigInvalid(f"Not valid YAML: {exc.__class__.__name__}.") from exc
    if not isinstance(data, dict) or data.get("kind", "Config") != "Config":
        raise KubeconfigInvalid("Not a kubeconfig (expected kind: Config).")
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
    data = parse_kubeconfig(kubeconfig)
    api = k8s_config.new_client_from_config_dict(data)
    api.configuration.retries = urllib3.Retry(total=1, connect=1, read=0, backoff_factor=0.2)
    return api


def _unreachable(exc: Exception) -> KubeUnreachable:
    if isinstance(exc, ApiException):
        if exc.status in (401, 403):
            return KubeUnreachable(f"The cluster refused the credentials (HTTP {exc.status}).")
        return KubeUnreachable(f"The API server answered HTTP {exc.status} ({exc.reason}).")
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
