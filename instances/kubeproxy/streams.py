"""WebSocket requests through the proxy: exec, attach and port-forward (kubectl 1.31 or later speaks
them over WebSockets by default). Built in its own part of the issue; until then refused."""


async def websocket(scope, receive, send) -> None:
    message = await receive()
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.close", "code": 1011, "reason": "not yet"})
