"""WebSocket requests through the proxy: ``kubectl exec``, ``attach`` and ``port-forward``.

kubectl speaks these over WebSockets by default (exec and attach since 1.30 with the subprotocol
``v5.channel.k8s.io``; port-forward since 1.31, SPDY tunnelled in a WebSocket with
``SPDY/3.1+portforward.k8s.io``: client-go ``tools/remotecommand`` and ``tools/portforward``). A request
is authenticated and its grant checked as every proxied request is (:func:`app.authenticate`), recorded
for the audit trail before it is forwarded (a stream is a write: the API server authorizes it as
``create`` on ``pods/exec``, ``pods/attach`` or ``pods/portforward``), then the WebSocket is opened to
the cluster's API server first, as the platform impersonating the user's ServiceAccount and offering
the client's subprotocols, and only then accepted from the client, with the subprotocol the API server
chose. If the API server refuses, its answer (a Kubernetes ``Status``) is the client's. Frames are
relayed both ways as they come, one at a time per direction (a slow reader slows the writer: the
ASGI server stops reading a client we are not keeping up with, aiohttp waits for the cluster's socket
to drain), until either side closes or the grant ends (credential revoked or expired, collaborator
removed: :func:`app.watch_grant`); then both are closed.

SPDY upgrades (kubectl before 1.31, or its fallback after a refused WebSocket upgrade) cannot pass an
ASGI server: they get a ``Status`` saying kubectl 1.31 or later is needed, or, when kubectl falls back
after the API server refused its WebSocket, that refusal again (:func:`refuse_upgrade`).
"""

import asyncio
import contextlib
import dataclasses
import re
import time
from collections import OrderedDict

import aiohttp

from instances.kubeproxy import app, auditing, requestinfo, upstream
from paas import context

#: The subprotocols passed to the API server: the remote-command channel protocols (``channel.k8s.io``,
#: ``v2``..``v5``, their base64 forms), port-forward's (``portforward.k8s.io``, tunnelled as
#: ``SPDY/3.1+portforward.k8s.io``) and the stream readers' of logs and watches (``binary.k8s.io``,
#: ``base64.binary.k8s.io``). Anything else a client offers is dropped.
SUBPROTOCOL = re.compile(
    r"(v[1-9][0-9]?\.)?(base64\.)?channel\.k8s\.io|(SPDY/3\.1\+)?portforward\.k8s\.io|(base64\.)?binary\.k8s\.io"
)
#: Subresources that are streams: the API server authorizes them as ``create`` (kubectl's WebSocket
#: request is a GET, the feature AuthorizePodWebsocketUpgradeCreatePermission checks ``create`` too).
STREAM_SUBRESOURCES = frozenset({"exec", "attach", "portforward"})
MAX_MESSAGE = 16 * 1024 * 1024  # as the ASGI server's own limit for the client's messages
MAX_REFUSAL_BODY = 64 * 1024
HANDSHAKE_TIMEOUT = 30.0
CLOSE_TIMEOUT = 10.0
#: How long a refused WebSocket upgrade is remembered for kubectl's SPDY fallback that follows it.
REFUSAL_MEMORY_SECONDS = 30.0
REFUSAL_MEMORY_SIZE = 1024

GRANT_ENDED = 1008  # policy violation
GRANT_ENDED_REASON = "kubectl proxy: the credential expired or was revoked, or access to the instance ended"
SPDY_MESSAGE = (
    "This kubectl proxy carries exec, attach and port-forward over WebSockets only (SPDY cannot pass "
    "it): use kubectl 1.31 or later, which does so by default."
)


def stream_info(method: str, path: str, query: str) -> requestinfo.RequestInfo:
    """The audit record's request info: a stream subresource is recorded as the ``create`` the API
    server authorizes (never a read to be sampled or summarised)."""
    info = requestinfo.parse(method, path, query)
    if info.resource == "pods" and info.subresource in STREAM_SUBRESOURCES:
        info = dataclasses.replace(info, verb="create")
    return info


def offered_subprotocols(scope) -> tuple[list[str], list[str]]:
    """(the client's subprotocols the proxy passes on, those it drops), in the client's order."""
    kept, dropped = [], []
    for protocol in scope.get("subprotocols") or ():
        (kept if SUBPROTOCOL.fullmatch(protocol) else dropped).append(protocol)
    return kept, dropped


