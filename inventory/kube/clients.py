"""Kubeconfigs and API clients: parsing and checking a kubeconfig, a client under the outbound
policy, reachability (:func:`probe`), and kubeconfigs built for a token."""

import hashlib
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import urllib3
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient

from inventory import kubeconfig_policy
from paas import outbound, yamlsafe

TIMEOUT = (3, 10)  # connect, read (seconds)


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


class Session:
    """One client (and one discovery) for several calls in a row: pass it wherever a function of this
    package takes a kubeconfig. ``with kube.Session(kubeconfig) as session: ...``.

    Each function otherwise parses the kubeconfig, checks it, connects and discovers the API afresh,
    which is right for the occasional call and dear for a short sequence whose latency matters (a
    warm pool's hand-over: a dozen writes over the client's pooled connections, from several threads:
    the client and its pool are thread-safe). The checks of :func:`api_client` run once, when the
    session opens; it lives only as long as the ``with`` block. Its discovery is kept for the next
    sessions of the process (:func:`_discovery_file`)."""

    def __init__(self, kubeconfig: str, *, maxsize: int | None = None):
        self.api = api_client(kubeconfig, maxsize=maxsize)
        self.api._paas_discovery_file = _discovery_file(self.api)

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.api.close()


class _Borrowed:
    """A session's client lent to one call (``with api_client(session) as api``): not closed after it."""

    def __init__(self, api: k8s.ApiClient):
        self.api = api

    def __enter__(self) -> k8s.ApiClient:
        return self.api

    def __exit__(self, *exc) -> None:
        return None


#: How long a process reuses one :func:`shared_session` of a cluster before it builds a new one (which
#: runs the kubeconfig's credential rules and the outbound check of its server's addresses again).
SHARED_SESSION_TTL = 300
#: Connections a shared session keeps open to its API server: a worker runs several deploys at once,
#: each holding one for its watch while the others apply (urllib3 discards, rather than keeps, any
#: connection past this number, so the next request would pay a new TLS handshake).
SHARED_SESSION_CONNECTIONS = 32
_shared: dict[str, tuple[float, int, "Session"]] = {}
_shared_lock = threading.Lock()


def shared_session(kubeconfig: str) -> Session:
    """The process's :class:`Session` for this kubeconfig: one API client, its pool of kept-alive
    connections and its API discovery, reused by every call of this process (and its threads) that
    talks to the same cluster with the same credentials, for :data:`SHARED_SESSION_TTL` seconds.

    For the hot paths that make many short calls in a row (a deploy: a dozen server-side applies, a
    watch, a few reads); pass it wherever a function of this package takes a kubeconfig, and do not
    close it (no ``with``). Keyed by a digest of the kubeconfig's text, so rotated credentials get a
    session of their own, and by process id, so a forked worker never shares its parent's sockets.
    Every new connection still goes through the outbound check (:func:`api_client`). An expired
    session is dropped from the cache, not closed: a thread may still be using it (its sockets close
    when it is garbage-collected)."""
    key = hashlib.sha256(kubeconfig.encode()).hexdigest()
    now, pid = time.monotonic(), os.getpid()
    with _shared_lock:
        found = _shared.get(key)
        if found is not None and found[0] > now and found[1] == pid:
            return found[2]
    session = Session(kubeconfig, maxsize=SHARED_SESSION_CONNECTIONS)  # the checks run here
    try:
        _dynamic(session.api)  # built once here, not by two threads racing on first use
    except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:  # (discovery: the first request)
        session.api.close()
        raise _unreachable(exc) from exc
    with _shared_lock:
        found = _shared.get(key)
        if found is not None and found[0] > now and found[1] == pid:
            return found[2]  # another thread made one meanwhile: one session per cluster
        for stale in [k for k, (expires, owner, _) in _shared.items() if expires <= now or owner != pid]:
            del _shared[stale]  # expired, or a rotated kubeconfig's: not kept for ever
        _shared[key] = (now + SHARED_SESSION_TTL, pid, session)
    return session


