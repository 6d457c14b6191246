"""Small helpers for tests that talk to a localkube (or any) cluster."""

from __future__ import annotations

import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.wait import wait_for


def unique_name(prefix: str) -> str:
    """A DNS-1123 name unlikely to collide with other tests (or earlier runs on a reused cluster)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_namespace(api_client: Any, name: str, labels: dict[str, str] | None = None) -> Any:
    """Create a namespace and wait until its ``default`` ServiceAccount exists.

    Pods are only admitted once the service-account controller has created that account, so
    tests that create pods right away must wait for it.
    """
    from kubernetes import client

    core = client.CoreV1Api(api_client)
    namespace = core.create_namespace({"metadata": {"name": name, "labels": labels or {}}})
    wait_for(
        lambda: core.list_namespaced_service_account(name, field_selector="metadata.name=default").items,
        what=f"default ServiceAccount in {name}",
    )
    return namespace


def bearer_token_client(kubeconfig_path: str, token: str) -> Any:
    """An ``ApiClient`` for the kubeconfig's server and CA, authenticated only by ``token``."""
    from kubernetes import client, config

    configuration = client.Configuration()
    config.load_kube_config(config_file=kubeconfig_path, client_configuration=configuration)
    configuration.cert_file = None
    configuration.key_file = None
    configuration.username = None
    configuration.password = None
    configuration.api_key = {"authorization": f"Bearer {token}"}
    return client.ApiClient(configuration)


class PodPortServer:
    """A loopback HTTP server on a cluster's ``port_forward_target``: what ``kubectl port-forward`` to any
    port of any simulated pod reaches while it runs.  ``GET`` answers ``body``; ``requests`` counts them."""

    def __init__(self, address: tuple[str, int], body: bytes) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(owner.body)))
                self.end_headers()
                self.wfile.write(owner.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.body = body
        self.requests = 0
        self._server = ThreadingHTTPServer(address, Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="pod-port")

    def __enter__(self) -> PodPortServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def pod_port_server(cluster: Any, body: bytes) -> PodPortServer:
    """``with pod_port_server(kube_cluster, b"hello") as server:`` port-forwards reach ``server``.

    One at a time per cluster (the target is one port): tests that port-forward do it inside this block.
    """
    return PodPortServer(cluster.port_forward_target, body)
