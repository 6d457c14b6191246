"""The outbound-address policy (paas/outbound.py) on its own: every spelling of a refused address, the
operator settings, and the connect-time half (pinning, redirects, re-resolution) against local
servers."""

import http.server
import re
import socket
import threading

import pytest
import requests

from paas import outbound

LOOPBACK_HINT = "PAAS_OUTBOUND_ALLOW_LOOPBACK"
Refused = outbound.OutboundConnectionRefused


@pytest.fixture
def strict(settings):
    """The production default: loopback refused, no extra networks."""
    settings.PAAS_OUTBOUND_ALLOW_LOOPBACK = False
    settings.PAAS_OUTBOUND_ALLOWED_NETWORKS = []
    settings.PAAS_OUTBOUND_DENY_ALL = False
    return settings


REFUSED = [
    ("https://127.0.0.1:6443", "127.0.0.1 is a loopback address"),
    ("https://127.8.9.10", "127.8.9.10 is a loopback address"),
    ("https://2130706433:6443", "2130706433 is 127.0.0.1, a loopback address"),
    ("https://0x7f000001", "0x7f000001 is 127.0.0.1, a loopback address"),
    ("https://0177.0.0.1", "0177.0.0.1 is 127.0.0.1, a loopback address"),
    ("https://127.1", "127.1 is 127.0.0.1, a loopback address"),
    ("https://[::1]:6443", "::1 is a loopback address"),
    ("https://[::ffff:127.0.0.1]", "::ffff:127.0.0.1 is 127.0.0.1, a loopback address"),
    ("https://[::127.0.0.1]", "is 127.0.0.1, a loopback address"),  # IPv4-compatible
    ("https://[2002:7f00:1::]", "is 127.0.0.1, a loopback address"),  # 6to4
    ("https://localhost:6443", "localhost resolves to 127.0.0.1, a loopback address"),
    ("https://LocalHost", "resolves to 127.0.0.1, a loopback address"),
    ("https://169.254.169.254/latest/meta-data/", "169.254.169.254 is a cloud metadata address"),
    ("https://[::ffff:169.254.169.254]", "is 169.254.169.254, a cloud metadata address"),
    ("https://[64:ff9b::a9fe:a9fe]", "is 169.254.169.254, a cloud metadata address"),  # NAT64
    ("https://2852039166", "is 169.254.169.254, a cloud metadata address"),
    ("https://[fd00:ec2::254]", "fd00:ec2::254 is a cloud metadata address"),
    ("https://100.100.100.200", "100.100.100.200 is a cloud metadata address"),
    ("https://169.254.1.1", "169.254.1.1 is a link-local address"),
    ("https://[fe80::1]", "fe80::1 is a link-local address"),
    ("https://0.0.0.0:6443", "0.0.0.0 is an unspecified address"),
    ("https://0", "0 is 0.0.0.0, an unspecified address"),
    ("https://[::]", ":: is an unspecified address"),
    ("https://224.0.0.1", "224.0.0.1 is a multicast address"),
    ("https://[ff02::1]", "ff02::1 is a multicast address"),
    ("https://255.255.255.255", "255.255.255.255 is a reserved address"),
    ("file:///etc/kubernetes/admin.conf", "local files and paths are never reached"),
    ("FILE://localhost/etc/passwd", "local files and paths are never reached"),
    ("/etc/passwd", "local files and paths are never reached"),
    ("~/.kube/config", "local files and paths are never reached"),
    ("gopher://10.0.0.1:70/", "the scheme gopher:// is not allowed here"),
    ("http://10.0.0.1:6443", "the scheme http:// is not allowed here"),
    ("10.0.0.1:6443", "it is not a URL"),
    ("https://", "it has no host"),
    ("https://10.0.0.1:99999", "its port is not valid"),
    ("https://name.invalid", "the name name.invalid does not resolve"),
    ("https://10.0.0.1 /x", "spaces or control characters"),
]


@pytest.mark.parametrize(("url", "expected"), REFUSED)
def test_refused_addresses_in_every_spelling(strict, url, expected):
    with pytest.raises(outbound.OutboundRefused) as caught:
        outbound.check_url(url, purpose="cluster server", field="kubeconfig", schemes=("https",))
    message = caught.value.fields["kubeconfig"][0]
    assert message.startswith("The cluster server address is refused: ") and expected in message, message
    assert caught.value.status == 400 and caught.value.message == message


@pytest.mark.parametrize(
    "url",
    [
        "https://10.0.0.1:6443",  # private ranges: where real clusters live
        "https://172.16.5.4",
        "https://192.168.1.10:6443",
        "https://100.64.0.1",  # carrier-grade NAT, but not the Alibaba metadata address
        "https://[fd12:3456::1]:6443",
        "https://8.8.8.8",
        "https://[2001:4860:4860::8888]",
        "https://167772161:6443",  # 10.0.0.1 spelled as a number: the same rule as 10.0.0.1
    ],
)
def test_private_and_public_addresses_stay_allowed(strict, url):
    checked = outbound.check_url(url, purpose="cluster server", schemes=("https",))
    assert checked.addresses and checked.scheme == "https"


