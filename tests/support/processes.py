"""The platform's own processes, started by a test as production runs them: ``manage.py qcluster``
(a worker cluster) and ``manage.py serve --no-worker`` (a web process), each in a session of its own
(``kill`` takes the whole process group, as a pod's end does) on the test database."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]


def database_url(**query: str) -> str:
    """The test database (pytest-django's ``test_<name>``) as a DATABASE_URL for another process."""
    db = settings.DATABASES["default"]
    credentials = quote(db["USER"], safe="")
    if db.get("PASSWORD"):
        credentials += ":" + quote(db["PASSWORD"], safe="")
    url = f"postgres://{credentials}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    return url + ("?" + "&".join(f"{k}={quote(v)}" for k, v in query.items()) if query else "")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(process: subprocess.Popen, *, grace: float = 30) -> None:
    """SIGTERM the process's group (a graceful stop), then SIGKILL what is left after ``grace`` seconds."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@dataclass
class Process:
    name: str
    process: subprocess.Popen
    log: Path
    port: int = 0

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]

    def alive(self) -> bool:
        return self.process.poll() is None

    def accepting(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL the whole process group (a pod's container ending), and reap the leader."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def member(self, pid: int) -> bool:
        """Whether ``pid`` is this process or one of its group (a cluster's sentinel and workers)."""
        try:
            return os.getpgid(pid) == self.process.pid
        except ProcessLookupError:
            return False


def start(name: str, command: list[str], log_dir: Path, *, port: int = 0, **env: str) -> Process:
    """``manage.py <command>`` under the test settings on the test database (``application_name`` =
    ``name``, to find its connections in ``pg_stat_activity``); ``env`` added to the environment."""
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "paas.settings.test",
        "DATABASE_URL": database_url(application_name=name),
        "PYTHONUNBUFFERED": "1",
        **env,
    }
    environment.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # (no asyncio loop in a worker; keep the guard)
    log = log_dir / f"{name}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "manage.py", *command],
            cwd=ROOT,
            env=environment,
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Process(name=name, process=process, log=log, port=port)


def qcluster(name: str, log_dir: Path, **env: str) -> Process:
    return start(name, ["qcluster"], log_dir, **env)


def serve(name: str, log_dir: Path, **env: str) -> Process:
    port = free_port()
    return start(name, ["serve", f"127.0.0.1:{port}", "--no-worker"], log_dir, port=port, **env)
