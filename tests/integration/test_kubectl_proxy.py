"""The kubectl proxy end to end: the kubeconfig downloaded through the API, the proxy served by the real
ASGI server, the local control plane behind it; streams over WebSockets (instances/kubeproxy/streams.py).
"""

import asyncio
import json
import ssl
import subprocess
from datetime import timedelta

import aiohttp
import pytest
import yaml
from django.conf import settings
from django.utils import timezone

from instances import deployer, services
from instances.kubeproxy import app as proxy_app
from instances.kubeproxy import auditing, credentials, streams
from instances.models import KubeCredential, ProxyRequestLog
from paas.models import AuditEvent
from tests.localkube.helpers import pod_port_server
from tests.support.instances import launch_instance
from tests.support.kubectl import (
    get_through_forward,
    output_lines,
    popen_kubectl,
    run_kubectl,
    stop_kubectl,
    wait_line,
)
from tests.support.wait import wait_for

pytestmark = pytest.mark.kube


def _download(api, user, instance) -> dict:
    response = api.as_user(user).post(f"/api/v1/instances/{instance.pk}/kubeconfig/")
    assert response.status_code == 200, response.content
    text = response.content.decode()
    config = yaml.safe_load(text)
    return {
        "text": text,
        "server": config["clusters"][0]["cluster"]["server"],
        "token": config["users"][0]["user"]["token"],
        "namespace": config["contexts"][0]["context"]["namespace"],
    }


@pytest.fixture
def proxied(live, api, kube_proxy_tls):
    """A ready instance of tenant A and its workspace admin's kubeconfig, downloaded through the API
    (pointing at the proxy served over HTTPS: kubectl sends no credential over plain HTTP)."""
    world = live["world"]
    instance = launch_instance(live)
    owner = world.a.users["workspace_admin"]
    return {
        "live": live,
        "world": world,
        "instance": instance,
        "owner": owner,
        **_download(api, owner, instance),
    }


# ---- WebSockets through the proxy, spoken by a plain client (what kubectl does, frame by frame) --------


def _client() -> aiohttp.ClientSession:
    """An HTTP client trusting the proxy's certificate (the CA the downloaded kubeconfig carries)."""
    context = ssl.create_default_context(cafile=settings.PAAS_KUBE_PROXY_CA_FILE)
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context))


def _ws_url(server: str, path: str) -> str:
    return server.replace("https://", "wss://", 1) + path


async def _ws(server: str, token: str, path: str, *, protocols=(), headers=None):
    """(session, websocket) through the proxy; a refused handshake raises aiohttp.WSServerHandshakeError."""
    session = _client()
    try:
        ws = await session.ws_connect(
            _ws_url(server, path),
            protocols=protocols,
            headers={"Authorization": f"Bearer {token}", **(headers or {})},
        )
    except BaseException:
        await session.close()
        raise
    return session, ws


async def _refusal(
    server: str, token: str, path: str, *, method="GET", headers=None, protocols=()
) -> tuple[int, dict]:
    """The HTTP answer to a WebSocket (or other) upgrade request that is refused: (status, Status)."""
    upgrade = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    if protocols:
        upgrade["Sec-WebSocket-Protocol"] = ", ".join(protocols)
    async with _client() as session:
        auth = {"Authorization": f"Bearer {token}"} if token else {}
        async with session.request(
            method, server + path, headers={**upgrade, **auth, **(headers or {})}
        ) as response:
            return response.status, json.loads(await response.read())


