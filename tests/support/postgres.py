"""The suite's PostgreSQL server, provisioned when none is given (``make test``).

``DATABASE_URL`` set in the environment wins. Otherwise the shared provisioning of
``paas/embedded_postgres.py`` (the same code that gives ``make run`` its server) creates a cluster
once under ``/tmp/gpupaas-test-pg`` and starts it on a free loopback port; later runs reuse it while
it runs. Loopback connections are trusted and durability is off: it is a throwaway server (one that
will not start is recreated).
"""

import os
import sys
from pathlib import Path

from paas import embedded_postgres

DATA_DIR = Path(os.environ.get("PAAS_TEST_PG_DIR", "/tmp/gpupaas-test-pg"))


def ensure() -> str:
    """Return a DATABASE_URL for a reachable PostgreSQL server, starting one if needed."""
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    try:
        return embedded_postgres.ensure(DATA_DIR, "gpupaas", throwaway=True)
    except embedded_postgres.Unavailable as exc:
        sys.exit(f"The suite needs PostgreSQL. {exc}")


if __name__ == "__main__":
    print(ensure())
