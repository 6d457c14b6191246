"""Receivers for the audit-streaming tests: a real rsyslogd over TLS and an HTTPS receiver in a thread.

* :class:`Rsyslog`: Debian's rsyslogd (tests/toolchain/rsyslog.py) with its own configuration, run as a
  child process: ``imtcp`` on a free 127.0.0.1 port with the GnuTLS stream driver (TLS only, server
  certificate from the test CA), every message written raw, one a line, to ``received.log``. One per
  session (the ``rsyslog_receiver`` fixture); a test tells its messages apart by their chain.
* :class:`HttpsReceiver`: a threaded HTTPS server on a free 127.0.0.1 port (same CA) keeping every POST
  (headers, body). It can be stopped and started again on the same port (a receiver that is down for a
  while), and told to read a request and then drop the connection without answering
  (``drop_after_read``), which makes the sender send the batch again.

Certificates come from tests/localkube/pki.py (``siem_pki``: a CA and a serving certificate for
127.0.0.1 and localhost).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import ssl
import subprocess
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.localkube.pki import CertificateAuthority, CertPair
from tests.support.wait import wait_for


@dataclass(frozen=True)
class Pki:
    ca: CertPair
    server: CertPair
    other_ca: CertPair  # a CA the receivers' certificates do not chain to

    @property
    def ca_pem(self) -> str:
        return self.ca.cert.read_text()


def make_pki(directory: Path) -> Pki:
    ca = CertificateAuthority(directory, "siem test CA")
    server = ca.issue("server", "siem", dns_names=("localhost",), ip_addresses=("127.0.0.1",))
    other = CertificateAuthority(directory, "unrelated CA", filename="other-ca")
    return Pki(ca=ca.pair, server=server, other_ca=other.pair)


# --- rsyslog ------------------------------------------------------------------------------------------

_SD_SEQ = re.compile(r'\[gpupaas@32473 chain="(\d+)" seq="(\d+)"')

CONFIG = """\
global(workDirectory="{work}" maxMessageSize="256k"
  DefaultNetstreamDriverCAFile="{ca}"
  DefaultNetstreamDriverCertFile="{cert}"
  DefaultNetstreamDriverKeyFile="{key}")
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")
input(type="imtcp" port="{port}" listenPortFileName="{work}/port" ruleset="received")
template(name="raw" type="string" string="%rawmsg%\\n")
ruleset(name="received") {{
  action(type="omfile" file="{work}/received.log" template="raw" flushOnTXEnd="on" asyncWriting="off")
}}
"""


class Rsyslog:
    """rsyslogd from ``tree`` (tests/toolchain/rsyslog.py) serving TLS syslog on 127.0.0.1."""

    def __init__(self, tree: Path, directory: Path, pki: Pki):
        from tests.toolchain import rsyslog

        self.tree, self.work, self.pki = tree, directory, pki
        self._toolchain = rsyslog
        self.process: subprocess.Popen | None = None
        self.port = 0

    @property
    def log(self) -> Path:
        return self.work / "received.log"

    @property
    def url(self) -> str:
        return f"tls://127.0.0.1:{self.port}"

    def start(self) -> Rsyslog:
        config = self.work / "rsyslog.conf"
        config.write_text(
            CONFIG.format(
                work=self.work,
                port=self.port,  # 0 the first time; the same port when started again
                ca=self.pki.ca.cert,
                cert=self.pki.server.cert,
                key=self.pki.server.key,
            )
        )
        (self.work / "port").unlink(missing_ok=True)
        env = {**os.environ, "LD_LIBRARY_PATH": str(self._toolchain.library_dir(self.tree))}
        command = [
            str(self._toolchain.rsyslogd(self.tree)),
            "-n",
            "-f",
            str(config),
            "-i",
            str(self.work / "rsyslogd.pid"),
            "-M",
            str(self._toolchain.module_dir(self.tree)),
        ]
        stderr = open(self.work / "rsyslogd.out", "wb")  # noqa: SIM115 (the child keeps it)
        self.process = subprocess.Popen(command, env=env, stdout=stderr, stderr=subprocess.STDOUT)
        stderr.close()
        port_file = self.work / "port"  # written only when rsyslogd chose the port (port 0)

        def listening() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"rsyslogd exited: {(self.work / 'rsyslogd.out').read_text()[-2000:]}")
            if self.port:
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                except OSError:
                    return False
                return True
            text = port_file.read_text().strip() if port_file.exists() else ""
            return text.isdigit() and int(text) > 0

        wait_for(listening, timeout=20, interval=0.05, what="rsyslogd listening")
        self.port = self.port or int(port_file.read_text().strip())
        return self

    def stop(self, *, crash: bool = False) -> None:
        """Stop it (SIGTERM), or kill it at once as a crash would (``crash``)."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL if crash else signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None

    def _lines(self) -> list[str]:
        if not self.log.exists():
            return []
        return self.log.read_text(encoding="utf-8", errors="replace").splitlines()

    def mark(self) -> int:
        """Where the log ends now: a test reads only what arrives after (the receiver is the session's)."""
        return len(self._lines())

    def received(self, chain: int, *, after: int = 0) -> list[tuple[int, str]]:
        """(seq, raw message) of every message received for ``chain`` after ``mark``, in arrival order."""
        found = []
        for line in self._lines()[after:]:
            match = _SD_SEQ.search(line)
            if match and int(match.group(1)) == chain:
                found.append((int(match.group(2)), line))
        return found


