"""Counting the requests this process sends to Kubernetes API servers (every client of the platform goes
through ``paas.outbound.CheckedPoolManager``): by verb (``LIST``, ``WATCH``, ``GET`` of one object,
``PATCH`` for a server-side apply, ...) and resource (``pods``, ``namespaces``; ``discovery`` for the
API's self-description). Used by tests that bound a deploy's round trips and by bench_deploy."""

import collections
import contextlib
import threading
import time
from collections.abc import Iterator


def resource_of(path: str) -> tuple[str, bool]:
    """The resource a request path names, and whether it names one object (``.../pods/x``)."""
    parts = [p for p in path.split("?")[0].split("/") if p]
    if parts[:1] == ["api"]:
        parts = parts[2:]
    elif parts[:1] == ["apis"]:
        parts = parts[3:]
    else:
        return "/" + "/".join(parts), False
    if not parts:
        return "discovery", False
    if parts[0] == "namespaces" and len(parts) >= 3:
        parts = parts[2:]
    return parts[0], len(parts) >= 2


class Requests:
    """What was sent while counting: ``counts[(verb, resource)]`` and seconds spent on each."""

    def __init__(self):
        self.counts: collections.Counter = collections.Counter()
        self.seconds: collections.Counter = collections.Counter()
        self._lock = threading.Lock()

    def add(self, key: tuple[str, str], seconds: float) -> None:
        with self._lock:
            self.counts[key] += 1
            self.seconds[key] += seconds

    def verb(self, verb: str) -> int:
        return sum(n for (v, _), n in self.counts.items() if v == verb)

    def resource(self, resource: str) -> int:
        return sum(n for (_, r), n in self.counts.items() if r == resource)

    def total(self) -> int:
        return sum(self.counts.values())


@contextlib.contextmanager
def counting() -> Iterator[Requests]:
    """Count every request of this process's Kubernetes clients (all threads) inside the block."""
    from paas import outbound

    seen = Requests()
    original = outbound.CheckedPoolManager.urlopen

    def urlopen(pool, method, url, *args, **kwargs):
        path = "/" + url.split("://", 1)[-1].split("/", 1)[-1] if "://" in url else url
        resource, one = resource_of(path)
        verb = "LIST" if method == "GET" and not one else method
        verb = "WATCH" if "watch=true" in path.lower() else verb
        start = time.perf_counter()
        try:
            return original(pool, method, url, *args, **kwargs)
        finally:
            seen.add((verb, resource), time.perf_counter() - start)

    outbound.CheckedPoolManager.urlopen = urlopen
    try:
        yield seen
    finally:
        outbound.CheckedPoolManager.urlopen = original