def test_watch_over_a_websocket_is_relayed_and_cut_when_the_credential_is_revoked(proxied, monkeypatch):
    """The API server's watch over a WebSocket passes the proxy frame by frame; revoking the credential
    closes the open stream (policy violation) at its next check."""
    monkeypatch.setattr(proxy_app, "RECHECK_SECONDS", 0.2)
    server, token, ns = proxied["server"], proxied["token"], proxied["namespace"]
    core = proxied["live"]["core"]

    async def scenario():
        session, ws = await _ws(
            server,
            token,
            f"/api/v1/namespaces/{ns}/configmaps?watch=true",
            headers={"Origin": "http://localhost"},
        )
        try:
            seen = set()
            while "instance-info" not in seen:  # the initial ADDED events of the namespace's configmaps
                message = await asyncio.wait_for(ws.receive(), 10)
                assert message.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY), message
                event = json.loads(message.data)
                seen.add(event["object"]["metadata"]["name"])
            await asyncio.to_thread(
                core.create_namespaced_config_map, ns, {"metadata": {"name": "over-ws"}, "data": {"k": "v"}}
            )
            while "over-ws" not in seen:
                event = json.loads((await asyncio.wait_for(ws.receive(), 10)).data)
                seen.add(event["object"]["metadata"]["name"])
            credential = await asyncio.to_thread(lambda: KubeCredential.objects.get(user=proxied["owner"]))
            await asyncio.to_thread(
                lambda: KubeCredential.objects.filter(pk=credential.pk).update(
                    revoked_at="2020-01-01T00:00:00Z"
                )
            )
            while True:
                message = await asyncio.wait_for(ws.receive(), 10)
                if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                    return ws.close_code, message.extra
        finally:
            await ws.close()
            await session.close()

    code, reason = asyncio.run(scenario())
    assert code == streams.GRANT_ENDED and "revoked" in reason
    row = ProxyRequestLog.objects.get(resource="configmaps", verb="watch")
    assert row.status == 101 and row.namespace == proxied["namespace"] and row.user_id == proxied["owner"].pk


def test_refusals_of_websocket_streams_carry_the_api_servers_status(proxied, world):
    """Refused before or by the API server, a stream's handshake answers a Kubernetes Status (what
    kubectl prints); each attempt with a valid credential is in the audit records as a ``create``."""
    server, token, ns = proxied["server"], proxied["token"], proxied["namespace"]
    exec_path = "/api/v1/namespaces/{ns}/pods/{pod}/exec?command=true&stdout=true"

    async def scenario():
        return {
            "anonymous": await _refusal(
                server, "", exec_path.format(ns=ns, pod="p"), protocols=["v5.channel.k8s.io"]
            ),
            "forged": await _refusal(
                server,
                "gpk_0123456789ab_forged",
                exec_path.format(ns=ns, pod="p"),
                protocols=["v5.channel.k8s.io"],
            ),
            "missing pod": await _refusal(
                server, token, exec_path.format(ns=ns, pod="nope"), protocols=["v5.channel.k8s.io"]
            ),
            "other namespace": await _refusal(
                server, token, exec_path.format(ns="kube-system", pod="etcd"), protocols=["v5.channel.k8s.io"]
            ),
            "bad subprotocol": await _refusal(
                server, token, exec_path.format(ns=ns, pod="p"), protocols=["chat", "soap"]
            ),
        }

    answers = asyncio.run(scenario())
    assert answers["anonymous"][0] == 401 and answers["anonymous"][1]["reason"] == "Unauthorized"
    assert answers["forged"][0] == 401
    status, body = answers["missing pod"]
    assert (
        status == 404
        and body["kind"] == "Status"
        and body["reason"] == "NotFound"
        and '"nope"' in body["message"]
    )
    status, body = answers["other namespace"]
    assert status == 403 and body["reason"] == "Forbidden" and "kube-system" in body["message"]
    assert "system:serviceaccount:" in body["message"]  # the API server judged the impersonated account
    assert answers["bad subprotocol"][0] == 400 and "subprotocol" in answers["bad subprotocol"][1]["message"]
    rows = ProxyRequestLog.objects.filter(subresource="exec").order_by("id")
    assert [(r.verb, r.name, r.status) for r in rows] == [
        ("create", "nope", 404),
        ("create", "etcd", 403),
        ("create", "p", 400),
    ]


