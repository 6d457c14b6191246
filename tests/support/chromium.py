"""Chromium for the browser tests: Debian's package, installed by the project's own files when missing.

Playwright drives this Chromium through ``executable_path``; its own browser downloads
(``playwright install``) are never used.

``PAAS_TEST_CHROMIUM`` set in the environment wins (a developer's Chromium elsewhere). Otherwise
``/usr/bin/chromium`` is used when it runs (``--version``). When it does not and we are root (CI on a
fresh Debian machine), the Debian package is installed with apt-get: under a file lock so that two
concurrent runs do not race, retried once (mirrors and apt's own locks fail transiently). As another
user, a clear message says what to install. ``--no-install-recommends`` still brings a font
(libfontconfig1 -> fontconfig-config -> fonts-dejavu-core), so screenshots show text.

``python -m tests.support.chromium`` prints the path (installing first if needed).
"""

import contextlib
import fcntl
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ENV = "PAAS_TEST_CHROMIUM"
DEBIAN_CHROMIUM = "/usr/bin/chromium"
LOCK_PATH = Path(tempfile.gettempdir()) / "gpupaas-chromium-install.lock"
# apt-get waits up to two minutes for dpkg's lock (another apt run, unattended upgrades) before failing.
INSTALL_COMMANDS = (
    ["apt-get", "update"],
    ["apt-get", "-o", "DPkg::Lock::Timeout=120", "install", "-y", "--no-install-recommends", "chromium"],
)
RETRY_DELAY_SECONDS = 5.0
WHAT_TO_INSTALL = (
    "Install Debian's package (`sudo apt-get install --no-install-recommends chromium`), "
    f"or set {ENV}=/path/to/chromium."
)


class ChromiumUnavailable(RuntimeError):
    """No working Chromium, and we could not (or may not) install one. The message says what to do."""


def probe(path: str) -> tuple[bool, str]:
    """``(True, version line)`` when ``path --version`` runs; ``(False, why not)`` otherwise."""
    try:
        done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60, check=False)
    except FileNotFoundError:
        return False, "not found"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    line = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    if done.returncode == 0 and "chrom" in line.lower():
        return True, line
    return False, f"exit status {done.returncode}: {(done.stderr or done.stdout).strip()[-500:]}"


def ensure() -> str:
    """The path of a Chromium that runs, installing Debian's package first when needed (as root)."""
    override = os.environ.get(ENV)
    if override:
        works, detail = probe(override)
        if not works:
            raise ChromiumUnavailable(f"{ENV}={override} does not run ({detail}). {WHAT_TO_INSTALL}")
        return override
    works, detail = probe(DEBIAN_CHROMIUM)
    if works:
        return DEBIAN_CHROMIUM
    if not _is_root():
        raise ChromiumUnavailable(
            f"The browser tests need Chromium; {DEBIAN_CHROMIUM} does not run ({detail}). {WHAT_TO_INSTALL}"
        )
    with _install_lock():
        works, detail = probe(DEBIAN_CHROMIUM)  # another run may have installed it while we waited
        if not works:
            _install()
            works, detail = probe(DEBIAN_CHROMIUM)
    if not works:
        raise ChromiumUnavailable(
            f"apt-get installed Debian's chromium package but {DEBIAN_CHROMIUM} still does not run "
            f"({detail})."
        )
    return DEBIAN_CHROMIUM


def _is_root() -> bool:
    return os.geteuid() == 0


@contextlib.contextmanager
def _install_lock() -> Iterator[None]:
    with open(LOCK_PATH, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _install() -> None:
    print("Chromium is not installed; installing Debian's chromium package (as root)...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    failure = ""
    for attempt in (1, 2):
        try:
            for command in INSTALL_COMMANDS:
                subprocess.run(command, check=True, env=env, capture_output=True, text=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            output = getattr(exc, "stderr", None) or getattr(exc, "stdout", None) or ""
            failure = f"{exc}\n{output.strip()[-2000:]}".strip()
            if attempt == 1:
                print(f"Installing chromium failed; retrying once.\n{failure}", flush=True)
                time.sleep(RETRY_DELAY_SECONDS)
        else:
            print("Chromium installed.", flush=True)
            return
    raise ChromiumUnavailable(
        f"apt-get could not install Debian's chromium package (tried twice):\n{failure}\n"
        f"Fix the package sources or the network and run again. {WHAT_TO_INSTALL}"
    )


if __name__ == "__main__":
    try:
        print(ensure())
    except ChromiumUnavailable as exc:
        sys.exit(str(exc))
