"""Cluster credentials cannot reach the control plane's host (issue 11, part 4).

Each refusal at registration, through the API and the studio form, with nothing stored; the real
local cluster as the positive control; the same rules again when connecting (a cluster registered
while loopback was allowed, a kubeconfig stored before the rules); redirects not followed; TLS still
verifying the server's name while the connection is pinned to the checked address.
"""

import html
import http.server
import re
import socket
import ssl
import threading
from pathlib import Path

import pytest
import yaml

from inventory import kube, services, tasks
from inventory.models import Cluster
from paas.errors import ValidationFailed
from paas.models import AuditEvent
from tests.localkube.pki import CertificateAuthority


@pytest.fixture
def kubeconfig(kube_cluster) -> str:
    return Path(kube_cluster.kubeconfig_path).read_text()


@pytest.fixture
def strict(settings):
    """The production default: loopback refused (the suite's settings allow it for the local cluster)."""
    settings.PAAS_OUTBOUND_ALLOW_LOOPBACK = False
    settings.PAAS_OUTBOUND_ALLOWED_NETWORKS = []
    settings.PAAS_OUTBOUND_DENY_ALL = False
    return settings


def variant(text: str, *, user=None, cluster=None, server=None) -> str:
    """The kubeconfig with its (only) user and cluster entries changed."""
    data = yaml.safe_load(text)
    if user is not None:
        data["users"][0]["user"] = user(data["users"][0]["user"])
    if cluster is not None:
        data["clusters"][0]["cluster"] = cluster(data["clusters"][0]["cluster"])
    if server is not None:
        data["clusters"][0]["cluster"]["server"] = server(data["clusters"][0]["cluster"]["server"])
    return yaml.safe_dump(data)


def _port(server: str) -> str:
    return server.rsplit(":", 1)[1]


EXEC = {
    "apiVersion": "client.authentication.k8s.io/v1",
    "command": "/bin/sh",
    "args": ["-c", "id > /tmp/outbound-policy-exec-ran"],
    "interactiveMode": "Never",
}
# (case id, change, expected words of the field message, refused only with loopback refused)
CASES = [
    ("exec", {"user": lambda u: {"exec": EXEC}}, "exec credentials", False),
    (
        "auth-provider",
        {"user": lambda u: {"auth-provider": {"name": "oidc", "config": {"idp-issuer-url": "https://x"}}}},
        "auth-provider credentials",
        False,
    ),
    (
        "token-file",
        {"user": lambda u: {"tokenFile": "/var/run/secrets/kubernetes.io/serviceaccount/token"}},
        "a token file path",
        False,
    ),
    (
        "client-cert-path",
        {"user": lambda u: {"client-certificate": "/etc/kubernetes/pki/admin.crt", "client-key": "/k"}},
        "a client certificate file path",
        False,
    ),
    (
        "ca-path",
        {"cluster": lambda c: c | {"certificate-authority": "/etc/kubernetes/pki/ca.crt"}},
        "a CA file path",
        False,
    ),
    ("proxy-url", {"cluster": lambda c: c | {"proxy-url": "http://10.0.0.5:3128"}}, "a proxy-url", False),
    (
        "insecure-skip-tls-verify",
        {"cluster": lambda c: c | {"insecure-skip-tls-verify": True}},
        "turns off TLS verification",
        False,
    ),
    ("loopback", {}, "127.0.0.1 is a loopback address", True),
    (
        "metadata",
        {"server": lambda s: "https://169.254.169.254:6443"},
        "169.254.169.254 is a cloud metadata address",
        True,
    ),
    ("ipv6-loopback", {"server": lambda s: f"https://[::1]:{_port(s)}"}, "::1 is a loopback address", True),
    (
        "ipv4-mapped",
        {"server": lambda s: f"https://[::ffff:127.0.0.1]:{_port(s)}"},
        "::ffff:127.0.0.1 is 127.0.0.1, a loopback address",
        True,
    ),
    (
        "decimal-ip",
        {"server": lambda s: f"https://2130706433:{_port(s)}"},
        "2130706433 is 127.0.0.1, a loopback address",
        True,
    ),
    (
        "name-resolving-to-loopback",
        {"server": lambda s: f"https://localhost:{_port(s)}"},
        "localhost resolves to 127.0.0.1, a loopback address",
        True,
    ),
    ("file-url", {"server": lambda s: "file:///etc/kubernetes/admin.conf"}, "https:// server", False),
    ("plain-http", {"server": lambda s: s.replace("https://", "http://")}, "https:// server", False),
]


