"""The canary watch: every credential the suite's outside servers accept contains ``CANARY`` (a random
string per run, tests/support/integration_servers.py). Secrets are write-only, so the canary must never
come back: not in a response of the platform (API, portal, studio: :class:`CanaryMiddleware`, first in
the test profile's middleware, sees every response the test client and the live servers produce) and
not in a log line (:class:`CanaryLogHandler` on the root logger). Each hit is recorded with where it
was seen; tests/conftest.py fails the test during which it happened.
"""

import logging
import secrets
from urllib.parse import quote

CANARY = f"canary{secrets.token_hex(6)}"

hits: list[str] = []


def _found(text: str) -> bool:
    return CANARY in text or quote(CANARY) in text


class CanaryMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not getattr(response, "streaming", False):
            body = response.content.decode("utf-8", "replace")
            headers = "\n".join(f"{k}: {v}" for k, v in response.items())
            if _found(body) or _found(headers):
                hits.append(f"response to {request.method} {request.path} ({response.status_code})")
        return response


class CanaryLogHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:  # a record that cannot be formatted: its raw parts
            text = f"{record.msg} {record.args}"
        if _found(text):
            hits.append(f"log line of {record.name} ({record.levelname})")


_handler = CanaryLogHandler(level=logging.DEBUG)
_handler.setFormatter(logging.Formatter("%(message)s"))


def install_log_handler() -> CanaryLogHandler:
    """The watch on the root logger and on every logger that does not pass its records up to it (once
    each: adding it again is a no-op)."""
    loggers = [logging.getLogger()] + [
        logger
        for logger in logging.root.manager.loggerDict.values()
        if isinstance(logger, logging.Logger) and not logger.propagate
    ]
    for logger in loggers:
        if _handler not in logger.handlers:
            logger.addHandler(_handler)
    return _handler