# ---- refusals --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Refusal:
    status: int
    body: bytes
    content_type: str = "application/json"

    @classmethod
    def status_of(cls, code: int, reason: str, message: str) -> "Refusal":
        return cls(code, app.status_body(code, reason, message))


async def deny(scope, send, refusal: Refusal) -> None:
    """Refuse the WebSocket handshake with an HTTP response (kubectl reads a ``Status`` from it); a
    server without the denial-response extension answers 403 and the reason goes in the close."""
    if "websocket.http.response" in (scope.get("extensions") or {}):
        await send(
            {
                "type": "websocket.http.response.start",
                "status": refusal.status,
                "headers": [
                    (b"content-type", refusal.content_type.encode("latin-1")),
                    (b"content-length", str(len(refusal.body)).encode()),
                ],
            }
        )
        await send({"type": "websocket.http.response.body", "body": refusal.body})
    else:
        await send({"type": "websocket.close", "code": 1008, "reason": f"HTTP {refusal.status}"})


# What the API server refused lately, per credential and request, for kubectl's SPDY fallback: kubectl
# retries a refused WebSocket upgrade over SPDY at once, and its user should read the API server's
# reason (e.g. Forbidden), not that SPDY is unsupported. Per process; another worker answers the
# general message instead.
_refusals: "OrderedDict[tuple, tuple[float, Refusal]]" = OrderedDict()


def _remember(key: tuple, refusal: Refusal) -> None:
    now = time.monotonic()
    _refusals[key] = (now + REFUSAL_MEMORY_SECONDS, refusal)
    _refusals.move_to_end(key)
    while _refusals and (len(_refusals) > REFUSAL_MEMORY_SIZE or next(iter(_refusals.values()))[0] < now):
        _refusals.popitem(last=False)


def _recalled(key: tuple) -> Refusal | None:
    found = _refusals.get(key)
    if found is None or found[0] < time.monotonic():
        return None
    return found[1]


def _refusal_key(grant, path: str, query: str) -> tuple:
    return (grant.credential_id, path, query)


def is_upgrade(scope) -> bool:
    """An HTTP request asking for a protocol upgrade (the ASGI server hands WebSocket ones to us as
    WebSocket scopes: an HTTP scope's upgrade is something else, SPDY for kubectl)."""
    upgrade = app.header(scope, b"upgrade")
    if not upgrade:
        return False
    return "upgrade" in [token.strip().lower() for token in app.header(scope, b"connection").split(",")]


