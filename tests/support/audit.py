"""Audit helpers for tests: a transaction of a test "committed", so that its audit events are sealed.

Audit events are written unsealed and chained (seq, prev_hash, hash) on commit (paas/audit.py). A test
running inside pytest-django's transaction never commits, so its on-commit callbacks (the sealer, the
checkpoint) would never run: :func:`committed` runs them when the block ends, as a commit would.
"""

import contextlib
from collections.abc import Iterator

from django.db import transaction
from django.test import TestCase


@contextlib.contextmanager
def committed() -> Iterator[None]:
    """A transaction whose on-commit callbacks run when it ends (inside the test's own transaction;
    in a transactional test the commit is real and runs them itself)."""
    with TestCase.captureOnCommitCallbacks(execute=True), transaction.atomic():
        yield
