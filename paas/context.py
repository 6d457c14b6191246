"""Who is acting, through which door, for which request: carried to the audit trail.

The middleware sets the client (studio, portal, api) and request id for each HTTP request; tasks and
commands set their own with :func:`client_context`. Services never read the request itself.
"""

import contextlib
import contextvars
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from django.db import models


class Client(models.TextChoices):
    STUDIO = "studio", "PaaS Studio"
    PORTAL = "portal", "Developer hub"
    API = "api", "REST API"
    TASK = "task", "Background task"
    CLI = "cli", "Command line"
    KUBECTL = "kubectl", "kubectl (the platform's Kubernetes API proxy)"


@dataclass(frozen=True)
class RequestContext:
    client: str = Client.CLI
    request_id: str = ""


_DEFAULT = RequestContext()
_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "paas_request_context", default=None
)


def current() -> RequestContext:
    return _current.get() or _DEFAULT


def new_request_id() -> str:
    return uuid.uuid4().hex


@contextlib.contextmanager
def client_context(*, client: str, request_id: str | None = None) -> Iterator[RequestContext]:
    """Run a block as ``client`` (e.g. a task), with a fresh request id unless one is given."""
    token = _current.set(RequestContext(client=client, request_id=request_id or new_request_id()))
    try:
        yield current()
    finally:
        _current.reset(token)
