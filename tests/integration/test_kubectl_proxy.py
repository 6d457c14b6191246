"""The kubectl proxy end to end: the kubeconfig downloaded through the API, the proxy served by the real
ASGI server, the local control plane behind it; streams over WebSockets (instances/kubeproxy/streams.py).
"""

import asyncio
import json

import aiohttp
import pytest
import yaml

from instances.kubeproxy import app as proxy_app
from instances.kubeproxy import streams
from instances.models import KubeCredential, ProxyRequestLog
from tests.support.instances import launch_instance

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
def proxied(live, api):
    """A ready instance of tenant A and its workspace admin's kubeconfig, downloaded through the API."""
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


def _ws_url(server: str, path: str) -> str:
    return server.replace("http://", "ws://", 1) + path


async def _ws(server: str, token: str, path: str, *, protocols=(), headers=None):
    """(session, websocket) or raises aiohttp.WSServerHandshakeError; the refusal body in .refusal."""
    session = aiohttp.ClientSession()
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
    async with aiohttp.ClientSession() as session:
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
        async with aiohttp.ClientSession() as session:

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
