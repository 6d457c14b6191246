"""The real ASGI server (uvicorn, as ``make run`` and production serve it), started by the test.

pytest-django's ``live_server`` is a WSGI server and cannot serve WebSockets or the proxy's streams, so
the browser and kubectl-proxy tests use :func:`start` instead: uvicorn on a free loopback port, in a
thread of the test process (it sees the test database and the settings the test changed), with the
same application, event loop, HTTP parser and WebSocket protocol as production.
"""

import asyncio
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

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"


def _free_socket(host: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    return sock


@contextmanager
def start(host: str = "127.0.0.1") -> Iterator[AsgiServer]:
    """uvicorn serving ``paas.asgi.application`` until the block ends (then shut down gracefully)."""
    from paas.asgi import application

    sock = _free_socket(host)
    config = uvicorn.Config(
        application,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        lifespan="on",
        log_level="warning",
        timeout_graceful_shutdown=5,
        server_header=False,
    )
    server = uvicorn.Server(config)

    def run() -> None:
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
        yield AsgiServer(host=host, port=sock.getsockname()[1], server=server, thread=thread)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


_server: AsgiServer | None = None
_server_context = None


def session_server() -> AsgiServer:
    """One server for the whole session (started on first use, stopped at exit)."""
    global _server, _server_context
    if _server is None:
        import atexit

        _server_context = start()
        _server = _server_context.__enter__()
        atexit.register(lambda: _server_context.__exit__(None, None, None))
    return _server


@contextmanager
def sharing_the_test_connection() -> Iterator[None]:
    """Let the server's threads use the test's own database connection, inside its transaction.

    A test on pytest-django's ``db`` fixture runs in a transaction that is rolled back at its end, so a
    server with connections of its own would not see the test's rows. As Django's own live server does
    for an in-memory database, every thread then shares the test's connection (psycopg serialises its
    use), and Django's per-request closing of that connection is suspended, since it would end the
    test's transaction. Tests on ``transactional_db`` (the browser tests) do not need it.
    """
    from django.db import connections

    conn = connections["default"]
    conn.ensure_connection()
    conn.inc_thread_sharing()
    saved = connections._connections

    class Shared:
        default = conn

    connections._connections = Shared()
    # Django closes "obsolete" connections at each request's start and end (CONN_MAX_AGE 0): on the
    # lent connection that would end the test's transaction. (The test client re-connects those
    # signals after each of its requests, so the method itself is suspended, not the signals.)
    conn.close_if_unusable_or_obsolete = lambda: None
    try:
        yield
    finally:
        del conn.close_if_unusable_or_obsolete
        connections._connections = saved
        conn.dec_thread_sharing()
