"""Prometheus metrics: what the processes count, and what the database says at scrape time.

Two kinds:

- **Counters and histograms** the processes update as things happen: requests by route, method and
  status (``paas.metrics_views.RequestMetricsMiddleware``), launches by outcome (the launch service),
  deploys by outcome (the deployer, once the outcome is committed). With ``PROMETHEUS_MULTIPROC_DIR``
  set (``manage.py serve --workers N``; the image sets ``/tmp/metrics``) each process writes its own
  file there and a scrape of any process sums them all (prometheus-client's multi-process mode);
  without it, a plain in-process registry.
- **Gauges read from the database at scrape time** by collectors the apps register
  (:func:`register_database_collector`, from their ``AppConfig.ready``; this module imports no app):
  queue depth and oldest task age per queue, warm-pool levels, quota usage per org, cluster
  reachability, audit-stream lag per sink. A few cheap grouped queries per scrape, whatever the
  number of rows (see docs/operations.md "Metrics and logs"); a collector that fails is reported by
  ``paas_metrics_collector_up`` and skipped, never a failed scrape.

The web port serves both on ``/metrics``; a worker (``manage.py qcluster``) serves its processes'
counters on ``PAAS_WORKER_METRICS_PORT`` (``paas.metrics_views.start_worker_server``). Both ask for
``Authorization: Bearer $PAAS_METRICS_TOKEN``.
"""

from __future__ import annotations

import functools
import glob
import logging
import os
import re
import time
from collections.abc import Callable, Iterable

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, multiprocess
from prometheus_client.core import GaugeMetricFamily

from paas.metrics_env import MULTIPROC_ENV, PREPARED_ENV

log = logging.getLogger(__name__)


def multiprocess_dir() -> str:
    """The multi-process directory in force ('' when the plain registry is used)."""
    return os.environ.get(MULTIPROC_ENV, "")


# --- what the processes count ---------------------------------------------------------------------

#: Seconds: a page or API call (most answer in milliseconds; exports and slow pages take seconds).
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
#: Seconds: a deploy from its run's creation to its outcome (queue wait, rendering, readiness wait up to
#: READY_TIMEOUT = 120 s per attempt, retries with backoff).
DEPLOY_BUCKETS = (1, 2.5, 5, 10, 20, 30, 60, 120, 180, 300, 600, 1200)
#: Seconds: the launch service's call (quota lock, placement, snapshot; a warm-pool claim's hand-over).
LAUNCH_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

HTTP_REQUESTS = Counter(
    "paas_http_requests",
    "HTTP requests answered by Django, by the URL pattern's route (never the raw path), method and status.",
    ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "paas_http_request_duration_seconds",
    "Time to answer an HTTP request, by route and method.",
    ["route", "method"],
    buckets=REQUEST_BUCKETS,
)
HTTP_IN_PROGRESS = Gauge(
    "paas_http_requests_in_progress",
    "HTTP requests being answered now (summed over the live processes).",
    multiprocess_mode="livesum",
)
LAUNCHES = Counter(
    "paas_launches",
    "Launch requests by kind (compute, service) and outcome: launched (on demand), launched_warm (a "
    "warm pool's standby claimed) or the refusal's code (quota_exceeded, no_capacity, limit_exceeded, "
    "invalid, forbidden, conflict, error).",
    ["kind", "outcome"],
)
LAUNCH_DURATION = Histogram(
    "paas_launch_duration_seconds",
    "Time the launch service took to accept or refuse a launch.",
    ["kind", "outcome"],
    buckets=LAUNCH_BUCKETS,
)
DEPLOYS = Counter(
    "paas_deploys",
    "Deployer runs by target (instance, service, application), kind (deploy, retry, delete, action, "
    "redeploy, claim) and outcome (succeeded, failed, or retrying: an attempt failed, another is due).",
    ["target", "kind", "outcome"],
)
DEPLOY_DURATION = Histogram(
    "paas_deploy_duration_seconds",
    "Time from a run's creation to its final outcome (succeeded or failed), queue and retries included.",
    ["target", "kind", "outcome"],
    buckets=DEPLOY_BUCKETS,
)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def method_label(method: str | None) -> str:
    """A request's method, or ``other`` (a client may send any token: the label set stays bounded)."""
    method = (method or "").upper()
    return method if method in _METHODS else "other"


_ROUTE_ANCHORS = re.compile(r"\^|\$|\\Z")
_NAMED_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")


def route_label(match) -> str:
    """The resolved URL pattern of a request (``api/v1/instances/<int:pk>/``), never its path: one
    series per route whatever the ids. ``<unmatched>`` for a path no pattern matched (a 404)."""
    if match is None:
        return "<unmatched>"
    route = getattr(match, "route", "") or ""
    return "/" + _ROUTE_ANCHORS.sub("", _NAMED_GROUP.sub(r"<\1>", route))


def launch_observed(*, kind: str, outcome: str, seconds: float) -> None:
    LAUNCHES.labels(kind=kind, outcome=outcome).inc()
    LAUNCH_DURATION.labels(kind=kind, outcome=outcome).observe(seconds)


