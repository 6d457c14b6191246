"""bubblewrap (``bwrap``) for the web shell's sandbox: Debian's package, fetched and cached by content.

The web shell runs kubectl inside ``bwrap`` (own user, mount, network and pid namespaces; only the kubectl
binary and a scratch directory inside).  The binary comes from Debian's ``bubblewrap`` package (bookworm,
the version the security archive ships), fetched with ``apt-get download``, SHA-256 pinned, unpacked and
cached by tests/toolchain/debian.py under ``~/.cache/localkube/tools/bubblewrap-<VERSION>-<sha[:10]>/bwrap``.
It links against libc, libcap2 and libselinux1, which every Debian system has.

``PAAS_TEST_BWRAP=/path/to/bwrap`` skips the download.  To move the pin: set VERSION and the SHA-256 of
the new ``.deb`` (``apt-get download bubblewrap=<version> && sha256sum bubblewrap_*.deb``).

``python -m tests.toolchain build bwrap`` (or ``python -m tests.toolchain.bwrap``) prints the path.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.toolchain import debian

VERSION = "0.8.0-2+deb12u1"  # Debian 12 (bookworm), main and bookworm-security
BWRAP = debian.DebianTool(
    package="bubblewrap",
    version=VERSION,
    sha256={"amd64": "3cc9134a3286ad01a323dcd924ba123eb634cefaeec82d774257e06308aeaadb"},
    member="usr/bin/bwrap",
    version_prefix="bubblewrap ",
    env="PAAS_TEST_BWRAP",
)
Unavailable = debian.DebianToolUnavailable


def ensure() -> Path:
    """The path of the bwrap binary (``$PAAS_TEST_BWRAP``, else the cached pinned package)."""
    return debian.ensure(BWRAP)


if __name__ == "__main__":
    try:
        print(ensure())
    except Unavailable as exc:
        sys.exit(str(exc))