@pytest.mark.kube
@pytest.mark.parametrize(("case", "change", "expected", "strict_only"), CASES, ids=[c[0] for c in CASES])
def test_refused_at_registration_through_the_api_and_the_studio(
    world, api, client, kubeconfig, settings, case, change, expected, strict_only
):
    settings.PAAS_OUTBOUND_ALLOW_LOOPBACK = not strict_only  # credential cases: the address is fine
    text = variant(kubeconfig, **change)
    before = AuditEvent.objects.count()
    response = api.as_user(world.operator).post(
        "/api/v1/clusters/", {"name": "refused", "kubeconfig": text}, format="json"
    )
    assert response.status_code == 400, response.content
    message = " ".join(response.json()["error"]["fields"]["kubeconfig"])
    assert expected in message, message
    assert not Cluster.objects.filter(name="refused").exists() and AuditEvent.objects.count() == before

    client.force_login(world.operator)
    form = {
        "name": "refused-studio",
        "display_name": "Refused",
        "datacenter": "",
        "labels": "{}",
        "tenancy": "shared",
        "dedicated_org": "",
        "new_kubeconfig": text,
    }
    page = client.post("/studio/inventory/cluster/add/", form)
    errors = re.findall(r'<ul class="errorlist[^>]*>.*?</ul>', html.unescape(page.content.decode()), re.S)
    assert page.status_code == 200 and any(expected in e for e in errors), errors
    # Beside the field the operator filled in, not only at the top of the form.
    field_errors = page.context["adminform"].form.errors.get("new_kubeconfig", [])
    assert any(expected in message for message in field_errors), field_errors
    assert not Cluster.objects.filter(name="refused-studio").exists() and AuditEvent.objects.count() == before
    # The same kubeconfig replacing a registered cluster's: refused, the stored one kept.
    if not strict_only:
        cluster = services.cluster_register(actor=world.operator, name="kept", kubeconfig=kubeconfig)
        update = api.as_user(world.operator).patch(
            f"/api/v1/clusters/{cluster.pk}/", {"kubeconfig": text}, format="json"
        )
        assert update.status_code == 400 and expected in " ".join(
            update.json()["error"]["fields"]["kubeconfig"]
        )
        cluster.refresh_from_db()
        assert cluster.kubeconfig.reveal() == kubeconfig


def test_server_and_token_registration_meets_the_policy(world, api, strict):
    op = api.as_user(world.operator)
    for server, expected in [
        ("https://169.254.169.254:6443", "169.254.169.254 is a cloud metadata address"),
        ("https://127.0.0.1:6443", "127.0.0.1 is a loopback address"),
        ("https://[fe80::1]:6443", "fe80::1 is a link-local address"),
        ("file:///var/run/secrets/kubernetes.io/serviceaccount/token", "https:// server"),
    ]:
        response = op.post(
            "/api/v1/clusters/", {"name": "tok", "server_url": server, "token": "t0k"}, format="json"
        )
        assert response.status_code == 400, response.content
        fields = response.json()["error"]["fields"]
        assert expected in " ".join(fields["server"]), fields
        assert "t0k" not in response.content.decode()
        assert not Cluster.objects.filter(name="tok").exists()
    # A private address is where real clusters live: allowed by default.
    made = op.post(
        "/api/v1/clusters/",
        {"name": "tok", "server_url": "https://10.1.2.3:6443", "token": "t0k"},
        format="json",
    )
    assert made.status_code == 201, made.content