# --- HTTPS ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json_events(self) -> list[dict]:
        """The events of a webhook body, or of a Splunk HEC batch (concatenated objects)."""
        text = self.body.decode()
        if text.startswith('{"events":'):
            return json.loads(text)["events"]
        return [json.loads(line)["event"] for line in text.splitlines() if line.strip()]


class _Handler(BaseHTTPRequestHandler):
    server: _Server  # type: ignore[assignment]

    def log_message(self, format: str, *args) -> None:
        pass

    def do_POST(self) -> None:
        owner = self.server.owner
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with owner.lock:
            owner.attempts += 1
            drop = owner.drop_after_read > 0
            if drop:
                owner.drop_after_read -= 1
            owner.requests.append(Received(self.path, dict(self.headers.items()), body))
        if drop:  # read it all, then "crash" before answering: the sender must send it again
            self.close_connection = True
            self.connection.shutdown(2)
            return
        status = owner.status
        self.send_response(status)
        reply = b'{"text":"Success","code":0}' if status < 300 else b"not now"
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, owner: HttpsReceiver, port: int):
        self.owner = owner
        super().__init__(("127.0.0.1", port), _Handler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(owner.pki.server.cert, owner.pki.server.key)
        self.socket = context.wrap_socket(self.socket, server_side=True)


class HttpsReceiver:
    """An HTTPS receiver of webhook / Splunk HEC POSTs; ``status`` is what it answers."""

    def __init__(self, pki: Pki):
        self.pki = pki
        self.port = 0
        self.status = 200
        self.drop_after_read = 0
        self.attempts = 0
        self.requests: list[Received] = []
        self.lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def url(self, path: str = "/audit") -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def start(self) -> HttpsReceiver:
        self._server = _Server(self, self.port)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Down: the port refuses connections until :meth:`start` (same port)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=10)
            self._server = None

    def events(self) -> list[dict]:
        """Every event received, in arrival order (re-sent ones as often as they came)."""
        with self.lock:
            accepted = list(self.requests)
        return [event for request in accepted for event in request.json_events()]


@pytest.fixture(scope="session")
def siem_pki(tmp_path_factory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("siem-pki"))


@pytest.fixture(scope="session")
def rsyslog_receiver(siem_pki, tmp_path_factory):
    """One rsyslogd over TLS for the session (Debian's package, fetched once and cached)."""
    from tests.toolchain import rsyslog

    try:
        tree = rsyslog.ensure()
    except rsyslog.Unavailable as exc:
        pytest.fail(str(exc))
    receiver = Rsyslog(tree, tmp_path_factory.mktemp("rsyslog"), siem_pki).start()
    yield receiver
    receiver.stop()


@pytest.fixture
def https_receiver(siem_pki):
    receiver = HttpsReceiver(siem_pki).start()
    yield receiver
    receiver.stop()
