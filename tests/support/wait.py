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