@pytest.mark.kube
def test_the_local_cluster_registers_when_an_operator_allows_it(world, api, kubeconfig, strict):
    """Positive control: the refusals above are the policy, not a broken kubeconfig."""
    op = api.as_user(world.operator)
    assert op.post("/api/v1/clusters/", {"name": "local", "kubeconfig": kubeconfig}).status_code == 400
    strict.PAAS_OUTBOUND_ALLOW_LOOPBACK = True
    made = op.post("/api/v1/clusters/", {"name": "local", "kubeconfig": kubeconfig}, format="json")
    assert made.status_code == 201, made.content
    cluster = Cluster.objects.get(name="local")
    tasks.cluster_refresh(cluster.pk)
    cluster.refresh_from_db()
    assert cluster.status == "reachable", cluster.status_message
    # The narrower setting works too: only the local cluster's own address allowed.
    strict.PAAS_OUTBOUND_ALLOW_LOOPBACK = False
    strict.PAAS_OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    assert op.post("/api/v1/clusters/", {"name": "local-2", "kubeconfig": kubeconfig}).status_code == 201
    assert kube.probe(kubeconfig).healthy


@pytest.mark.kube
def test_only_the_current_context_is_stored(world, kubeconfig):
    """Other contexts' users and clusters are never used: they are stripped, whatever they carry."""
    data = yaml.safe_load(kubeconfig)
    data["users"].append({"name": "laptop", "user": {"exec": EXEC}})
    data["clusters"].append(
        {"name": "prod", "cluster": {"server": "https://169.254.169.254", "proxy-url": "x"}}
    )
    data["contexts"].append({"name": "prod", "context": {"cluster": "prod", "user": "laptop"}})
    cluster = services.cluster_register(
        actor=world.operator, name="stripped", kubeconfig=yaml.safe_dump(data)
    )
    cluster = Cluster.objects.get(pk=cluster.pk)
    stored = yaml.safe_load(cluster.kubeconfig.reveal())
    assert [c["name"] for c in stored["contexts"]] == [data["current-context"]]
    assert len(stored["users"]) == len(stored["clusters"]) == 1
    assert "exec" not in cluster.kubeconfig.reveal() and "169.254" not in cluster.kubeconfig.reveal()
    assert stored["users"][0] == yaml.safe_load(kubeconfig)["users"][0]
    # Two entries of one name: the client would use the first and a check might read the last.
    data = yaml.safe_load(kubeconfig)
    data["users"].insert(0, {"name": data["users"][0]["name"], "user": {"exec": EXEC}})
    with pytest.raises(ValidationFailed) as caught:
        services.cluster_register(actor=world.operator, name="twins", kubeconfig=yaml.safe_dump(data))
    assert "two users with the same name" in caught.value.fields["kubeconfig"][0]


@pytest.mark.kube
def test_checked_again_when_connecting(world, kubeconfig, strict, tmp_path):
    """A cluster registered while loopback was allowed is refused once it is not; a kubeconfig stored
    before the rules (written straight into the row) is refused before its exec command could run."""
    strict.PAAS_OUTBOUND_ALLOW_LOOPBACK = True
    cluster = services.cluster_register(actor=world.operator, name="was-allowed", kubeconfig=kubeconfig)
    assert services.cluster_check(cluster_id=cluster.pk).status == "reachable"
    strict.PAAS_OUTBOUND_ALLOW_LOOPBACK = False
    checked = services.cluster_check(cluster_id=cluster.pk)
    assert checked.status == "unreachable"
    assert checked.status_message == (
        "Not connecting: The cluster server address is refused: 127.0.0.1 is a loopback address "
        "(an operator may allow it with PAAS_OUTBOUND_ALLOW_LOOPBACK)."
    )
    with pytest.raises(kube.KubeUnreachable, match="loopback"):
        kube.list_nodes(kubeconfig)

    strict.PAAS_OUTBOUND_ALLOW_LOOPBACK = True
    marker = tmp_path / "exec-ran"
    legacy = variant(
        kubeconfig, user=lambda u: {"exec": EXEC | {"args": ["-c", f"touch {marker}; echo '{{}}'"]}}
    )
    cluster.kubeconfig = legacy
    cluster.save()
    checked = services.cluster_check(cluster_id=cluster.pk)
    assert checked.status == "unreachable" and "exec credentials" in checked.status_message
    assert not marker.exists()