def test_spdy_upgrades_are_refused_with_a_clear_status(proxied):
    """SPDY (kubectl before 1.31) cannot pass the ASGI server: a Status says so, and the connection is
    closed cleanly; kubectl's SPDY fallback after a refused WebSocket reads the API server's refusal."""
    server, token, ns = proxied["server"], proxied["token"], proxied["namespace"]
    spdy = {"Connection": "Upgrade", "Upgrade": "SPDY/3.1", "X-Stream-Protocol-Version": "v4.channel.k8s.io"}
    fresh = f"/api/v1/namespaces/{ns}/pods/p/exec?command=true&stdout=true"
    refused = f"/api/v1/namespaces/{ns}/pods/gone/exec?command=true&stdout=true"

    async def scenario():
        async with _client() as session:

            async def spdy_post(path, token=token):
                async with session.post(
                    server + path, headers={**spdy, "Authorization": f"Bearer {token}"}
                ) as r:
                    return r.status, r.headers.get("Connection", ""), json.loads(await r.read())

            first = await spdy_post(fresh)
            websocket = await _refusal(server, token, refused, protocols=["v5.channel.k8s.io"])
            fallback = await spdy_post(refused)
            anonymous = await spdy_post(fresh, token="nope")
            return first, websocket, fallback, anonymous

    first, websocket, fallback, anonymous = asyncio.run(scenario())
    assert first[0] == 400 and first[1].lower() == "close" and "kubectl 1.31 or later" in first[2]["message"]
    assert websocket[0] == 404 and fallback[0] == 404 and fallback[2] == websocket[1]
    assert anonymous[0] == 401


# ---- the real kubectl with the downloaded kubeconfig ------------------------------------------------


UNAUTHORIZED = "You must be logged in to the server"  # kubectl's words for the proxy's 401


def _ok(result) -> str:
    assert result.returncode == 0, (result.args, result.stdout, result.stderr)
    return result.stdout


def _refused(result) -> str:
    assert result.returncode != 0, (result.args, result.stdout)
    return result.stderr


CONFIGMAP = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: app-settings
data:
  mode: {mode}
"""


def test_kubectl_get_apply_watch_and_can_i_through_the_proxy(proxied, kubectl_binary, monkeypatch):
    """Everyday kubectl through the proxy as the tenant: get, apply, get -w (streams, and stops when
    the credential is revoked), auth can-i answering the tenant's rights; each command recorded."""
    monkeypatch.setattr(proxy_app, "RECHECK_SECONDS", 0.2)
    kubeconfig, ns = proxied["text"], proxied["namespace"]

    assert _ok(run_kubectl(kubeconfig, "get", "pods")) == ""
    assert "instance-info" in _ok(run_kubectl(kubeconfig, "get", "configmaps", "-o", "name"))
    assert "configmap/app-settings created" in _ok(
        run_kubectl(kubeconfig, "apply", "-f", "-", input=CONFIGMAP.format(mode="one"))
    )
    shown = json.loads(_ok(run_kubectl(kubeconfig, "get", "configmap", "app-settings", "-o", "json")))
    assert shown["data"] == {"mode": "one"} and shown["metadata"]["namespace"] == ns

    for question, answer in (
        (("create", "pods"), "yes"),
        (("create", "pods/exec"), "yes"),
        (("create", "pods/portforward"), "yes"),
        (("get", "pods/log"), "yes"),
        (("list", "nodes"), "no"),
        (("list", "namespaces"), "no"),
        (("patch", "resourcequotas"), "no"),
        (("create", "networkpolicies.networking.k8s.io"), "no"),
        (("list", "pods", "-n", "kube-system"), "no"),
    ):
        result = run_kubectl(kubeconfig, "auth", "can-i", *question)
        assert result.stdout.strip() == answer, (question, result.stdout, result.stderr)

    watch = popen_kubectl(kubeconfig, "get", "configmaps", "-w", "-o", "name")
    lines = output_lines(watch)
    try:
        wait_for(lambda: "configmap/app-settings" in lines, 30, 0.1, what="the watch's first events")
        _ok(
            run_kubectl(
                kubeconfig,
                "apply",
                "-f",
                "-",
                input=CONFIGMAP.format(mode="two").replace("app-settings", "app-settings-2"),
            )
        )
        wait_for(
            lambda: "configmap/app-settings-2" in lines, 30, 0.1, what="the watch to stream a new object"
        )
        credential = KubeCredential.objects.get(user=proxied["owner"], instance=proxied["instance"])
        credentials.credential_revoke(actor=proxied["owner"], credential=credential)
        wait_for(lambda: watch.poll() is not None, 30, 0.1, what="the watch to stop when the credential goes")
    finally:
        stop_kubectl(watch)
    assert UNAUTHORIZED in _refused(run_kubectl(kubeconfig, "get", "pods"))

    rows = _audited(proxied["instance"])
    commands = {(r["command"].split(" ")[1] if r["command"] else "", r["verb"], r["resource"]) for r in rows}
    assert {
        ("get", "list", "pods"),
        ("apply", "create", "configmaps"),
        ("get", "watch", "configmaps"),
        ("auth", "create", "selfsubjectaccessreviews"),
    } <= commands, commands
    applied = [r for r in rows if r["verb"] == "create" and r["resource"] == "configmaps"]
    assert [r["status"] for r in applied] == [201, 201] and {r["name"] for r in applied} == {""}
    assert all(
        r["actor_id"] == proxied["owner"].pk and r["cluster_id"] == proxied["instance"].cluster_id
        for r in rows
    )


