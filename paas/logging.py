"""Logs on stderr, as text or as one JSON object per line (``PAAS_LOG_FORMAT``; json in production).

Every record carries the request id of the request (or task, or command) it was written in: the id
``paas.context`` holds, which the audit events of that request carry and ``X-Request-ID`` answers.
A JSON line has ``timestamp`` (UTC, ISO 8601), ``level``, ``logger``, ``message`` and ``request_id``,
then the exception and the record's own extra fields. No secrets: a field whose name says it holds one
(password, token, secret, key, kubeconfig, authorization, cookie) is written as ``[redacted]``, and a
request object is written as its method and path only (never its query string, headers or body).

Settings import this module (``logging_config``): it imports nothing of Django's at module level.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

FORMATS = ("json", "text")
REDACTED = "[redacted]"
_SECRET_NAME = re.compile(
    r"pass(word|wd|phrase)?|secret|token|(^|_)key$|private|kubeconfig|authorization|cookie|credential",
    re.IGNORECASE,
)


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` (and ``client``) from ``paas.context`` to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        from paas import context

        current = context.current()
        if not getattr(record, "request_id", None):
            # Django logs a response's 4xx/5xx after the middleware (and so the request's context) is
            # done: its record carries the request, which carries its id (paas.middleware).
            request = getattr(record, "request", None)
            record.request_id = getattr(request, "request_id", "") or current.request_id
        if not getattr(record, "client", None):
            record.client = str(current.client)
        return True


def _safe(key: str, value: Any) -> Any:
    if _SECRET_NAME.search(str(key)):
        return REDACTED
    if isinstance(value, dict):
        return {k: _safe(k, v) for k, v in value.items()}
    if hasattr(value, "method") and hasattr(value, "path") and hasattr(value, "META"):  # an HttpRequest
        return {"method": value.method, "path": value.path}
    return value


class JsonFormatter(_JsonFormatter):
    """python-json-logger's formatter with our field names, UTC timestamps and the redaction."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        kwargs.setdefault("timestamp", True)
        kwargs.setdefault("json_ensure_ascii", False)
        # "request" (django.request's) and "server_time" are replaced or dropped below; "scope": ASGI's.
        super().__init__("%(levelname)s %(name)s %(message)s %(request_id)s", *args, **kwargs)

    def process_log_record(self, log_data: dict) -> dict:
        log_data.pop("server_time", None)
        log_data.pop("scope", None)
        stamp = log_data.get("timestamp")
        if hasattr(stamp, "isoformat"):
            log_data["timestamp"] = stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        ordered = {
            key: log_data.pop(key, "") for key in ("timestamp", "level", "logger", "message", "request_id")
        }
        return ordered | {key: _safe(key, value) for key, value in log_data.items()}


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def logging_config(log_format: str, *, level: str = "INFO") -> dict:
    """The ``LOGGING`` setting for ``log_format`` (``json`` or ``text``)."""
    if log_format not in FORMATS:
        raise ImproperlyConfigured(f"PAAS_LOG_FORMAT must be json or text, got {log_format!r}")
    formatter = {"()": "paas.logging.JsonFormatter"} if log_format == "json" else {"format": TEXT_FORMAT}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": "paas.logging.RequestIdFilter"}},
        "formatters": {"default": formatter},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",  # stderr
                "formatter": "default",
                "filters": ["request_id"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django.db.backends": {"level": "INFO"},  # never the SQL (parameters may hold anything)
            # uvicorn's own loggers write through ours (one format on stderr); its access log is off:
            # paas_http_requests_total counts requests, by route.
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": True, "level": "WARNING"},
        },
    }
