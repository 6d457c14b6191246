"""``/healthz`` (liveness: the process answers) and ``/readyz`` (readiness: database, migrations, a
worker's heartbeat), through the whole middleware stack as a kubelet or a load balancer meets them."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from paas import selectors, services
from paas.models import AuditEvent, WorkerHeartbeat


@pytest.fixture
def fresh_worker(db):
    return services.worker_heartbeat_record(cluster="default")


def test_liveness_needs_neither_database_nor_worker(db, client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"ok": True}
    assert not WorkerHeartbeat.objects.exists()


def test_readiness_is_200_with_database_migrations_and_a_fresh_worker(fresh_worker, client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["ok"] is True
    assert body["database"]["ok"] and body["migrations"] == {"ok": True, "unapplied": 0}
    assert body["worker"]["ok"] and body["worker"]["cluster"] == "default"
    assert response["Cache-Control"] == "no-store"


def test_readiness_is_503_when_the_only_heartbeat_is_too_old_or_another_queues(db, client, settings):
    services.worker_heartbeat_record(cluster="agent-edge")  # an agent's worker is not the default queue's
    assert client.get("/readyz").status_code == 503
    WorkerHeartbeat.objects.create(
        cluster="default",
        seen_at=timezone.now() - timedelta(seconds=settings.WORKER_HEARTBEAT_MAX_AGE_SECONDS + 5),
    )
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["database"]["ok"] and body["migrations"]["ok"]
    assert (
        body["worker"]["ok"] is False
        and body["worker"]["age_seconds"] > settings.WORKER_HEARTBEAT_MAX_AGE_SECONDS
    )
    # the web replicas' probe: the stale worker is reported, but pages still serve
    response = client.get("/readyz?worker=optional")
    assert response.status_code == 200
    assert response.json()["worker"]["ok"] is False


def test_readiness_is_503_while_a_migration_of_this_release_is_unapplied(fresh_worker, client, monkeypatch):
    """A new release's pod before the migrations job ran: the database lacks its newest migration."""
    with connection.cursor() as cursor:  # (the test's transaction is rolled back at its end)
        cursor.execute(
            "DELETE FROM django_migrations "
            "WHERE id = (SELECT max(id) FROM django_migrations WHERE app = 'paas')"
        )
    monkeypatch.setattr(selectors, "_all_migrations_applied", False)  # this process saw them applied before
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["migrations"] == {"ok": False, "unapplied": 1}
    assert response.json()["database"]["ok"] and response.json()["worker"]["ok"]


def test_probes_answer_a_foreign_host_over_plain_http_under_production_rules(fresh_worker, client, settings):
    """A kubelet probes ``http://<pod ip>:8000``: no allowed host, no HTTPS. The probes answer it; any
    other path is still refused for the host, or redirected to HTTPS."""
    settings.ALLOWED_HOSTS = ["paas.example.com"]
    settings.SECURE_SSL_REDIRECT = True
    for path in ("/healthz", "/readyz"):
        response = client.get(path, HTTP_HOST="10.42.0.17:8000")
        assert response.status_code == 200, (path, response.status_code)
    assert client.get("/login/", HTTP_HOST="10.42.0.17:8000").status_code == 400
    assert client.get("/login/", HTTP_HOST="paas.example.com").status_code == 301


def test_probes_are_not_held_by_the_account_gate_nor_audited(world, fresh_worker, client, settings):
    settings.PAAS_MFA_REQUIRED_FOR_OPERATORS = True
    client.force_login(world.operator)  # an operator who must enrol first: every page leads there
    assert client.get("/studio/").status_code == 302
    before = AuditEvent.objects.count()
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.head("/readyz").status_code == 200
    assert AuditEvent.objects.count() == before


def test_only_reads_are_probes(db, client):
    assert client.post("/healthz").status_code == 405
    assert client.post("/readyz").status_code == 405
