"""skopeo for the bundle's registry test: Debian's package, installed by the project's own files when missing.

install.sh pushes the bundle's image with skopeo, crane or regctl, whichever the provider has; the test
drives skopeo (Debian's ``skopeo`` 1.9.3; bookworm packages neither crane nor regctl). ``/usr/bin/skopeo``
is used when it runs; otherwise, as root, ``apt-get install --no-install-recommends skopeo`` (a file lock
serialises runs, as tests/support/chromium.py does for Chromium); as another user, a message says what
to install.
"""

import fcntl
import os
import subprocess
import tempfile
from pathlib import Path

SKOPEO = "/usr/bin/skopeo"
LOCK_PATH = Path(tempfile.gettempdir()) / "gpupaas-skopeo-install.lock"
INSTALL_COMMANDS = (
    ["apt-get", "update", "-qq"],
    ["apt-get", "-o", "DPkg::Lock::Timeout=120", "install", "-y", "-qq", "--no-install-recommends", "skopeo"],
)


class SkopeoUnavailable(RuntimeError):
    """No skopeo, and we may not install it; the message says what to do."""


def _runs() -> bool:
    try:
        done = subprocess.run([SKOPEO, "--version"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and "skopeo" in done.stdout


def ensure() -> str:
    """The path of a skopeo that runs, installing Debian's package first when needed (as root)."""
    if _runs():
        return SKOPEO
    if os.geteuid() != 0:
        raise SkopeoUnavailable("The bundle's registry test needs skopeo: `sudo apt-get install skopeo`.")
    with open(LOCK_PATH, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _runs():  # another run may have installed it while we waited
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            for command in INSTALL_COMMANDS:
                subprocess.run(command, check=True, env=env, capture_output=True, text=True)
    if not _runs():
        raise SkopeoUnavailable(f"apt-get installed skopeo but {SKOPEO} --version does not run")
    return SKOPEO