async def refuse_upgrade(scope, receive, send) -> None:
    """Answer a non-WebSocket upgrade (SPDY) with a Kubernetes ``Status``, without reading its body
    (the ASGI server delivers none after an upgrade request) and closing the connection after."""
    grant, instance_id, path = await app.authenticate(scope)
    if not instance_id:
        refusal = Refusal.status_of(404, "NotFound", app.NOT_A_PROXY_ADDRESS)
    elif grant is None:
        refusal = Refusal.status_of(401, "Unauthorized", app.UNAUTHORIZED)
    else:
        query = scope.get("query_string", b"").decode("latin-1")
        refusal = _recalled(_refusal_key(grant, path, query)) or Refusal.status_of(
            400, "BadRequest", SPDY_MESSAGE
        )
        record = await auditing.start(
            grant,
            stream_info(scope["method"], path, query),
            command=app.header(scope, b"kubectl-command"),
            request_id=context.new_request_id(),
        )
        await auditing.done(record, refusal.status)
    await send(
        {
            "type": "http.response.start",
            "status": refusal.status,
            "headers": [
                (b"content-type", refusal.content_type.encode("latin-1")),
                (b"content-length", str(len(refusal.body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": refusal.body})


# ---- the upstream WebSocket --------------------------------------------------------------------------


class HandshakeRefused(Exception):
    def __init__(self, refusal: Refusal):
        super().__init__(refusal.status)
        self.refusal = refusal


def _refusal_trace(captured: dict) -> aiohttp.TraceConfig:
    """Keeps the body of a refused handshake (aiohttp's ``ws_connect`` raises without it): the API
    server's ``Status`` is what the client should read."""

    async def on_request_end(_session, _ctx, params) -> None:
        response = params.response
        if response.status == 101:
            return
        chunks, size = [], 0
        try:
            async for chunk in response.content.iter_any():
                size += len(chunk)
                if size > MAX_REFUSAL_BODY:
                    break
                chunks.append(chunk)
        except (TimeoutError, aiohttp.ClientError, OSError):
            pass
        captured["status"] = response.status
        captured["content_type"] = response.headers.get("Content-Type", "")
        captured["body"] = b"".join(chunks)

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(on_request_end)
    trace.freeze()
    return trace


async def open_upstream(
    scope, *, grant, conn: upstream.Upstream, path: str, query: str, protocols: list[str]
) -> tuple[aiohttp.ClientSession, aiohttp.ClientWebSocketResponse]:
    """The WebSocket to the cluster's API server, on the cluster's connector (its outbound policy,
    TLS and client certificate) with the same headers as a proxied HTTP request; raises
    :class:`HandshakeRefused` with what the client is to be told."""
    captured: dict = {}
    headers = app.upstream_headers(scope, grant, conn)
    origin = app.header(scope, b"origin")
    if origin:  # the API server's watch over a WebSocket refuses a handshake without one
        headers["Origin"] = origin
    session = aiohttp.ClientSession(
        connector=conn.session.connector,
        connector_owner=False,
        trace_configs=[_refusal_trace(captured)],
        **upstream.SESSION_OPTIONS,
    )
    try:
        ws = await asyncio.wait_for(
            session.ws_connect(
                conn.url(path, query),
                protocols=protocols,
                headers=headers,
                server_hostname=conn.server_hostname,
                autoclose=True,
                autoping=True,
                max_msg_size=MAX_MESSAGE,
                decode_text=True,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=CLOSE_TIMEOUT),
            ),
            HANDSHAKE_TIMEOUT,
        )
    except aiohttp.WSServerHandshakeError as exc:
        await session.close()
        status = captured.get("status") or exc.status
        body, content_type = captured.get("body") or b"", captured.get("content_type") or ""
        if status == 101:  # upgraded, but not to what was asked (e.g. no subprotocol kubectl offered)
            raise HandshakeRefused(
                Refusal.status_of(
                    502,
                    "BadGateway",
                    f"The cluster's API server answered the WebSocket upgrade wrongly: {exc.message}.",
                )
            ) from exc
        if not body:
            raise HandshakeRefused(
                Refusal.status_of(
                    status, "Failure", f"The cluster's API server refused the stream (HTTP {status})."
                )
            ) from exc
        raise HandshakeRefused(Refusal(status, body, content_type or "text/plain; charset=utf-8")) from exc
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        await session.close()
        raise HandshakeRefused(
            Refusal.status_of(
                502,
                "BadGateway",
                f"The cluster's API server could not be reached: {exc or type(exc).__name__}",
            )
        ) from exc
    except BaseException:
        await session.close()
        raise
    return session, ws


# ---- the relay -------------------------------------------------------------------------------------


def _sendable(code: int | None) -> int:
    """A close code that may be sent in a close frame (1005, 1006 and 1015 may not)."""
    if code is None:
        return 1000
    if (
        code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014)
        or 3000 <= code <= 4999
    ):
        return code
    return 1000 if code in (1005, 1006) else 1011


class _Ended(Exception):
    """How the relay ended: the code and reason to close the other side with."""

    def __init__(self, side: str, code: int, reason: str = ""):
        super().__init__(side, code, reason)
        self.side, self.code, self.reason = side, code, reason


async def _client_to_upstream(receive, ws: aiohttp.ClientWebSocketResponse) -> None:
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "websocket.receive":
            if message.get("bytes") is not None:
                await ws.send_bytes(message["bytes"])
            elif message.get("text") is not None:
                await ws.send_str(message["text"])
        elif kind == "websocket.disconnect":
            raise _Ended("client", _sendable(message.get("code")), str(message.get("reason") or ""))


async def _upstream_to_client(send, ws: aiohttp.ClientWebSocketResponse) -> None:
    while True:
        message = await ws.receive()
        if message.type == aiohttp.WSMsgType.BINARY:
            await send({"type": "websocket.send", "bytes": message.data})
        elif message.type == aiohttp.WSMsgType.TEXT:
            await send({"type": "websocket.send", "text": message.data})
        elif message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
            code = ws.close_code if ws.close_code is not None else message.data
            reason = message.extra if message.type == aiohttp.WSMsgType.CLOSE else ""
            raise _Ended("upstream", _sendable(code if isinstance(code, int) else None), str(reason or ""))
        elif message.type == aiohttp.WSMsgType.ERROR:
            raise _Ended("upstream", 1011, "kubectl proxy: the cluster's connection failed")


async def _grant_ends(token: str, grant) -> None:
    await app.watch_grant(token, grant)
    raise _Ended("grant", GRANT_ENDED, GRANT_ENDED_REASON)


async def relay(receive, send, ws: aiohttp.ClientWebSocketResponse, *, token: str, grant) -> _Ended:
    """Copy frames both ways until one side closes or the grant ends; close the other side(s)."""
    tasks = [
        asyncio.ensure_future(_client_to_upstream(receive, ws)),
        asyncio.ensure_future(_upstream_to_client(send, ws)),
        asyncio.ensure_future(_grant_ends(token, grant)),
    ]
    ended = _Ended("upstream", 1011, "kubectl proxy: the stream failed")
    try:
        done, _pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            exc = task.exception()
            if isinstance(exc, _Ended):
                ended = exc
                break
            if exc is not None and not isinstance(exc, (aiohttp.ClientError, OSError, ConnectionError)):
                raise exc
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if ended.side != "upstream" and not ws.closed:
        with contextlib.suppress(aiohttp.ClientError, OSError, asyncio.TimeoutError):
            await asyncio.wait_for(ws.close(code=1000 if ended.side == "client" else 1001), CLOSE_TIMEOUT)
    if ended.side != "client":
        with contextlib.suppress(OSError, RuntimeError):  # the client is gone already
            await send({"type": "websocket.close", "code": ended.code, "reason": ended.reason[:120]})
    return ended


# ---- the WebSocket request ---------------------------------------------------------------------------


async def websocket(scope, receive, send) -> None:
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    grant, instance_id, path = await app.authenticate(scope)
    if not instance_id:
        await deny(
            scope,
            send,
            Refusal.status_of(404, "NotFound", app.NOT_A_PROXY_ADDRESS),
        )
        return
    if grant is None:
        await deny(scope, send, Refusal.status_of(401, "Unauthorized", app.UNAUTHORIZED))
        return
    query = scope.get("query_string", b"").decode("latin-1")
    record = await auditing.start(
        grant,
        stream_info("GET", path, query),
        command=app.header(scope, b"kubectl-command"),
        request_id=context.new_request_id(),
    )
    audited = False

    async def refuse(refusal: Refusal) -> None:
        # The status is recorded before the client hears it: whoever reads the audit records after
        # the refusal finds it there.
        nonlocal audited
        audited = True
        await auditing.done(record, refusal.status)
        await deny(scope, send, refusal)

    try:
        protocols, dropped = offered_subprotocols(scope)
        if dropped and not protocols:
            await refuse(
                Refusal.status_of(
                    400,
                    "BadRequest",
                    f"No WebSocket subprotocol of the Kubernetes API was offered (got {', '.join(dropped)}).",
                )
            )
            return
        try:
            conn = await upstream.for_cluster(grant.cluster_id, grant.cluster_key)
            session, ws = await open_upstream(
                scope, grant=grant, conn=conn, path=path, query=query, protocols=protocols
            )
        except upstream.UpstreamRefused as exc:
            await refuse(Refusal.status_of(502, "BadGateway", str(exc)))
            return
        except HandshakeRefused as refused:
            _remember(_refusal_key(grant, path, query), refused.refusal)
            await refuse(refused.refusal)
            return
        try:
            await send({"type": "websocket.accept", "subprotocol": ws.protocol})
            audited = True
            await auditing.done(record, 101)
            await relay(receive, send, ws, token=app.bearer(scope), grant=grant)
        finally:
            if not ws.closed:
                await ws.close()
            await session.close()
    finally:
        if not audited:  # failed before an answer (502: the stream could not be opened)
            await auditing.done(record, 502)