# --- redirects and pinning, against a tiny HTTPS server ---------------------------------------------


class _Redirect(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.server.hits.append(self.path)
        self.send_response(302)
        self.send_header("Location", self.server.location + self.path)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def redirector(tmp_path):
    """An HTTPS server on 127.0.0.1 (certificate for the name ``localhost`` only) answering every
    request with 302 to another local port, where a listener records whether anyone connected."""
    ca = CertificateAuthority(tmp_path, "outbound-test-ca")
    pair = ca.issue("redirector", "redirector", dns_names=("localhost",))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pair.cert, pair.key)
    target = socket.socket()
    target.bind(("127.0.0.1", 0))
    target.listen(8)
    target.setblocking(False)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Redirect)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.hits = []
    server.location = f"https://127.0.0.1:{target.getsockname()[1]}"
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def kubeconfig_for(host: str) -> str:
        return kube.kubeconfig_from_token(
            server=f"https://{host}:{server.server_address[1]}",
            ca_data_b64=ca.pair.cert_data_b64(),
            token="t0k",
        )

    def target_was_reached() -> bool:
        try:
            target.accept()[0].close()
        except BlockingIOError:
            return False
        return True

    yield server, kubeconfig_for, target_was_reached
    server.shutdown()
    server.server_close()
    target.close()


def test_redirects_are_not_followed_and_tls_still_checks_the_name(redirector, settings):
    settings.PAAS_OUTBOUND_ALLOW_LOOPBACK = True  # both ends are local; the redirect target is allowed
    server, kubeconfig_for, target_was_reached = redirector
    with pytest.raises(kube.KubeUnreachable, match=r"answered HTTP 302"):
        kube.probe(kubeconfig_for("localhost"))  # pinned to 127.0.0.1, TLS verified for "localhost"
    assert server.hits == ["/version/"] and not target_was_reached()
    # The certificate names localhost only: reaching the same server as 127.0.0.1 fails verification.
    with pytest.raises(kube.KubeUnreachable, match="SSLError"):
        kube.probe(kubeconfig_for("127.0.0.1"))
    assert server.hits == ["/version/"] and not target_was_reached()


# --- the identity provider --------------------------------------------------------------------------


def test_identity_provider_calls_meet_the_policy(world, oidc, settings, caplog):
    """The operator's provider is reached through the same policy: the suite's provider listens on
    127.0.0.1, so with loopback refused neither the API nor the sign-in reaches it."""
    from rest_framework.test import APIClient

    from tenancy import sso

    settings.PAAS_OUTBOUND_ALLOW_LOOPBACK = False
    sso.clear_discovery_cache()
    refused = APIClient().get("/api/v1/me/", HTTP_AUTHORIZATION="Bearer some-provider-token")
    assert refused.status_code == 503, refused.content
    assert "identity provider cannot be reached" in refused.json()["error"]["message"]
    assert "The identity provider address is refused: 127.0.0.1 is a loopback address" in caplog.text
    settings.PAAS_OUTBOUND_ALLOW_LOOPBACK = True  # the positive control: now it is asked, and says no
    sso.clear_discovery_cache()
    assert APIClient().get("/api/v1/me/", HTTP_AUTHORIZATION="Bearer some-provider-token").status_code == 401
