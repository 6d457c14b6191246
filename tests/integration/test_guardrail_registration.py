"""A cluster whose API server is too old to enforce the guardrails is refused at registration.

The counterpart is a tiny HTTPS server on 127.0.0.1 answering ``GET /version`` as an old API server
would (a real 1.29 control plane is not something the suite can build); everything of ours is real.
"""

import base64
import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from inventory.models import Cluster
from tests.localkube import pki


def _version_server(tmp_path, git_version: str):
    ca = pki.CertificateAuthority(tmp_path, "old-cluster-ca")
    serving = ca.issue("serving", "old-cluster", ip_addresses=("127.0.0.1",))
    major, minor = git_version.lstrip("v").split(".")[:2]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.split("?")[0].rstrip("/") != "/version":
                self.send_error(404)
                return
            body = json.dumps(
                {
                    "major": major,
                    "minor": minor,
                    "gitVersion": git_version,
                    "gitCommit": "0" * 40,
                    "gitTreeState": "clean",
                    "buildDate": "2024-01-01T00:00:00Z",
                    "goVersion": "go1.22",
                    "compiler": "gc",
                    "platform": "linux/amd64",
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(serving.cert), str(serving.key))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    ca_data = base64.b64encode(ca.pair.cert.read_bytes()).decode()
    return server, f"https://127.0.0.1:{server.server_address[1]}", ca_data


@pytest.fixture
def old_server(tmp_path):
    server, url, ca_data = _version_server(tmp_path, "v1.29.4")
    yield url, ca_data
    server.shutdown()


@pytest.fixture
def new_enough_server(tmp_path):
    server, url, ca_data = _version_server(tmp_path, "v1.30.0")
    yield url, ca_data
    server.shutdown()


def test_a_cluster_older_than_1_30_is_refused_with_a_field_message(world, api, old_server):
    url, ca_data = old_server
    op = api.as_user(world.operator)
    response = op.post(
        "/api/v1/clusters/",
        {"name": "ancient", "server_url": url, "token": "t0k", "ca_data": ca_data},
        format="json",
    )
    assert response.status_code == 400, response.content
    (message,) = response.json()["error"]["fields"]["server"]
    assert "Kubernetes 1.29" in message and "1.30 or later" in message and "upgrade" in message
    assert not Cluster.objects.filter(name="ancient").exists(), "nothing stored"


def test_a_1_30_cluster_is_registered(world, api, new_enough_server):
    url, ca_data = new_enough_server
    response = api.as_user(world.operator).post(
        "/api/v1/clusters/",
        {"name": "recent", "server_url": url, "token": "t0k", "ca_data": ca_data},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["guardrails"] == {}, "installed by the first refresh"
