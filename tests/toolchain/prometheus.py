"""Prometheus for the tests: Debian's package, fetched and unpacked by the project's own files, cached by
content.

The billing tests read GPU utilisation from a real Prometheus (tests/support/prometheus.py starts it).
Its binary comes from Debian's ``prometheus`` package (bookworm), the same way the suite gets
Chromium from Debian rather than from a project download site, but without installing anything:

``apt-get download prometheus=<VERSION>``, its SHA-256 checked against the pin below, unpacked (only
``usr/bin/prometheus`` is kept: a static Go binary, needing nothing of the package's web-UI dependencies
for its HTTP API) and cached under ``~/.cache/localkube/tools/prometheus-<VERSION>-<sha256[:10]>/``, all
by tests/toolchain/debian.py (as for bubblewrap). ``PAAS_TEST_PROMETHEUS=/path/to/prometheus`` skips it.

To move the pin: set VERSION and the SHA-256 of the new ``.deb`` (``apt-get download
prometheus=<version> && sha256sum prometheus_*.deb``).

``python -m tests.toolchain.prometheus`` prints the binary's path (fetching it first if needed).
"""

from __future__ import annotations

import sys

from tests.toolchain import debian

ENV = "PAAS_TEST_PROMETHEUS"
VERSION = "2.42.0+ds-5+deb12u1"  # Debian 12 (bookworm), main
PROMETHEUS = debian.DebianTool(
    package="prometheus",
    version=VERSION,
    sha256={"amd64": "81d59a24fce84f7fbe97a45a4f2914b6a5881b5cd1db2a6a0e129e515e1a5f55"},
    member="usr/bin/prometheus",
    version_prefix="prometheus, version",
    env=ENV,
)
PrometheusUnavailable = debian.DebianToolUnavailable


def ensure() -> str:
    """The path of a Prometheus binary: ``$PAAS_TEST_PROMETHEUS``, else the cached pinned package."""
    return str(debian.ensure(PROMETHEUS))


if __name__ == "__main__":
    try:
        print(ensure())
    except PrometheusUnavailable as exc:
        sys.exit(str(exc))