def observe_launch(kind: str):
    """Decorates a launch service (outside its ``transaction.atomic``): counts and times each call by
    outcome. An accepted launch is counted once its transaction commits (``launched``, or
    ``launched_warm`` when the result came ``from_warm_pool``); a refusal at once, by its error's code
    (``quota_exceeded``, ``no_capacity``, ``invalid``...; a fixed set in the code), anything else as
    ``error``."""
    from django.db import transaction

    from paas.errors import ApplicationError

    def decorate(function):
        @functools.wraps(function)
        def launch(*args, **kwargs):
            started = time.perf_counter()
            try:
                result = function(*args, **kwargs)
            except ApplicationError as exc:
                seconds = time.perf_counter() - started
                launch_observed(kind=kind, outcome=exc.code or "refused", seconds=seconds)
                raise
            except Exception:
                launch_observed(kind=kind, outcome="error", seconds=time.perf_counter() - started)
                raise
            seconds = time.perf_counter() - started
            outcome = "launched_warm" if getattr(result, "from_warm_pool", False) else "launched"
            transaction.on_commit(lambda: launch_observed(kind=kind, outcome=outcome, seconds=seconds))
            return result

        return launch

    return decorate


def deploy_observed(*, target: str, kind: str, outcome: str, seconds: float | None = None) -> None:
    DEPLOYS.labels(target=target, kind=kind, outcome=outcome).inc()
    if seconds is not None:
        DEPLOY_DURATION.labels(target=target, kind=kind, outcome=outcome).observe(max(0.0, seconds))


# --- gauges read from the database at scrape time ---------------------------------------------------

DatabaseCollector = Callable[[], Iterable[GaugeMetricFamily]]
_database_collectors: dict[str, DatabaseCollector] = {}


def register_database_collector(name: str, collector: DatabaseCollector) -> None:
    """Add ``collector`` (a callable yielding metric families, reading the database) to every scrape of
    the web port's ``/metrics``. Apps call this from ``AppConfig.ready``; the same name replaces."""
    _database_collectors[name] = collector


def database_collectors() -> dict[str, DatabaseCollector]:
    return dict(_database_collectors)


class _DatabaseGauges:
    """Runs the registered collectors; each one's failure is logged and reported, never raised."""

    def collect(self):
        up = GaugeMetricFamily(
            "paas_metrics_collector_up",
            "1 when the collector read the database at this scrape.",
            labels=["collector"],
        )
        took = GaugeMetricFamily(
            "paas_metrics_collector_duration_seconds", "Time the collector took.", labels=["collector"]
        )
        for name, collector in sorted(_database_collectors.items()):
            started = time.perf_counter()
            try:
                families = list(collector())
            except Exception:
                log.exception("Metrics collector %s failed", name)
                up.add_metric([name], 0)
            else:
                up.add_metric([name], 1)
                yield from families
            took.add_metric([name], time.perf_counter() - started)
        yield up
        yield took


class _Sources:
    def __init__(self, *sources):
        self.sources = sources

    def collect(self):
        for source in self.sources:
            yield from source.collect()


def scrape_registry(*, database: bool):
    """What one scrape exposes: this process's metrics (all processes' in multi-process mode) and, for
    the web port, the database's gauges."""
    path = multiprocess_dir()
    if path:
        mark_dead_processes(path)
        processes = CollectorRegistry()
        multiprocess.MultiProcessCollector(processes, path=path)
    else:
        processes = REGISTRY
    return _Sources(processes, _DatabaseGauges()) if database else processes


# --- the multi-process directory ---------------------------------------------------------------------

_PID_IN_NAME = re.compile(r"_(\d+)\.db$")


def prepare_multiprocess_dir() -> str:
    """At ``manage.py serve``'s start, before the processes it starts write: create the directory and
    remove the files of earlier runs (their counters would be summed into this run's). Returns the
    path ('' when unset)."""
    path = multiprocess_dir()
    if not path:
        return ""
    os.makedirs(path, exist_ok=True)
    for name in glob.glob(os.path.join(path, "*.db")):
        match = _PID_IN_NAME.search(name)
        if not match or int(match.group(1)) != os.getpid():  # this process's own files are open already
            os.remove(name)
    os.environ[PREPARED_ENV] = "1"  # the processes it starts share the directory, cleaned
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def mark_dead_processes(path: str) -> None:
    """Forget the live gauges (requests in progress) of processes that died (a web worker uvicorn
    replaced, a task process django-q2 replaced); their counters stay, as counters must."""
    pids = {int(m.group(1)) for name in os.listdir(path) if (m := _PID_IN_NAME.search(name))}
    for pid in pids:
        if not _alive(pid):
            multiprocess.mark_process_dead(pid, path)


async def shutdown() -> None:
    """ASGI lifespan shutdown (``PAAS_ASGI_SHUTDOWN``): this process's live gauges go with it."""
    path = multiprocess_dir()
    if path:
        multiprocess.mark_process_dead(os.getpid(), path)
