"""One error shape for every 4xx of the API::

{"error": {"status": 400, "code": "invalid", "message": "...", "fields": {"name": ["..."]},
           "request_id": "..."}}
"""

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from paas import context
from paas.errors import ApplicationError


def _flatten(detail) -> dict[str, list[str]]:
    if isinstance(detail, dict):
        out: dict[str, list[str]] = {}
        for key, value in detail.items():
            if isinstance(value, dict):
                for sub_key, sub_value in _flatten(value).items():
                    out[f"{key}.{sub_key}"] = sub_value
            elif isinstance(value, list) and value and isinstance(value[0], dict):
                for index, item in enumerate(value):
                    for sub_key, sub_value in _flatten(item).items():
                        out[f"{key}.{index}.{sub_key}"] = sub_value
            else:
                out[key] = [str(item) for item in (value if isinstance(value, list) else [value])]
        return out
    return {"non_field_errors": [str(item) for item in (detail if isinstance(detail, list) else [detail])]}


def _body(status_code: int, code: str, message: str, fields: dict | None = None) -> dict:
    error = {
        "status": status_code,
        "code": code,
        "message": message,
        "request_id": context.current().request_id,
    }
    if fields:
        error["fields"] = fields
    return {"error": error}


def exception_handler(exc, ctx):
    if isinstance(exc, ApplicationError):
        return Response(_body(exc.status, exc.code, exc.message, exc.fields), status=exc.status)
    if isinstance(exc, DjangoValidationError):
        fields = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        return Response(_body(400, "invalid", "Invalid input.", fields), status=400)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound("Not found.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, ctx)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        message = "Invalid input." if set(fields) != {"non_field_errors"} else fields["non_field_errors"][0]
        response.data = _body(response.status_code, "invalid", message, fields)
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        code = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
        response.data = _body(response.status_code, code if isinstance(code, str) else "error", str(detail))
    if response.status_code == status.HTTP_401_UNAUTHORIZED and "WWW-Authenticate" not in response:
        response["WWW-Authenticate"] = 'Bearer realm="api"'
    return response
