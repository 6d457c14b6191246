"""The proxy's connections to the clusters' API servers: one aiohttp session per cluster credential.

The session authenticates as the platform (the cluster's registered kubeconfig: its CA, its client
certificate or token) and every request it makes impersonates the user's per-instance ServiceAccount,
so RBAC in the cluster decides what the user may do and no cluster credential ever leaves the platform.
Connections go through the outbound-address policy (:class:`PolicyResolver`: resolved and checked at
connect time, like every other connection the platform makes); TLS verifies the server's name.
"""

import asyncio
import base64
import os
import socket
import ssl
import tempfile
import weakref
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from instances.kubeproxy.db import in_thread
from paas import outbound

SERVER_PURPOSE = "cluster server"
CONNECT_TIMEOUT = 5.0


# What every session to an API server is opened with (a stream's own session too: streams.py): no
# overall timeout (watches, logs -f), bytes passed as they come, no environment proxy (the policy
# decides where we connect), and no header of aiohttp's own beside the client's.
SESSION_OPTIONS = {
    "timeout": aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT, sock_connect=CONNECT_TIMEOUT),
    "auto_decompress": False,
    "trust_env": False,
    "skip_auto_headers": ("User-Agent", "Accept-Encoding", "Content-Type"),
}


class UpstreamRefused(Exception):
    """The cluster's address or kubeconfig may not be used now (said to the client as a 502)."""


class PolicyResolver(AbstractResolver):
    """aiohttp's resolver under :mod:`paas.outbound`: every address of the name is checked, and the
    connection is made to a checked address (never resolving again)."""

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[ResolveResult]:
        reason, addresses = await asyncio.get_running_loop().run_in_executor(
            None, outbound.host_refusal, host, port
        )
        if reason:
            raise OSError(f"The {SERVER_PURPOSE} address is refused: {reason}.")
        return [
            {
                "hostname": host,
                "host": str(ip),
                "port": port,
                "family": socket.AF_INET6 if ip.version == 6 else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for ip in addresses
        ]

    async def close(self) -> None:
        return None


@dataclass
class Upstream:
    """One cluster credential's session: ``base`` is the API server's URL (no trailing slash)."""

    key: tuple
    base: str
    session: aiohttp.ClientSession
    server_hostname: str | None
    auth_headers: dict

    def url(self, path: str, query: str) -> str:
        return f"{self.base}{path}" + (f"?{query}" if query else "")


def _ssl_context(cluster: dict, user: dict) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca = cluster.get("certificate-authority-data")
    if ca:
        context = ssl.create_default_context(cadata=base64.b64decode(ca).decode())
    cert, key = user.get("client-certificate-data"), user.get("client-key-data")
    if cert and key:
        # ssl loads a client certificate from files only: written to a private directory and removed
        # at once (the key never stays on disk).
        with tempfile.TemporaryDirectory(prefix="paas-kubeproxy-") as tmp:
            os.chmod(tmp, 0o700)
            cert_path, key_path = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
            for path, data in ((cert_path, cert), (key_path, key)):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as handle:
                    handle.write(base64.b64decode(data))
            context.load_cert_chain(cert_path, key_path)
    return context


def build(key: tuple, kubeconfig: str) -> Upstream:
    """A session for the cluster's kubeconfig (checked by the inventory's kubeconfig policy first)."""
    from inventory import kube, kubeconfig_policy

    try:
        data = kube.parse_kubeconfig(kubeconfig)
        reduced = kubeconfig_policy.current_only(data)
    except (kube.KubeconfigInvalid, kubeconfig_policy.KubeconfigRefused) as exc:
        raise UpstreamRefused(f"The cluster's kubeconfig cannot be used: {exc}") from exc
    cluster, user = reduced["clusters"][0]["cluster"], reduced["users"][0]["user"]
    server = str(cluster["server"]).rstrip("/")
    if not server.startswith("https://"):
        raise UpstreamRefused("The cluster's server is not an https address.")
    headers = {}
    if user.get("token"):
        headers["Authorization"] = f"Bearer {user['token']}"
    connector = aiohttp.TCPConnector(
        resolver=PolicyResolver(),
        limit=256,
        limit_per_host=256,
        ttl_dns_cache=None,
        use_dns_cache=False,
        ssl=_ssl_context(cluster, user),
    )
    session = aiohttp.ClientSession(connector=connector, **SESSION_OPTIONS)
    return Upstream(
        key=key,
        base=server,
        session=session,
        server_hostname=cluster.get("tls-server-name") or None,
        auth_headers=headers,
    )


# Per event loop (aiohttp sessions belong to the loop that made them): cluster id -> its session.
_by_loop: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[asyncio.Lock, dict[int, Upstream]]]" = (
    weakref.WeakKeyDictionary()
)


def _loop_state() -> tuple[asyncio.Lock, dict[int, Upstream]]:
    loop = asyncio.get_running_loop()
    state = _by_loop.get(loop)
    if state is None:
        state = _by_loop[loop] = (asyncio.Lock(), {})
    return state


def _cluster_kubeconfig(cluster_id: int) -> str:
    from inventory.models import Cluster

    return Cluster.objects.only("kubeconfig").get(pk=cluster_id).kubeconfig.reveal()


async def for_cluster(cluster_id: int, cluster_key: str) -> Upstream:
    """The session for the cluster's current kubeconfig (``cluster_key``: its digest, from the grant);
    a changed kubeconfig gets a new session and the old one is closed."""
    key = (cluster_id, cluster_key)
    lock, upstreams = _loop_state()
    current = upstreams.get(cluster_id)
    if current is not None and current.key == key:
        return current
    async with lock:
        current = upstreams.get(cluster_id)
        if current is not None and current.key == key:
            return current
        kubeconfig = await in_thread(_cluster_kubeconfig)(cluster_id)
        upstream = build(key, kubeconfig)
        upstreams[cluster_id] = upstream
        if current is not None:
            await current.session.close()
        return upstream


async def close_all() -> None:
    """Close this loop's sessions (the ASGI server's shutdown)."""
    _lock, upstreams = _loop_state()
    for upstream in list(upstreams.values()):
        await upstream.session.close()
    upstreams.clear()