def _audited(instance) -> list[dict]:
    """The instance's proxied requests as the tenant's audit trail holds them, once the pending rows
    are chained (``auditing.flush``: what the server's background flush and the schedule run)."""
    auditing.flush()
    assert not ProxyRequestLog.objects.filter(instance_id=instance.pk).exists()
    events = AuditEvent.objects.filter(
        action=auditing.ACTION, target_id=str(instance.pk), org_id=instance.project.org_id
    ).order_by("seq")
    return [{**e.details, "actor_id": e.actor_id, "cluster_id": e.cluster_id} for e in events]


def test_kubectl_is_refused_elsewhere_and_once_access_ends(proxied, api, kubectl_binary):
    """Another tenant's namespace is refused by the cluster (the proxy impersonates the tenant's own
    ServiceAccount); a removed collaborator is refused at the next request, and so are an expired and
    a revoked credential."""
    live, world, instance = proxied["live"], proxied["world"], proxied["instance"]
    other = launch_instance(live, "theirs", actor=world.b.users["workspace_admin"], project=world.b.project)
    for args in (
        ("get", "pods", "-n", other.namespace),
        ("get", "secrets", "-n", other.namespace),
        ("delete", "configmap", "instance-info", "-n", other.namespace),
    ):
        err = _refused(run_kubectl(proxied["text"], *args))
        assert "Forbidden" in err and other.namespace in err, err
    # Nor can the tenant's kubeconfig be pointed at the other instance's proxy address.
    elsewhere = proxied["text"].replace(f"/k8s/instances/{instance.pk}", f"/k8s/instances/{other.pk}")
    assert UNAUTHORIZED in _refused(run_kubectl(elsewhere, "get", "pods"))

    friend = world.a.users["collaborator_rw"]
    owner = proxied["owner"]
    services.collaborator_add(actor=owner, instance=instance, email=friend.email)
    deployer.access_apply(instance_id=instance.pk)
    theirs = _download(api, friend, instance)
    _ok(run_kubectl(theirs["text"], "get", "configmaps"))
    services.collaborator_remove(actor=owner, instance=instance, user=friend)
    assert UNAUTHORIZED in _refused(run_kubectl(theirs["text"], "get", "configmaps"))

    expiring = _download(api, owner, instance)
    _ok(run_kubectl(expiring["text"], "get", "configmaps"))
    KubeCredential.objects.filter(pk=_credential_id(expiring["token"])).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert UNAUTHORIZED in _refused(run_kubectl(expiring["text"], "get", "configmaps"))

    _ok(run_kubectl(proxied["text"], "get", "configmaps"))
    credentials.credential_revoke(
        actor=owner, credential=KubeCredential.objects.get(pk=_credential_id(proxied["token"]))
    )
    assert UNAUTHORIZED in _refused(run_kubectl(proxied["text"], "get", "configmaps"))


def _credential_id(token: str) -> int:
    return KubeCredential.objects.get(prefix=token.split("_")[1]).pk


POD = """
apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  runtimeClassName: kata
  containers:
  - name: app
    image: registry.example/app:1
    ports:
    - containerPort: 8080
    resources:
      limits: {cpu: "1", memory: 1Gi}
    securityContext:
      runAsNonRoot: true
      allowPrivilegeEscalation: false
      capabilities: {drop: [ALL]}
      seccompProfile: {type: RuntimeDefault}
"""


