"""A small TCP load balancer for a test (what a Kubernetes Service or an ingress does in front of the web
replicas): asyncio, in a thread of the test process, on a free loopback port.

Each client connection goes to the next backend in turn (round robin); a backend that refuses the
connection (its process is gone) is skipped and the next one is tried, so only the connections that
were open on a backend when it died are lost. Bytes are piped both ways; a reset on one side resets
the other (the client sees its request in flight fail, as it would behind a real balancer).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import threading
from collections import Counter
from collections.abc import Iterable


class LoadBalancer:
    def __init__(self, backends: Iterable[tuple[str, int]], host: str = "127.0.0.1"):
        self.backends = list(backends)
        self.host = host
        self.port = 0
        #: connections handed to each backend, and connections each backend refused
        self.forwarded: Counter = Counter()
        self.refused: Counter = Counter()
        self.unserved = 0  # connections no backend accepted (closed at once)
        self._turn = itertools.cycle(range(len(self.backends)))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._connections: set[asyncio.Task] = set()  # (asyncio holds tasks weakly: a pending one is kept)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> LoadBalancer:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        self.port = sock.getsockname()[1]
        self._thread = threading.Thread(target=self._run, args=(sock,), name="loadbalancer", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the load balancer did not start")
        return self

    def __exit__(self, *exc) -> None:
        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)

    async def _close(self) -> None:
        """Stop accepting, and cut the connections still open (their clients see them reset)."""
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    def _run(self, sock: socket.socket) -> None:
        self._loop = asyncio.new_event_loop()
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, sock=sock, backlog=512)
        )
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._server.close()
            self._loop.close()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        first = next(self._turn)  # this connection's turn; on a refusal, the next backends after it
        for offset in range(len(self.backends)):
            index = (first + offset) % len(self.backends)
            try:
                connection = await asyncio.wait_for(asyncio.open_connection(*self.backends[index]), 5)
            except (OSError, TimeoutError):
                self.refused[index] += 1
                continue
            self.forwarded[index] += 1
            return connection
        return None

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._connections.add(task)
        try:
            await self._forward(client_reader, client_writer)
        except asyncio.CancelledError:  # closing: the connection is cut (and the task ends quietly)
            client_writer.transport.abort()
        finally:
            self._connections.discard(task)

    async def _forward(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        upstream = await self._connect()
        if upstream is None:
            self.unserved += 1
            client_writer.transport.abort()
            return
        backend_reader, backend_writer = upstream
        try:
            await asyncio.gather(
                _pipe(client_reader, backend_writer, client_writer),
                _pipe(backend_reader, client_writer, backend_writer),
            )
        finally:
            for writer in (client_writer, backend_writer):
                writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, source: asyncio.StreamWriter):
    """Copy ``reader`` to ``writer`` until EOF (then half-close ``writer``); on a reset, reset both."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.transport.abort()
        source.transport.abort()
        return
    with contextlib.suppress(ConnectionError, OSError):
        await writer.drain()
