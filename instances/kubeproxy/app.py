"""The ASGI application mounted at ``/k8s/``: the Kubernetes API, proxied.

``/k8s/instances/<id>/<Kubernetes API path>``. Each request is authenticated by its kubeconfig
credential and checked against the instance permission at that moment (:func:`credentials.grant_for`),
recorded for the audit trail (:mod:`auditing`), and forwarded to the cluster's API server as the
platform's identity impersonating the user's per-instance ServiceAccount. Responses stream (watch,
``logs -f``); a stream is re-checked while it lasts and closed when its grant ends (credential revoked
or expired, collaborator removed). WebSocket requests (exec, attach, port-forward) are in
:mod:`streams`.
"""

import asyncio
import contextlib
import json
import re
import time

import aiohttp

from instances.kubeproxy import auditing, credentials, requestinfo, upstream
from instances.kubeproxy.db import in_thread
from paas import context

PATH = re.compile(r"^/k8s/instances/(?P<id>[0-9]{1,18})(?P<rest>/.*)?$")
MAX_BODY = 16 * 1024 * 1024  # the API server takes up to 3 MiB; a little room, and never unbounded
RECHECK_SECONDS = 30.0  # a long-lived stream's grant is checked again this often
WHOLE_BODY_MAX = 1024 * 1024  # a response with a Content-Length up to this is read whole, not streamed

# Request headers passed to the API server (everything else is dropped: the client's Authorization,
# any Impersonate-* or X-Remote-* header, cookies, hop-by-hop headers).
FORWARDED_REQUEST_HEADERS = frozenset(
    {
        "accept",
        "accept-encoding",
        "content-type",
        "content-encoding",
        "user-agent",
        "kubectl-command",
        "kubectl-session",
        "x-stream-protocol-version",
        "if-match",
        "if-none-match",
    }
)
DROPPED_RESPONSE_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "proxy-connection",
        "upgrade",
        "te",
        "trailer",
        "set-cookie",
        "www-authenticate",
        "content-length",
    }
)


NOT_A_PROXY_ADDRESS = "Not a kubectl proxy address: /k8s/instances/<id>/."
UNAUTHORIZED = (
    "Unauthorized: the credential is missing, expired or revoked, or no longer grants this instance. "
    "Download a new kubeconfig."
)


def status_body(code: int, reason: str, message: str) -> bytes:
    """A Kubernetes ``Status`` object, so kubectl prints the message as it would the API server's."""
    return json.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        }
    ).encode()


