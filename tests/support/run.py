"""The suite's entry point (``make test``): provision PostgreSQL, Chromium and Prometheus, then run pytest
on them.

The local Kubernetes control plane is built and started by the suite's own fixtures
(tests/localkube) the first time a test needs it.
"""

import os
import sys

from tests.support import chromium, postgres
from tests.toolchain import prometheus


def main(argv: list[str]) -> int:
    os.environ["DATABASE_URL"] = postgres.ensure()
    try:
        # Debian's Chromium for the browser tests (tests/browser), installed here when missing.
        os.environ[chromium.ENV] = chromium.ensure()
    except chromium.ChromiumUnavailable as exc:
        sys.exit(str(exc))
    try:
        # Debian's Prometheus for the GPU-utilisation tests (tests/toolchain/prometheus.py), cached.
        os.environ[prometheus.ENV] = prometheus.ensure()
    except prometheus.PrometheusUnavailable as exc:
        sys.exit(str(exc))
    os.environ["DJANGO_SETTINGS_MODULE"] = "paas.settings.test"
    import pytest

    return pytest.main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