def test_operator_settings_widen_or_close_the_policy(strict):
    def refusal(url):
        try:
            outbound.check_url(url, purpose="registry")
        except outbound.OutboundRefused as exc:
            return exc.message
        return None

    assert LOOPBACK_HINT in refusal("https://127.0.0.1")
    strict.PAAS_OUTBOUND_ALLOW_LOOPBACK = True
    assert refusal("https://127.0.0.1") is None and refusal("https://[::ffff:127.0.0.1]") is None
    assert refusal("http://localhost:8080") is None
    # Loopback allowed is not metadata or link-local allowed.
    assert "metadata" in refusal("https://169.254.169.254") and "link-local" in refusal("https://169.254.9.9")
    assert "unspecified" in refusal("https://0.0.0.0")
    strict.PAAS_OUTBOUND_ALLOWED_NETWORKS = ["169.254.10.0/24"]
    assert refusal("https://169.254.10.7") is None and refusal("https://[::ffff:169.254.10.7]") is None
    assert "link-local" in refusal("https://169.254.11.7")
    strict.PAAS_OUTBOUND_DENY_ALL = True
    for url in ("https://10.0.0.1", "https://8.8.8.8", "https://127.0.0.1", "https://169.254.10.7"):
        assert "PAAS_OUTBOUND_DENY_ALL" in refusal(url)
    # Schemes are each feature's choice; file:// is never one.
    strict.PAAS_OUTBOUND_DENY_ALL = False
    outbound.check_url("ssh://10.0.0.1/repo.git", purpose="repository", schemes=("ssh", "https"))
    with pytest.raises(outbound.OutboundRefused, match="local files"):
        outbound.check_url("file:///srv/repo.git", purpose="repository", schemes=("file", "https"))


# --- connect time -----------------------------------------------------------------------------------


class _Counting(http.server.BaseHTTPRequestHandler):
    hits: list

    def do_GET(self):
        self.hits.append(self.path)
        location = getattr(self.server, "redirect_to", "")
        self.send_response(302 if location else 200)
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def serve():
    """``serve(host, redirect_to="")`` starts a tiny HTTP server; returns (base URL, hits)."""
    servers = []

    def start(host: str = "127.0.0.1", redirect_to: str = ""):
        hits: list[str] = []
        handler = type("Handler", (_Counting,), {"hits": hits})
        server = http.server.ThreadingHTTPServer((host, 0), handler)
        server.redirect_to = redirect_to
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return f"http://{host}:{server.server_address[1]}", hits

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_checked_pool_manager_refuses_at_connect_time(strict, serve):
    url, hits = serve()
    pool = outbound.checked_pool_manager(purpose="cluster server", retries=False)
    with pytest.raises(Refused, match=re.escape("127.0.0.1 is a loopback address")):
        pool.request("GET", f"{url}/x")
    assert hits == []  # refused before connecting, not after
    strict.PAAS_OUTBOUND_ALLOW_LOOPBACK = True
    assert pool.request("GET", f"{url}/y").status == 200 and hits == ["/y"]


def test_redirects_are_not_followed(strict, serve):
    """The server answers 302 to an address the policy allows (another port, also allowed): if the
    pool followed it, the second server would see a request."""
    strict.PAAS_OUTBOUND_ALLOW_LOOPBACK = True
    target, target_hits = serve()
    start, start_hits = serve(redirect_to=f"{target}/stolen")
    pool = outbound.checked_pool_manager(purpose="cluster server")
    response = pool.request("GET", f"{start}/version")
    assert response.status == 302 and start_hits == ["/version"] and target_hits == []
    # The same through urllib3's own redirect machinery asked for explicitly: still not followed.
    assert pool.urlopen("GET", f"{start}/again", redirect=True).status == 302 and target_hits == []


def test_a_followed_redirect_meets_the_policy_on_every_hop(strict, serve):
    """A requests session follows redirects, but each hop is a new checked connection: a redirect
    from an allowed address (127.0.0.1, allowed by network) to a refused one (127.0.0.2) is refused."""
    strict.PAAS_OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    target, target_hits = serve(host="127.0.0.2")
    start, start_hits = serve(redirect_to=f"{target}/metadata")
    session = outbound.checked_session(purpose="registry")
    with pytest.raises(outbound.OutboundRequestRefused, match=re.escape("127.0.0.2 is a loopback address")):
        session.get(f"{start}/v2/", timeout=5)
    assert start_hits == ["/v2/"] and target_hits == []
    strict.PAAS_OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    assert session.get(f"{start}/v2/", timeout=5).status_code == 200 and target_hits == ["/metadata"]


def test_checked_session_ignores_environment_proxies(strict, serve, monkeypatch):
    strict.PAAS_OUTBOUND_ALLOW_LOOPBACK = True
    url, hits = serve()
    proxy, proxy_hits = serve()
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.setenv("NO_PROXY", "")
    assert outbound.checked_session(purpose="registry").get(f"{url}/p", timeout=5).status_code == 200
    assert hits == ["/p"] and proxy_hits == []
    assert requests.Session().get(f"{url}/q", timeout=5).status_code == 200  # a plain session does use it
    assert proxy_hits, "the proxy check proves nothing if a plain session ignores the variable too"


def test_names_are_resolved_again_at_connect_time(strict, serve, monkeypatch):
    """DNS rebinding: the name resolved to an allowed address when checked and resolves to loopback
    when the connection is made. The connection resolves once, checks that answer and connects to it."""
    url, hits = serve()
    port = int(url.rsplit(":", 1)[1])
    answers = iter(["10.0.0.1", "127.0.0.1", "127.0.0.1"])
    real = socket.getaddrinfo

    def rebinding(host, *args, **kwargs):
        if host == "rebind.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    checked = outbound.check_url(f"http://rebind.test:{port}/", purpose="registry")
    assert [str(a) for a in checked.addresses] == ["10.0.0.1"]
    pool = outbound.checked_pool_manager(purpose="registry", retries=False)
    with pytest.raises(Refused, match=re.escape("rebind.test resolves to 127.0.0.1")):
        pool.request("GET", f"http://rebind.test:{port}/")
    assert hits == []
    strict.PAAS_OUTBOUND_ALLOW_LOOPBACK = True  # the same name, allowed: it connects to what was checked
    assert pool.request("GET", f"http://rebind.test:{port}/ok").status == 200 and hits == ["/ok"]
