"""The ASGI application (``make run`` and production serve it with uvicorn: ``manage.py serve``).

- ``/k8s/...`` (HTTP and WebSocket): the kubectl proxy, a plain ASGI application (``PAAS_ASGI_MOUNTS``)
  that never passes through Django's request handling: it speaks the Kubernetes API, streams, and
  authenticates with its own credentials.
- other WebSockets: Channels' routing (``PAAS_WEBSOCKET_ROUTES``), with the session's user and an
  ``Origin`` that must be one of the allowed hosts (the web shell).
- ``GET /healthz`` (liveness): answered by the event loop itself (``paas.probes``).
- everything else: Django, unchanged (static files served by it when ``PAAS_SERVE_STATIC`` is on).

The mounted applications are named by dotted paths in settings, so this project module imports no app.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "paas.settings.dev")

from django.core.asgi import get_asgi_application

django_application = get_asgi_application()  # sets Django up before anything below imports models

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.urls import get_resolver  # noqa: E402
from django.utils.module_loading import import_string  # noqa: E402

from paas.heap import freeze_startup_objects  # noqa: E402
from paas.probes import LIVENESS_PATH, asgi_liveness  # noqa: E402


def _http_application():
    if getattr(settings, "PAAS_SERVE_STATIC", False):
        from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

        return ASGIStaticFilesHandler(django_application)
    return django_application


_mounts = [(prefix, import_string(path)) for prefix, path in settings.PAAS_ASGI_MOUNTS]
_http = _http_application()
_websockets = AllowedHostsOriginValidator(
    AuthMiddlewareStack(URLRouter(import_string(settings.PAAS_WEBSOCKET_ROUTES)))
)
_shutdown = [import_string(path) for path in settings.PAAS_ASGI_SHUTDOWN]

get_resolver().url_patterns  # noqa: B018 - imports every view and admin now, not on the first request
freeze_startup_objects()


async def _lifespan(receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            for hook in _shutdown:
                await hook()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def application(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    path = scope.get("path", "")
    for prefix, app in _mounts:
        if path.startswith(prefix):
            await app(scope, receive, send)
            return
    if path == LIVENESS_PATH and scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
        await asgi_liveness(scope, receive, send)  # the event loop answers: no thread, no database
        return
    if scope["type"] == "websocket":
        await _websockets(scope, receive, send)
    else:
        await _http(scope, receive, send)
