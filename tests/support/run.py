"""The suite's entry point (``make test``): provision PostgreSQL, then run pytest on it.

The local Kubernetes control plane is built and started by the suite's own fixtures
(tests/localkube) the first time a test needs it.
"""

import os
import sys

from tests.support import postgres


def main(argv: list[str]) -> int:
    os.environ["DATABASE_URL"] = postgres.ensure()
    os.environ["DJANGO_SETTINGS_MODULE"] = "paas.settings.test"
    import pytest

    return pytest.main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
