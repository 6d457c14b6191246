"""Structured logs (paas/logging.py): one JSON object per line with the request id, and no secrets."""

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from paas import context
from paas.logging import REDACTED, JsonFormatter, RequestIdFilter, logging_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def json_lines():
    """A logger writing JSON lines into a buffer (the formatter and filter LOGGING uses); returns a
    function giving the lines written so far, parsed."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)


def test_a_line_has_the_fields_and_the_request_id(json_lines):
    with context.client_context(client=context.Client.API, request_id="req-0123456789"):
        logging.getLogger("paas.example").warning("Deploy of %s failed", "dev", extra={"run": 7})
    (line,) = json_lines()
    assert list(line)[:5] == ["timestamp", "level", "logger", "message", "request_id"]
    assert line["level"] == "WARNING" and line["logger"] == "paas.example"
    assert line["message"] == "Deploy of dev failed" and line["run"] == 7
    assert line["request_id"] == "req-0123456789" and line["client"] == "api"
    assert line["timestamp"].endswith("Z") and "T" in line["timestamp"]


def test_secrets_in_extra_fields_are_redacted(json_lines):
    secrets = {
        "password": "hunter2-hunter2",
        "api_token": "tok-abcdef",
        "kubeconfig": "apiVersion: v1\nusers: [{user: {token: s3cr3t}}]",
        "Authorization": "Bearer abc",
        "details": {"secret": "deep-secret", "name": "kept"},
        "encryption_key": "k-123",
    }
    logging.getLogger("paas.example").info("Saved.", extra=secrets)
    (line,) = json_lines()
    text = json.dumps(line)
    for value in ("hunter2", "tok-abcdef", "s3cr3t", "Bearer abc", "deep-secret", "k-123"):
        assert value not in text
    assert line["password"] == REDACTED and line["kubeconfig"] == REDACTED
    assert line["details"] == {"secret": REDACTED, "name": "kept"}


def test_an_exception_is_in_the_line(json_lines):
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("paas.example").exception("It failed.")
    (line,) = json_lines()
    assert line["level"] == "ERROR" and "ValueError: boom" in line["exc_info"]


@pytest.mark.django_db
def test_a_request_logs_its_request_id_and_never_its_query_string(client, json_lines):
    """Django's own log of a 404 (django.request) carries the request's id, the one answered in
    X-Request-ID, and the request as its method and path (the query string may hold a token)."""
    response = client.get(
        "/api/v1/no-such-thing/?token=very-secret-query", HTTP_X_REQUEST_ID="trace-abcdef12"
    )
    assert response.status_code == 404 and response["X-Request-ID"] == "trace-abcdef12"
    lines = [line for line in json_lines() if line["logger"] == "django.request"]
    assert lines, json_lines()
    assert lines[0]["request_id"] == "trace-abcdef12"
    assert lines[0]["request"] == {"method": "GET", "path": "/api/v1/no-such-thing/"}
    assert "very-secret-query" not in json.dumps(lines)


def test_the_format_is_checked():
    assert logging_config("text")["formatters"]["default"]["format"].count("%(request_id)s") == 1
    with pytest.raises(ImproperlyConfigured, match="json or text"):
        logging_config("xml")


def test_production_logs_json_by_default_and_text_on_request():
    """The production profile, imported by a process of its own: JSON lines on stderr unless
    PAAS_LOG_FORMAT=text."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "paas.settings.production",
        "SECRET_KEY": "x" * 60,
        "PAAS_ENCRYPTION_KEYS": "rXSl0q2Qm0a6Pp6YgFZ0vK8yFhB5CkHqS5rH3ZkqQ1w=",
        "PAAS_AUDIT_CHECKPOINT_KEY": "y" * 40,
        "DATABASE_URL": "postgres://nobody@127.0.0.1:1/none",
    }
    env.pop("PAAS_LOG_FORMAT", None)
    # The settings alone (django.setup() would import every app: seconds on a loaded machine).
    code = (
        "import logging.config; from django.conf import settings; "
        "logging.config.dictConfig(settings.LOGGING); "
        "logging.getLogger('paas.check').warning('hello %s', 'there')"
    )

    def stderr(**extra):
        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stderr.strip().splitlines()[-1]

    line = json.loads(stderr())
    assert line["message"] == "hello there" and line["logger"] == "paas.check" and line["request_id"] == ""
    text = stderr(PAAS_LOG_FORMAT="text")
    assert text.endswith("WARNING paas.check [] hello there")
