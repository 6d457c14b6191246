"""The one way a test waits: poll a condition until it holds, never sleep a fixed time."""

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimedOut(TimeoutError, AssertionError):
    """The condition did not hold in time (an AssertionError too: a failed expectation)."""


def wait_for(
    probe: Callable[[], T],
    timeout: float = 30.0,
    interval: float = 0.2,
    what: str = "",
    *,
    check: Callable[[], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``probe`` until it returns something truthy, and return that; raise :class:`WaitTimedOut`
    after ``timeout`` seconds. ``check`` runs between tries and may raise to give up early (a worker
    died); ``sleep`` waits between tries (a browser test waits inside Playwright)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if check is not None:
            check()
        if time.monotonic() > deadline:
            raise WaitTimedOut(f"timed out after {timeout:g}s waiting for {what or probe}")
        sleep(interval)


def lock_waiters(query_like: str = "%") -> int:
    """How many sessions of this database wait on a lock now, running a statement ``LIKE query_like``
    (all of them by default): what a race test polls for before it lets the holder go."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query LIKE %s",
            [query_like],
        )
        return cursor.fetchone()[0]
