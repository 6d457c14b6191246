"""The probes of a process: ``/healthz`` (liveness) and ``/readyz`` (readiness).

- ``/healthz``: the process answers. No database, no worker: 200 while the event loop runs. Under the
  ASGI server it is answered by :func:`asgi_liveness` before Django (no thread, no connection from the
  pool), so a process whose requests all wait on a busy database is still alive, not restarted.
- ``/readyz``: the database answers, no migration of this release is unapplied, and a worker of the
  default queue sent a heartbeat younger than ``WORKER_HEARTBEAT_MAX_AGE_SECONDS``
  (``paas.selectors.readiness``); 200 or 503 with the JSON report. ``/readyz?worker=optional`` reports
  the worker but answers 200 without one: the web replicas' readiness in the Helm chart, since pages
  and the API still serve while the workers are down (the full ``/readyz`` is for monitors).

Both are unauthenticated and answered by :class:`ProbeMiddleware`, next to first in ``MIDDLEWARE``
(after the request metrics, which count them): before the
host check (a kubelet probes the pod's address, which is no allowed host), the HTTPS redirect (a probe
speaks plain HTTP to the pod), sessions, the account gate and the audit trail. They reveal nothing but
the report.
"""

from django.http import HttpRequest, JsonResponse
from django.urls import resolve
from django.views.decorators.http import require_safe

LIVENESS_PATH = "/healthz"
READINESS_PATH = "/readyz"
_LIVE_BODY = b'{"ok": true}'


@require_safe
def liveness(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


@require_safe
def readiness(request: HttpRequest) -> JsonResponse:
    from paas import selectors

    report = selectors.readiness(require_worker=request.GET.get("worker") != "optional")
    response = JsonResponse(report, status=200 if report["ok"] else 503)
    response["Cache-Control"] = "no-store"
    return response


class ProbeMiddleware:
    """Answer the probes before the other middleware (see the module's docstring)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        if request.method in ("GET", "HEAD") and request.path in (LIVENESS_PATH, READINESS_PATH):
            request.resolver_match = resolve(request.path)  # (the request metrics count it by its route)
            return request.resolver_match.func(request)
        return self.get_response(request)


async def asgi_liveness(scope, receive, send) -> None:
    """``GET /healthz`` answered by the event loop itself (the request body, if any, is read first)."""
    while True:  # drain the request (a probe sends none; a client may)
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body"):
            break
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(_LIVE_BODY)).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else _LIVE_BODY})
