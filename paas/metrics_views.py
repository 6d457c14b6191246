"""Serving the metrics (paas/metrics.py): ``/metrics`` on the web port, the workers' own port, and the
middleware that counts requests.

``/metrics`` is answered by :class:`RequestMetricsMiddleware`, the first middleware, before anything
else sees the request: no session, no sign-in, no account gate or MFA step, no host check (Prometheus
scrapes a pod by its address), no HTTPS redirect, no audit event. It asks for ``Authorization: Bearer
$PAAS_METRICS_TOKEN``, compared in constant time: a wrong or missing token is a 401; with no token
configured the endpoint does not exist (404).
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4 as CONTENT_TYPE
from prometheus_client.exposition import generate_latest

from paas import metrics

log = logging.getLogger(__name__)

METRICS_PATH = "/metrics"


def token_status(authorization: str | None) -> int:
    """200 when ``authorization`` carries the configured token, 401 when not, 404 when no token is
    configured (the endpoint is off)."""
    expected = getattr(settings, "PAAS_METRICS_TOKEN", "") or ""
    if not expected:
        return 404
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        given = ""
    if hmac.compare_digest(given.strip().encode(), expected.encode()):
        return 200
    return 401


def render(*, database: bool) -> bytes:
    """The text format 0.0.4 (every Prometheus reads it; our names need none of 1.0.0's escaping)."""
    return generate_latest(metrics.scrape_registry(database=database))


def _refusal(status: int) -> HttpResponse:
    if status == 404:
        return HttpResponse("Not found.\n", status=404, content_type="text/plain")
    response = HttpResponse("A metrics token is required.\n", status=401, content_type="text/plain")
    response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


class RequestMetricsMiddleware:
    """First in ``MIDDLEWARE``: answers ``/metrics``; counts every other request by the resolved URL
    pattern's route, method and status, with its duration. Adds no query (the route comes from the
    resolver, set on the request by Django's handler)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path == METRICS_PATH:
            return self.metrics(request)
        started = time.perf_counter()
        metrics.HTTP_IN_PROGRESS.inc()
        try:
            response = self.get_response(request)
        finally:
            metrics.HTTP_IN_PROGRESS.dec()
        route = metrics.route_label(getattr(request, "resolver_match", None))
        method = metrics.method_label(request.method)
        metrics.HTTP_REQUESTS.labels(route=route, method=method, status=str(response.status_code)).inc()
        metrics.HTTP_DURATION.labels(route=route, method=method).observe(time.perf_counter() - started)
        return response

    def metrics(self, request: HttpRequest) -> HttpResponse:
        status = token_status(request.headers.get("Authorization"))
        if status != 200:
            return _refusal(status)
        if request.method not in ("GET", "HEAD"):
            return HttpResponse(status=405, headers={"Allow": "GET, HEAD"})
        body = render(database=True)
        response = HttpResponse(body if request.method == "GET" else b"", content_type=CONTENT_TYPE)
        response["Cache-Control"] = "no-store"
        return response


# --- a worker's own port (manage.py qcluster) ---------------------------------------------------------


class _WorkerMetricsHandler(BaseHTTPRequestHandler):
    server_version = "paas-metrics"
    sys_version = ""

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] != METRICS_PATH:
            return self._answer(404, b"Not found.\n")
        status = token_status(self.headers.get("Authorization"))
        if status != 200:
            extra = {"WWW-Authenticate": 'Bearer realm="metrics"'} if status == 401 else {}
            return self._answer(status, b"A metrics token is required.\n" if status == 401 else b"", extra)
        try:
            body = render(database=False)
        except Exception:
            log.exception("Rendering the worker's metrics failed")
            return self._answer(500, b"")
        self._answer(200, body, {"Content-Type": CONTENT_TYPE})

    def _answer(self, status: int, body: bytes, headers: dict | None = None) -> None:
        self.send_response(status)
        headers = {"Content-Type": "text/plain; charset=utf-8", **(headers or {})}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args) -> None:
        return  # scrapes every few seconds would drown the worker's log


def worker_address() -> tuple[str, int] | None:
    """``PAAS_WORKER_METRICS_PORT``: ``PORT`` (all addresses) or ``HOST:PORT``; None when unset."""
    value = (os.environ.get("PAAS_WORKER_METRICS_PORT") or "").strip()
    if not value:
        return None
    host, _, port = value.rpartition(":")
    if not port.isdigit():
        raise ValueError(f"PAAS_WORKER_METRICS_PORT must be PORT or HOST:PORT, got {value!r}")
    return (host.strip("[]") or "0.0.0.0", int(port))  # noqa: S104 (a pod's port, scraped by address)


_worker_server: ThreadingHTTPServer | None = None


def start_worker_server() -> ThreadingHTTPServer | None:
    """In ``manage.py qcluster``: serve the worker processes' metrics on ``PAAS_WORKER_METRICS_PORT``
    from a daemon thread of the cluster's main process (its forked task processes write to the
    multi-process directory; this thread sums them). Once per process; None when unset."""
    global _worker_server
    address = worker_address()
    if address is None or _worker_server is not None:
        return _worker_server
    _worker_server = ThreadingHTTPServer(address, _WorkerMetricsHandler)
    _worker_server.daemon_threads = True
    thread = threading.Thread(target=_worker_server.serve_forever, name="paas-worker-metrics", daemon=True)
    thread.start()
    log.info("Worker metrics on http://%s:%s%s", *_worker_server.server_address[:2], METRICS_PATH)
    return _worker_server
