"""A small threaded HTTP server on 127.0.0.1 for the test doubles of outside services.

The Git server, the Helm chart repository and the registry's token server of the suite are real
HTTP servers on a free loopback port, each in a thread of the test process.  This module holds
what they share: start (the port is bound before ``start()`` returns, then polled ready with a real
request), stop, optional HTTP basic auth, a log of the requests seen (method, path, user, status),
and an ``outage`` switch that answers every request with an error, for the tests of a repository
that cannot be reached.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import secrets
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.support.wait import wait_for


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str
    user: str | None  # the basic-auth user that was accepted, None when anonymous or refused
    status: int


class LoopbackHandler(BaseHTTPRequestHandler):
    """Base handler: subclasses implement ``handle_request(user)``; auth and the log happen here."""

    server: LoopbackServer  # type: ignore[assignment]

    def log_message(self, format: str, *args) -> None:
        pass  # keep the test output clean; the server keeps its own log (``requests_seen``)

    def send_response(self, code: int, message: str | None = None) -> None:
        self._status = code
        super().send_response(code, message)

    def _dispatch(self) -> None:
        owner = self.server.owner
        self._status = 0
        user = None
        try:
            if owner.outage is not None:
                self.reply(owner.outage, b"service unavailable (test outage)\n")
                return
            if owner.credentials is not None:
                user = owner.authenticate(self.headers.get("Authorization"))
                if user is None:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", f'Basic realm="{owner.realm}"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
            self.handle_request(user)
        finally:
            owner.record(SeenRequest(self.command, self.path, user, self._status))

    do_GET = do_HEAD = do_POST = do_PUT = _dispatch

    def handle_request(self, user: str | None) -> None:
        raise NotImplementedError

    def reply(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def read_body(self) -> bytes:
        """The request body, whether sent with a Content-Length or chunked (git sends both)."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""


class LoopbackServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: BackgroundHTTPServer, handler: type[LoopbackHandler]):
        self.owner = owner
        super().__init__(("127.0.0.1", 0), handler)


class BackgroundHTTPServer:
    """A server in a thread.  ``credentials=(user, password)`` requires HTTP basic auth."""

    handler: type[LoopbackHandler] = LoopbackHandler
    realm = "test"
    ready_path = "/"

    def __init__(self, *, credentials: tuple[str, str] | None = None):
        self.credentials = credentials
        self.outage: int | None = None
        self.requests_seen: list[SeenRequest] = []
        self._lock = threading.Lock()
        self._server: LoopbackServer | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle ---------------------------------------------------------------------------
    def start(self) -> BackgroundHTTPServer:
        self._server = LoopbackServer(self, self.handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}:{self.port}",
            daemon=True,
        )
        self._thread.start()
        wait_for(self._answers, timeout=10, interval=0.05, what=f"{type(self).__name__} on {self.url}")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=10)
            self._server = None

    def __enter__(self) -> BackgroundHTTPServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _answers(self) -> bool:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            connection.request("HEAD", self.ready_path)
            return connection.getresponse().status > 0
        except OSError:
            return False
        finally:
            connection.close()

    # -- addresses ----------------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- auth and log -------------------------------------------------------------------------
    def authenticate(self, header: str | None) -> str | None:
        """The user of a valid ``Authorization: Basic`` header, else None."""
        return check_basic_auth(header, {self.credentials[0]: self.credentials[1]})

    def record(self, seen: SeenRequest) -> None:
        with self._lock:
            self.requests_seen.append(seen)

    def set_outage(self, status: int | None) -> None:
        """Answer every request with ``status`` (e.g. 503) until called with None."""
        self.outage = status


def check_basic_auth(header: str | None, users: dict[str, str]) -> str | None:
    """The user named by a valid basic ``Authorization`` header (constant-time compare), else None."""
    if not header or not header.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    expected = users.get(user)
    if expected is None or not secrets.compare_digest(password.encode(), expected.encode()):
        return None
    return user
