"""The suite's profile: PostgreSQL only (DATABASE_URL is provided by tests/support/run.py)."""

import os
import sys
import tempfile
from pathlib import Path

from .base import *  # noqa: F403
from .base import DATABASES, MIDDLEWARE, database_options, require_postgresql

SECRET_KEY = "test-only-secret-key-not-for-production-0123456789abcdefghijklmnopqrstuvwxyz"  # noqa: S105
# Two keys: the suite encrypts with the first and proves it still reads what the second encrypted.
PAAS_ENCRYPTION_KEYS = [
    "rXSl0q2Qm0a6Pp6YgFZ0vK8yFhB5CkHqS5rH3ZkqQ1w=",
    "mT0W2-0oB1zrpbF9Q8mB1yB9O8b9qP3oM0xW7U6Z6nY=",
]
PAAS_AUDIT_CHECKPOINT_KEY = "test-only-audit-checkpoint-key-0123456789abcdef"
# Worker processes the suite starts get their own store; tests/conftest.py gives each test a fresh one.
PAAS_AUDIT_CHECKPOINT_DIR = str(Path(tempfile.gettempdir()) / "gpupaas-audit-checkpoints" / str(os.getpid()))
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed; never outside tests
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# The local cluster and the fake identity provider listen on 127.0.0.1; the outbound-policy tests turn
# this off to see the refusals.
PAAS_OUTBOUND_ALLOW_LOOPBACK = True
# A worker the suite starts must not spend most of each minute in the audit-streaming loop: one pass.
PAAS_AUDIT_STREAM_LOOP_SECONDS = 0
# Every response is searched for the suite's credential canary (tests/support/canary.py).
MIDDLEWARE = ["tests.support.canary.CanaryMiddleware", *MIDDLEWARE]

# The suite serves the ASGI server in its own process (tests/support/asgi_server.py): with the pool, as
# `manage.py serve` runs. Worker processes it starts (`manage.py qcluster`) keep their own connections.
if DATABASES and sys.argv[1:2] != ["qcluster"]:
    database_options(DATABASES["default"], pool=True)
require_postgresql(
    DATABASES,
    "The suite runs on PostgreSQL only. Run it with `make test`, which provisions PostgreSQL, "
    "or set DATABASE_URL=postgres://...",
)

PAAS_SERVE_STATIC = True  # uvicorn serves the static files through Django here (paas/asgi.py)