async def send_status(send, code: int, reason: str, message: str) -> None:
    body = status_body(code, reason, message)
    await send(
        {
            "type": "http.response.start",
            "status": code,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def header(scope, name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return ""


def bearer(scope) -> str:
    value = header(scope, b"authorization")
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


# A Kubernetes API path never has these; decoded from %2F, %3F, %23 or written out, they would make the
# path forwarded (resolved by the HTTP client) differ from the path audited.
UNCLEAN_PATH = re.compile(r"//|/\.{1,2}(/|$)|[?#\\\x00-\x1f\x7f]")


def target(scope) -> tuple[int, str] | None:
    path = scope.get("path", "")
    match = PATH.match(path)
    if not match or UNCLEAN_PATH.search(path):
        return None
    return int(match["id"]), match["rest"] or "/"


async def authenticate(scope) -> tuple[credentials.Grant | None, int, str]:
    """(the grant, instance id, Kubernetes path) of a request, or (None, ...)."""
    found = target(scope)
    if found is None:
        return None, 0, ""
    instance_id, path = found
    token = bearer(scope)
    if not token:
        return None, instance_id, path
    grant = await in_thread(credentials.grant_for)(token=token, instance_id=instance_id)
    return grant, instance_id, path


def upstream_headers(scope, grant: credentials.Grant, conn: upstream.Upstream) -> dict:
    headers = {}
    for key, value in scope.get("headers", ()):
        name = key.decode("latin-1").lower()
        if name in FORWARDED_REQUEST_HEADERS:
            headers[name] = value.decode("latin-1")
    headers.update(conn.auth_headers)
    headers["Impersonate-User"] = grant.impersonate_user
    return headers


async def still_granted(token: str, grant: credentials.Grant) -> bool:
    return await in_thread(credentials.grant_for)(token=token, instance_id=grant.instance_id) is not None


async def watch_grant(token: str, grant: credentials.Grant) -> None:
    """Return when the grant ends: its credential expires, or a re-check refuses it."""
    while True:
        remaining = grant.expires_at.timestamp() - time.time()
        if remaining <= 0:
            return
        await asyncio.sleep(min(RECHECK_SECONDS, remaining))
        if not await still_granted(token, grant):
            return


async def read_body(receive) -> bytes | None:
    """The request body, or None if it is larger than :data:`MAX_BODY`."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def http(scope, receive, send) -> None:
    grant, instance_id, path = await authenticate(scope)
    if not instance_id:
        await send_status(send, 404, "NotFound", NOT_A_PROXY_ADDRESS)
        return
    if grant is None:
        await send_status(send, 401, "Unauthorized", UNAUTHORIZED)
        return
    query = scope.get("query_string", b"").decode("latin-1")
    info = requestinfo.parse(scope["method"], path, query)
    request_id = context.new_request_id()
    record = await auditing.start(
        grant, info, command=header(scope, b"kubectl-command"), request_id=request_id
    )
    code = 502
    try:
        body = await read_body(receive)
        if body is None:
            code = 413
            await send_status(send, 413, "RequestEntityTooLarge", "The request body is too large.")
            return
        try:
            conn = await upstream.for_cluster(grant.cluster_id, grant.cluster_key)
        except upstream.UpstreamRefused as exc:
            await send_status(send, 502, "BadGateway", str(exc))
            return
        code = await forward(
            scope,
            receive,
            send,
            grant=grant,
            conn=conn,
            path=path,
            query=query,
            body=body,
            request_id=request_id,
        )
    finally:
        await auditing.done(record, code)


async def forward(scope, receive, send, *, grant, conn, path, query, body, request_id) -> int:
    headers = upstream_headers(scope, grant, conn)
    try:
        response = await conn.session.request(
            scope["method"],
            conn.url(path, query),
            data=body or None,
            headers=headers,
            allow_redirects=False,
            server_hostname=conn.server_hostname,
        )
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        await send_status(send, 502, "BadGateway", f"The cluster's API server could not be reached: {exc}")
        return 502
    async with response:
        out_headers = [
            (k.lower(), v)
            for k, v in response.raw_headers
            if k.decode("latin-1").lower() not in DROPPED_RESPONSE_HEADERS
        ]
        out_headers.append((b"x-request-id", request_id.encode()))
        length = response.content_length
        if length is not None and length <= WHOLE_BODY_MAX and scope["method"] != "HEAD":
            # A bounded answer (a get, a small list, a write's object): read whole, sent in one message
            # with its length; no stream to watch, so no grant re-check or disconnect tasks either.
            try:
                content = await response.read()
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                await send_status(send, 502, "BadGateway", f"The cluster's API server's answer failed: {exc}")
                return 502
            out_headers.append((b"content-length", str(len(content)).encode()))
            await send({"type": "http.response.start", "status": response.status, "headers": out_headers})
            await send({"type": "http.response.body", "body": content})
            return response.status
        await send({"type": "http.response.start", "status": response.status, "headers": out_headers})
        await stream_body(receive, send, response, token=bearer(scope), grant=grant)
        return response.status


async def stream_body(receive, send, response, *, token: str, grant) -> None:
    """Copy the response body as it comes, until it ends, the client goes, or the grant ends."""

    async def pump() -> None:
        async for chunk in response.content.iter_any():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})

    async def client_gone() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    tasks = [
        asyncio.ensure_future(pump()),
        asyncio.ensure_future(client_gone()),
        asyncio.ensure_future(watch_grant(token, grant)),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    with contextlib.suppress(OSError):  # the client went already
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def application(scope, receive, send) -> None:
    if scope["type"] == "http":
        if header(scope, b"upgrade"):  # SPDY (kubectl before 1.31, or its fallback) cannot pass ASGI
            from instances.kubeproxy import streams

            if streams.is_upgrade(scope):
                await streams.refuse_upgrade(scope, receive, send)
                return
        await http(scope, receive, send)
    elif scope["type"] == "websocket":
        from instances.kubeproxy import streams

        await streams.websocket(scope, receive, send)