def test_kubectl_logs_exec_and_port_forward_stream_through_the_proxy(
    proxied, kubectl_binary, kube_cluster, monkeypatch
):
    """logs -f, exec (with stdin) and port-forward over the proxy's WebSockets to a simulated pod whose
    kubelet is KWOK on loopback; a refused exec prints the API server's reason; an exec in progress ends
    when the credential is revoked; each stream is recorded as a create answered 101."""
    monkeypatch.setattr(proxy_app, "RECHECK_SECONDS", 0.2)
    kubeconfig = proxied["text"]
    assert "pod/web created" in _ok(run_kubectl(kubeconfig, "apply", "-f", "-", input=POD))
    wait_for(
        lambda: (
            run_kubectl(kubeconfig, "get", "pod", "web", "-o", "jsonpath={.status.phase}").stdout == "Running"
        ),
        60,
        0.3,
        what="the pod to run",
    )

    assert "simulated container started" in _ok(run_kubectl(kubeconfig, "logs", "web"))
    follow = popen_kubectl(kubeconfig, "logs", "-f", "pod/web")
    try:
        lines = output_lines(follow)
        wait_line(lines, "simulated container started", "the log so far")
        kube_cluster.append_pod_log("followed through the proxy")
        wait_line(lines, "^followed through the proxy$", "a line appended while following")
        assert follow.poll() is None
    finally:
        stop_kubectl(follow)

    assert (
        _ok(run_kubectl(kubeconfig, "exec", "web", "--", "sh", "-c", "echo hello-$((6*7))")) == "hello-42\n"
    )
    echoed = run_kubectl(
        kubeconfig, "exec", "-i", "web", "--", "sh", "-c", 'read line; echo "got $line"', input="over stdin\n"
    )
    assert _ok(echoed) == "got over stdin\n"
    refused = _refused(run_kubectl(kubeconfig, "exec", "-n", "kube-system", "etcd", "--", "true"))
    assert "Forbidden" in refused and "kube-system" in refused and "kubectl 1.31" not in refused, refused

    body = b"served behind the proxy"
    with pod_port_server(kube_cluster, body) as target:
        forward = popen_kubectl(kubeconfig, "port-forward", "pod/web", ":8080")
        try:
            try:
                local = wait_line(
                    output_lines(forward), r"Forwarding from 127\.0\.0\.1:(\d+) -> 8080", "forwarding"
                )
            except AssertionError as error:
                rows = ProxyRequestLog.objects.filter(subresource="portforward").values_list(
                    "status", "command"
                )
                raise AssertionError(
                    f"{error}; kubectl: {stop_kubectl(forward)!r}; records {list(rows)}"
                ) from error
            get_through_forward(int(local.group(1)), body)  # two connections over the same forward
        finally:
            stop_kubectl(forward)
    assert target.requests == 2

    shell = popen_kubectl(
        kubeconfig,
        "exec",
        "-i",
        "web",
        "--",
        "sh",
        "-c",
        'while read l; do echo "got $l"; done',
        stdin=subprocess.PIPE,
    )
    try:
        lines = output_lines(shell)
        shell.stdin.write("one\n")
        shell.stdin.flush()
        wait_line(lines, "^got one$", "the interactive exec to answer")
        credentials.credential_revoke(
            actor=proxied["owner"], credential=KubeCredential.objects.get(pk=_credential_id(proxied["token"]))
        )
        wait_for(lambda: shell.poll() is not None, 30, 0.1, what="the exec to end with its credential")
    finally:
        stop_kubectl(shell)
    assert shell.returncode != 0

    rows = _audited(proxied["instance"])
    streamed = [
        (r["subresource"], r["verb"], r["status"], r["command"])
        for r in rows
        if r["subresource"] in ("exec", "portforward")
    ]
    assert ("exec", "create", 101, "kubectl exec") in streamed
    assert ("portforward", "create", 101, "kubectl port-forward") in streamed
    assert len([r for r in rows if (r["subresource"], r["verb"], r["status"]) == ("log", "get", 200)]) >= 2
