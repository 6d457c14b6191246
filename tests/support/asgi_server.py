"""The real ASGI server (uvicorn, as ``make run`` and production serve it), started by the test.

pytest-django's ``live_server`` is a WSGI server and cannot serve WebSockets or the proxy's streams, so
the browser and kubectl-proxy tests use :func:`start` instead: uvicorn on a free loopback port, in a
thread of the test process (it sees the test database and the settings the test changed), with the
same application, event loop, HTTP parser and WebSocket protocol as production.
"""

import asyncio
import contextvars
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn

from tests.support.wait import wait_for


@dataclass
class AsgiServer:
    host: str
    port: int
    server: uvicorn.Server
    thread: threading.Thread
    ca_file: str = ""  # served over TLS: the CA that issued its certificate (a client trusts this)

    @property
    def url(self) -> str:
        return f"{'https' if self.ca_file else 'http'}://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"{'wss' if self.ca_file else 'ws'}://{self.host}:{self.port}"


def _free_socket(host: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    return sock


def _tls_files(host: str) -> tuple[str, str, str]:
    """(CA file, certificate file, key file) for serving ``host`` over TLS (a throw-away CA)."""
    import tempfile
    from pathlib import Path

    from tests.localkube.pki import CertificateAuthority

    directory = Path(tempfile.mkdtemp(prefix="asgi-tls-"))
    ca = CertificateAuthority(directory, "test ASGI server CA")
    pair = ca.issue("server", host, dns_names=("localhost",), ip_addresses=(host,))
    return str(ca.pair.cert), str(pair.cert), str(pair.key)


@contextmanager
def start(host: str = "127.0.0.1", *, tls: bool = False) -> Iterator[AsgiServer]:
    """uvicorn serving ``paas.asgi.application`` until the block ends (then shut down gracefully);
    ``tls``: over HTTPS with a certificate of a throw-away CA (``.ca_file``), as kubectl needs: it sends
    no credential to a plain-HTTP server."""
    from paas.asgi import application

    sock = _free_socket(host)
    ca_file, ssl = "", {}
    if tls:
        ca_file, cert, key = _tls_files(host)
        ssl = {"ssl_certfile": cert, "ssl_keyfile": key}
    config = uvicorn.Config(
        application,
        loop="uvloop",
        http="httptools",
        ws="paas.wsprotocol:WebSocketProtocol",  # websockets-sansio, subprotocols left to the app
        lifespan="on",
        log_level="warning",
        timeout_graceful_shutdown=5,
        server_header=False,
        **ssl,
    )
    server = uvicorn.Server(config)

    def run() -> None:
        SERVING.set(True)  # (copied into every task and worker thread of the server: see below)
        asyncio.run(server.serve(sockets=[sock]))

    thread = threading.Thread(target=run, name="asgi-server", daemon=True)
    thread.start()
    wait_for(
        lambda: server.started or not thread.is_alive(),
        timeout=30,
        interval=0.02,
        what="the ASGI server started",
    )
    if not server.started:
        raise RuntimeError("the ASGI server did not start")
    try:
        yield AsgiServer(host=host, port=sock.getsockname()[1], server=server, thread=thread, ca_file=ca_file)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


#: Set in the server's thread: asyncio copies it into every task, asgiref into the threads synchronous
#: code runs on, so "is this the server's code?" has an answer in any thread.
SERVING: contextvars.ContextVar[bool] = contextvars.ContextVar("asgi_server_serving", default=False)

_servers: dict[bool, tuple[AsgiServer, object]] = {}


def session_server(*, tls: bool = False) -> AsgiServer:
    """One server for the whole session (started on first use; :func:`stop_all` at the session's end,
    before the test database goes); ``tls``: another one, over HTTPS."""
    if tls not in _servers:
        context = start(tls=tls)
        _servers[tls] = (context.__enter__(), context)
    return _servers[tls][0]


def stop_all() -> None:
    """Stop the session's servers (their shutdown flushes what the proxy left for the audit trail)."""
    while _servers:
        _, (_server, context) = _servers.popitem()
        context.__exit__(None, None, None)


@contextmanager
def sharing_the_test_connection() -> Iterator[None]:
    """Let the server use the test's own database connection, inside its transaction.

    A test on pytest-django's ``db`` fixture runs in a transaction that is rolled back at its end, so a
    server with connections of its own would not see the test's rows. As Django's own live server does
    for an in-memory database, the server then shares the test's connection (psycopg serialises its
    use), and Django's per-request closing of that connection is suspended, since it would end the
    test's transaction. Only code carrying the :data:`SERVING` context variable gets it: the server's
    (its event loop's tasks and the threads they run synchronous code on), the test's own, and what
    the test runs with its context copied (its event loops, ``sync_to_async``); a plain thread the
    test starts (a deployer's pool) keeps a connection of its own, as before.
    Tests on ``transactional_db`` (the browser tests) need none of this.
    """
    from django.db import connections

    conn = connections["default"]
    conn.ensure_connection()
    conn.inc_thread_sharing()
    saved = connections._connections
    owner = threading.get_ident()

    class Lent:
        def __getattr__(self, alias):
            if alias == "default" and (SERVING.get() or threading.get_ident() == owner):
                return conn
            return getattr(saved, alias)

        def __setattr__(self, alias, value):
            setattr(saved, alias, value)

        def __delattr__(self, alias):
            delattr(saved, alias)

    connections._connections = Lent()
    serving = SERVING.set(True)  # (the test's context: its event loops and their threads share too)
    # Django closes "obsolete" connections at each request's start and end (CONN_MAX_AGE 0): on the
    # lent connection that would end the test's transaction. (The test client re-connects those
    # signals after each of its requests, so the method itself is suspended, not the signals.)
    conn.close_if_unusable_or_obsolete = lambda: None
    try:
        yield
    finally:
        del conn.close_if_unusable_or_obsolete
        SERVING.reset(serving)
        connections._connections = saved
        conn.dec_thread_sharing()
