"""The real kubectl for the tests (built from its Go module by tests/toolchain, v1.37.2 like the control
plane), called by its path and never the PATH's, and bubblewrap for the web shell's sandbox.

* fixtures (session, registered by tests/conftest.py): ``kubectl_binary`` and ``bwrap_binary`` (paths, as
  ``str``); the first use builds kubectl (minutes, once per machine) or fetches bwrap (seconds);
* ``run_kubectl(kubeconfig, *args, timeout=60, input=None) -> CompletedProcess`` runs one command and
  waits; ``popen_kubectl(kubeconfig, *args, **popen_kwargs) -> Popen`` starts a long one (``logs -f``,
  ``get -w``, ``port-forward``): stop it with ``stop_kubectl(process)``.

``kubeconfig`` is a path (``str``/``Path`` of an existing file) or the kubeconfig's text (what the API
returns).  kubectl runs with an empty environment except ``HOME`` (a fresh temporary directory, so its
discovery cache is its own and nothing of the developer's ``~/.kube`` leaks in) and ``KUBECONFIG``; no
``PATH``, so it can start no credential plugin or editor.  Output is text (``stdout``/``stderr``).
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import os
import re
import shutil
import subprocess
import tempfile
import threading
import weakref
from pathlib import Path
from typing import Any

import pytest

from tests.support.wait import wait_for

DEFAULT_TIMEOUT = 60.0


@functools.cache
def kubectl_path() -> str:
    """The cached kubectl binary (built on first use; ``TOOLCHAIN_BIN_DIR`` overrides)."""
    from tests.toolchain import build

    return str(build.ensure("kubectl"))


@functools.cache
def bwrap_path() -> str:
    """The cached bwrap binary (Debian's package, fetched on first use; ``PAAS_TEST_BWRAP`` overrides)."""
    from tests.toolchain import bwrap

    return str(bwrap.ensure())


@pytest.fixture(scope="session")
def kubectl_binary() -> str:
    return kubectl_path()


@pytest.fixture(scope="session")
def bwrap_binary() -> str:
    from tests.toolchain import bwrap

    try:
        return bwrap_path()
    except bwrap.Unavailable as exc:
        pytest.fail(str(exc))


def _prepare(kubeconfig: str | os.PathLike[str]) -> tuple[Path, dict[str, str]]:
    """A fresh HOME (holding the kubeconfig when given as text) and kubectl's whole environment."""
    home = Path(tempfile.mkdtemp(prefix="kubectl-home-"))
    text = str(kubeconfig)
    if isinstance(kubeconfig, os.PathLike) or ("\n" not in text and Path(text).is_file()):
        path = Path(kubeconfig).resolve()
    else:
        path = home / "kubeconfig"
        path.write_text(text)
        path.chmod(0o600)
    return home, {"HOME": str(home), "KUBECONFIG": str(path)}


def run_kubectl(
    kubeconfig: str | os.PathLike[str],
    *args: str,
    timeout: float = DEFAULT_TIMEOUT,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``kubectl <args>`` to completion with ``kubeconfig``; never raises on a non-zero exit."""
    home, env = _prepare(kubeconfig)
    try:
        return subprocess.run(
            [kubectl_path(), *args],
            env=env,
            cwd=home,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    finally:
        shutil.rmtree(home, ignore_errors=True)


def popen_kubectl(
    kubeconfig: str | os.PathLike[str], *args: str, **popen_kwargs: Any
) -> subprocess.Popen[str]:
    """Start ``kubectl <args>`` (stdout/stderr piped, text, stdin closed unless given); its temporary HOME
    goes when the process object does."""
    home, env = _prepare(kubeconfig)
    options: dict[str, Any] = {
        "stdin": subprocess.DEVNULL,
        "stdout": subprocess.PIPE,
        "stderr": subprocess.PIPE,
        "text": True,
        "cwd": home,
    }
    options.update(popen_kwargs)
    options["env"] = env
    try:
        process = subprocess.Popen([kubectl_path(), *args], **options)
    except BaseException:
        shutil.rmtree(home, ignore_errors=True)
        raise
    weakref.finalize(process, shutil.rmtree, home, True)
    return process


def stop_kubectl(process: subprocess.Popen[str], timeout: float = 10.0) -> tuple[str, str]:
    """Terminate a kubectl started by ``popen_kubectl`` (SIGKILL after ``timeout``); returns what it wrote
    (``stdout``, ``stderr``) that was not read yet."""
    if process.poll() is None:
        process.terminate()
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    with contextlib.suppress(OSError):
        for stream in (process.stdout, process.stderr, process.stdin):
            if stream is not None:
                stream.close()
    return out or "", err or ""


def output_lines(process: subprocess.Popen[str]) -> list[str]:
    """The lines a long-running kubectl prints on stdout, stripped, as they come (a thread reads them:
    the test never blocks on the pipe)."""
    lines: list[str] = []

    def read() -> None:
        for line in iter(process.stdout.readline, ""):
            lines.append(line.strip())

    threading.Thread(target=read, daemon=True).start()
    return lines


def wait_line(lines: list[str], pattern: str, what: str, timeout: float = 30) -> re.Match[str]:
    """Poll ``lines`` (of :func:`output_lines`) until one matches ``pattern``; the match."""

    def probe() -> re.Match[str] | None:
        for line in list(lines):
            if match := re.search(pattern, line):
                return match
        return None

    try:
        return wait_for(probe, timeout, 0.05, what=what)
    except AssertionError as error:
        raise AssertionError(f"{error}; kubectl printed: {lines!r}") from error


def get_through_forward(port: int, body: bytes, *, times: int = 2) -> None:
    """``GET /`` on a ``kubectl port-forward``'s local port ``times`` times (a connection each), each
    answered 200 with ``body`` by the pod-side server (``tests.localkube.helpers.pod_port_server``)."""
    for _ in range(times):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        try:
            connection.request("GET", "/")
            response = connection.getresponse()
            assert (response.status, response.read()) == (200, body)
        finally:
            connection.close()
