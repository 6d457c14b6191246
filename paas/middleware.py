import re

from django.http import HttpRequest, HttpResponse

from paas import context
from paas.context import Client

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def client_for_path(path: str) -> str:
    if path.startswith("/api/"):
        return Client.API
    if path.startswith("/studio/"):
        return Client.STUDIO
    return Client.PORTAL


class RequestContextMiddleware:
    """Tag each request with its client and a request id (honouring a sane incoming X-Request-ID)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _REQUEST_ID.match(incoming) else context.new_request_id()
        with context.client_context(client=client_for_path(request.path), request_id=request_id):
            request.request_id = request_id
            response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response
