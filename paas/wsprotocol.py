"""The ASGI server's WebSocket protocol: uvicorn's ``websockets-sansio`` one, except that the offered
subprotocols are left to the application instead of being parsed as HTTP tokens.

``kubectl port-forward`` (1.31 and later) offers the subprotocol ``SPDY/3.1+portforward.k8s.io``: ``/``
is not a token character (RFC 9110), so the websockets library refuses the whole handshake with a 400
before the application sees it (and kubectl falls back to SPDY, which cannot pass an ASGI server).
uvicorn already gives the application the offered subprotocols (the header split on commas, in the
scope) and answers with the one the application names in ``websocket.accept``; nothing is lost by not
parsing them twice. Served with ``ws="paas.wsprotocol:WebSocketProtocol"`` (``manage.py serve``, the
suite's server).
"""

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


class WebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # The application chooses (websocket.accept's "subprotocol"); the library selects none itself.
        self.conn.process_subprotocol = lambda headers: None
