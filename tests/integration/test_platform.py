"""Settings profiles, migrations and the health endpoint with a real worker process."""

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django_q.tasks import async_task

from paas.models import WorkerHeartbeat
from tests.support.wait import WaitTimedOut, wait_for

ROOT = Path(__file__).resolve().parents[2]


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "SECRET_KEY")}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_passes_under_production_settings():
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DJANGO_SETTINGS_MODULE="paas.settings.production",
        SECRET_KEY="x" * 20 + os.urandom(24).hex(),
        ALLOWED_HOSTS="paas.example.com",
        PAAS_ENCRYPTION_KEYS="rXSl0q2Qm0a6Pp6YgFZ0vK8yFhB5CkHqS5rH3ZkqQ1w=",
        PAAS_AUDIT_CHECKPOINT_KEY=os.urandom(24).hex(),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_its_secrets():
    result = _manage("check", DJANGO_SETTINGS_MODULE="paas.settings.production")
    assert result.returncode != 0 and "SECRET_KEY must be set" in result.stderr
    result = _manage("check", DJANGO_SETTINGS_MODULE="paas.settings.production", SECRET_KEY="k" * 60)
    assert result.returncode != 0 and "PAAS_ENCRYPTION_KEYS must be set" in result.stderr
    result = _manage(
        "check",
        DJANGO_SETTINGS_MODULE="paas.settings.production",
        SECRET_KEY="k" * 60,
        PAAS_ENCRYPTION_KEYS="rXSl0q2Qm0a6Pp6YgFZ0vK8yFhB5CkHqS5rH3ZkqQ1w=",
    )
    assert result.returncode != 0 and "PAAS_AUDIT_CHECKPOINT_KEY must be set" in result.stderr


@pytest.mark.parametrize("profile", ["test", "dev"])
def test_settings_refuse_sqlite(profile):
    """PostgreSQL only: the dev profile too (its default is the project's own PostgreSQL server)."""
    result = _manage(
        "check", DJANGO_SETTINGS_MODULE=f"paas.settings.{profile}", DATABASE_URL="sqlite:////tmp/x.db"
    )
    assert result.returncode != 0 and "PostgreSQL only" in result.stderr


def test_no_missing_migrations(db):
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def test_the_suite_runs_on_postgresql(db):
    assert connection.vendor == "postgresql"


def test_readiness_reports_database_and_missing_worker(db, client):
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["database"]["ok"] is True and body["worker"]["ok"] is False


@pytest.mark.django_db(transaction=True)
def test_readiness_is_green_with_a_real_worker(client):
    """A real `manage.py qcluster` on the test database picks the heartbeat task from the ORM broker."""
    db = settings.DATABASES["default"]
    url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "paas.settings.test"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        async_task("paas.tasks.worker_heartbeat")
        with contextlib.suppress(WaitTimedOut):  # the health check below says what is missing
            wait_for(WorkerHeartbeat.objects.exists, 60, 0.3)
        response = client.get("/readyz")
        assert response.status_code == 200, response.content
        assert response.json()["worker"]["cluster"] == settings.Q_CLUSTER["name"]
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def test_worker_settings_follow_design():
    q = settings.Q_CLUSTER
    assert q["orm"] == "default" and q["retry"] > q["timeout"] and 1 <= q["max_attempts"] <= 5