def shared_sessions_clear() -> None:
    """Forget every shared session of this process (tests that change the outbound policy)."""
    with _shared_lock:
        _shared.clear()


def api_client(kubeconfig: "str | Session", *, maxsize: int | None = None) -> k8s.ApiClient:
    """A client for the kubeconfig's current context, under the outbound-address policy (or the open
    client of a :class:`Session`, which stays open after the call).

    Checked again here (each client): the kubeconfig's credential rules and the server's addresses as
    they resolve now (:mod:`inventory.kubeconfig_policy`). Every connection then goes through
    :func:`paas.outbound.checked_pool_manager`: resolved, checked and made to the checked address (TLS
    still verifies the server's name), redirects never followed, no environment proxy.
    """
    if isinstance(kubeconfig, Session):
        return _Borrowed(kubeconfig.api)  # type: ignore[return-value]  (used as a context manager)
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
    pool_kw = dict(unchecked.connection_pool_kw)
    if maxsize is not None:
        pool_kw["maxsize"] = maxsize
    api.rest_client.pool_manager = outbound.checked_pool_manager(
        purpose=kubeconfig_policy.SERVER_PURPOSE, **pool_kw
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


def _dynamic(api: k8s.ApiClient) -> DynamicClient:
    """A DynamicClient whose requests (discovery included) all have :data:`TIMEOUT`.

    Discovery stays in memory for this client: the cache path cannot exist (a file under
    /dev/null), so nothing is shared through the temporary directory between processes or clusters
    (the client ignores failures to write it).
    """
    cached = getattr(api, "_paas_dynamic", None)
    if cached is not None:  # a session's client: discovered once
        return cached
    call_api = api.call_api

    def call_with_timeout(*args, _request_timeout=None, **kwargs):
        return call_api(*args, _request_timeout=_request_timeout or TIMEOUT, **kwargs)

    api.call_api = call_with_timeout
    cache_file = getattr(api, "_paas_discovery_file", None) or os.path.join(os.devnull, "no-discovery-cache")
    api._paas_dynamic = DynamicClient(api, cache_file=cache_file)
    return api._paas_dynamic


#: How long a session reuses the discovery an earlier session of this process made of the same API
#: server (a kind served since is found anyway: the client discovers again when a lookup misses).
DISCOVERY_TTL = 60
_discovery_dir: str | None = None


def _discovery_file(api: k8s.ApiClient) -> str:
    """Where a :class:`Session` keeps the discovery of its API server: a directory private to this
    process (created 0700, never shared with another process or user), one file per server, CA and
    thread;
    a file older than :data:`DISCOVERY_TTL` is removed first, so the session discovers afresh.

    Discovery is half a dozen requests (the server's version, its API groups, then each group version
    used): most of the latency of a short session such as a warm pool's hand-over."""
    global _discovery_dir
    if _discovery_dir is None or not os.path.isdir(_discovery_dir):
        _discovery_dir = tempfile.mkdtemp(prefix="paas-discovery-")
    configuration = api.configuration
    ca = ""
    if configuration.ssl_ca_cert and os.path.exists(configuration.ssl_ca_cert):
        with open(configuration.ssl_ca_cert, "rb") as handle:
            ca = hashlib.sha256(handle.read()).hexdigest()
    key = hashlib.sha256(f"{configuration.host}|{ca}".encode()).hexdigest()[:32]
    # One file per thread as well: the client writes it in place (truncate, then write), so a thread
    # reading it while another writes would read half a file (the run pool deploys in threads).
    path = os.path.join(_discovery_dir, f"{key}-{threading.get_ident()}.json")
    try:
        if time.time() - os.path.getmtime(path) > DISCOVERY_TTL:
            os.remove(path)
    except OSError:
        pass
    return path


def _resource(dynamic: DynamicClient, api_version: str, kind: str):
    prefix = "apis" if "/" in api_version else "api"
    return dynamic.resources.get(prefix=prefix, api_version=api_version, kind=kind)


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
