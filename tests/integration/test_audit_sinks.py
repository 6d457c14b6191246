"""Audit streaming (issue 18, part 6): real receivers (rsyslogd over TLS from Debian's packages, an
HTTPS receiver in the test), delivery in order and at least once, a receiver down then back, the
outbound-address policy, TLS always verified, and who may set which sink (API and studio)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from paas import audit_stream
from paas.audit import audit_log
from paas.audit_sinks import audit_sink_create, audit_sink_list_for, lag
from paas.errors import Forbidden, NotFound, ValidationFailed
from paas.models import AuditEvent, AuditSink
from tests.support.audit import committed

pytestmark = pytest.mark.django_db

HMAC_KEY = "a-webhook-hmac-key-0123456789"


def log_events(org, count: int, *, action: str = "test.event") -> list[AuditEvent]:
    """``count`` audited transactions, each committed (its events, and the chain's earlier ones, sealed)."""
    events = []
    for n in range(count):
        with committed():
            events.append(
                audit_log(actor=None, action=action, org=org, target_type="test", target_repr=f"event {n}")
            )
    return events


def chain_seqs(org) -> list[int]:
    chain = org.pk if org is not None else 0
    return list(AuditEvent.objects.filter(chain=chain).order_by("seq").values_list("seq", flat=True))


def first_arrivals(seqs: list[int]) -> list[int]:
    seen, firsts = set(), []
    for seq in seqs:
        if seq not in seen:
            seen.add(seq)
            firsts.append(seq)
    return firsts


def assert_at_least_once_in_order(received: list[int], expected: list[int]) -> None:
    """Every expected seq arrived (once or more), first arrivals in order, and a re-send only ever goes
    back to re-send a run of events again in order (never a gap)."""
    assert set(expected) <= set(received), f"lost: {sorted(set(expected) - set(received))}"
    assert first_arrivals(received) == sorted(first_arrivals(received))
    highest = 0
    for seq in received:
        assert seq <= highest + 1, f"gap before {seq}"
        highest = max(highest, seq)


# --- syslog over TLS to a real rsyslogd ----------------------------------------------------------------


def test_syslog_over_tls_reaches_rsyslog_in_order(world, rsyslog_receiver, siem_pki):
    org, admin = world.a.org, world.a.users["org_admin"]
    mark = rsyslog_receiver.mark()
    sink = audit_sink_create(
        actor=admin,
        org=org,
        name="siem",
        kind="syslog",
        url=rsyslog_receiver.url,
        ca_pem=siem_pki.ca_pem,
        batch_size=7,
    )
    log_events(org, 20)
    expected = chain_seqs(org)

    audit_stream.deliver_due()

    sink.refresh_from_db()
    assert sink.cursor == expected[-1] and sink.health == "healthy" and sink.last_delivery_at
    # The cursor moved only once rsyslogd read the batches (its close_notify came back): they are there.
    received = [seq for seq, _ in rsyslog_receiver.received(org.pk, after=mark)]
    assert_at_least_once_in_order(received, expected)
    assert received == expected  # nothing failed, so nothing was sent twice
    seq, line = rsyslog_receiver.received(org.pk, after=mark)[-1]
    # RFC 5424: <PRI>VERSION, facility log audit (13) / info (6) = 110; MSGID = the action; the SD
    # carries the chain position; MSG = the event as JSON after the BOM.
    assert line.startswith("<110>1 ")
    event = AuditEvent.objects.get(chain=org.pk, seq=seq)
    assert f" gpupaas - {event.action} [gpupaas@32473 " in line
    body = json.loads(line.split("\ufeff", 1)[1])
    assert body["seq"] == seq and body["hash"] == event.hash and body["org_id"] == org.pk
    assert lag(audit_sink_list_for(admin).get(pk=sink.pk)) == 0


def test_syslog_refuses_a_receiver_whose_certificate_it_cannot_verify(world, rsyslog_receiver, siem_pki):
    org, admin = world.a.org, world.a.users["org_admin"]
    mark = rsyslog_receiver.mark()
    sink = audit_sink_create(
        actor=admin,
        org=org,
        name="wrong ca",
        kind="syslog",
        url=rsyslog_receiver.url,
        ca_pem=siem_pki.other_ca.cert.read_text(),
    )
    log_events(org, 2)

    audit_stream.deliver_due()

    sink.refresh_from_db()
    assert sink.cursor == 0 and sink.consecutive_failures == 1
    assert "certificate" in sink.last_error
    assert rsyslog_receiver.received(org.pk, after=mark) == []


def test_syslog_receiver_down_then_back_gets_everything_in_order(world, siem_pki, tmp_path):
    from tests.support.siem import Rsyslog
    from tests.toolchain import rsyslog

    receiver = Rsyslog(rsyslog.ensure(), tmp_path, siem_pki).start()
    try:
        org, admin = world.b.org, world.b.users["org_admin"]
        sink = audit_sink_create(
            actor=admin,
            org=org,
            name="siem",
            kind="syslog",
            url=receiver.url,
            ca_pem=siem_pki.ca_pem,
            batch_size=5,
            backoff_initial_seconds=30,
            unhealthy_after=2,
        )
        audit_stream.deliver_due()
        receiver.stop(crash=True)
        log_events(org, 8)
        with time_machine.travel(timezone.now(), tick=False) as clock:
            for _ in range(2):
                audit_stream.deliver_due()
                clock.shift(timedelta(seconds=60))
            sink.refresh_from_db()
            assert sink.health == "unhealthy" and "cannot connect" in sink.last_error
            receiver.start()  # back on the same port
            audit_stream.deliver_due()
        sink.refresh_from_db()
        expected = chain_seqs(org)
        assert sink.cursor == expected[-1] and sink.health == "healthy"
        received = [seq for seq, _ in receiver.received(org.pk)]
        assert_at_least_once_in_order(received, expected)
    finally:
        receiver.stop(crash=True)


# --- HTTPS webhook --------------------------------------------------------------------------------------


def webhook_sink(admin, org, receiver, pki, **kwargs) -> AuditSink:
    options = {
        "batch_size": 4,
        "backoff_initial_seconds": 10,
        "backoff_max_seconds": 40,
        "unhealthy_after": 3,
    }
    options |= {
        "name": "webhook",
        "kind": "https",
        "url": receiver.url(),
        "secret": HMAC_KEY,
        "ca_pem": pki.ca_pem,
    }
    return audit_sink_create(actor=admin, org=org, **(options | kwargs))


def test_webhook_is_signed_and_batched_in_order(world, https_receiver, siem_pki):
    org, admin = world.a.org, world.a.users["org_admin"]
    webhook_sink(admin, org, https_receiver, siem_pki)
    log_events(org, 9)

    audit_stream.deliver_due()

    expected = chain_seqs(org)
    assert [e["seq"] for e in https_receiver.events()] == expected
    sizes = [len(r.json_events()) for r in https_receiver.requests]
    assert all(size == 4 for size in sizes[:-1]) and 1 <= sizes[-1] <= 4
    for request in https_receiver.requests:
        timestamp = request.headers["X-Timestamp"]
        mac = hmac.new(
            HMAC_KEY.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256
        ).hexdigest()
        assert request.headers["X-Signature"] == f"sha256={mac}"
        assert HMAC_KEY not in request.body.decode()
    # Events of another org never reach this org's sink.
    log_events(world.b.org, 2)
    before = len(https_receiver.requests)
    audit_stream.deliver_due()
    assert len(https_receiver.requests) == before


def test_a_receiver_down_for_a_while_gets_everything_once_back(world, https_receiver, siem_pki):
    org, admin = world.a.org, world.a.users["org_admin"]
    sink = webhook_sink(admin, org, https_receiver, siem_pki)
    log_events(org, 5)
    audit_stream.deliver_due()
    assert https_receiver.events()

    https_receiver.stop()  # down: connections refused
    log_events(org, 6)
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        audit_stream.deliver_due()
        sink.refresh_from_db()
        assert sink.consecutive_failures == 1 and sink.health == "failing"
        assert "cannot reach" in sink.last_error
        first_retry = sink.next_attempt_at
        assert first_retry == start + timedelta(seconds=10)

        audit_stream.deliver_due()  # not due yet: no attempt, no failure counted
        sink.refresh_from_db()
        assert sink.consecutive_failures == 1

        for waited in (10, 20):  # the backoff doubles: 10 s, 20 s, then 40 s (the cap)
            clock.shift(timedelta(seconds=waited))
            audit_stream.deliver_due()
        sink.refresh_from_db()
        assert sink.consecutive_failures == 3 and sink.health == "unhealthy"
        assert sink.next_attempt_at == timezone.now() + timedelta(seconds=40)
        log_events(org, 3)  # the trail keeps growing while the receiver is down

        https_receiver.start()  # back, on the same port
        https_receiver.drop_after_read = 1  # and the first request it reads is lost before its answer
        clock.shift(timedelta(seconds=40))
        audit_stream.deliver_due()  # that attempt fails after the receiver read it
        sink.refresh_from_db()
        assert sink.consecutive_failures == 4
        clock.shift(timedelta(seconds=40))
        audit_stream.deliver_due()  # catches up from the cursor

    sink.refresh_from_db()
    expected = chain_seqs(org)
    assert sink.cursor == expected[-1] and sink.health == "healthy" and sink.next_attempt_at is None
    received = [event["seq"] for event in https_receiver.events()]
    assert_at_least_once_in_order(received, expected)
    assert len(received) > len(set(received))  # the dropped batch came twice: at least once, not at most


def test_splunk_hec_format(world, https_receiver, siem_pki):
    org, admin = world.a.org, world.a.users["org_admin"]
    audit_sink_create(
        actor=admin,
        org=org,
        name="splunk",
        kind="splunk_hec",
        url=https_receiver.url("/services/collector/event"),
        secret="hec-token-1234",
        ca_pem=siem_pki.ca_pem,
        sourcetype="paas:audit",
    )
    log_events(org, 3)
    audit_stream.deliver_due()

    request = https_receiver.requests[0]
    assert request.path == "/services/collector/event"
    assert request.headers["Authorization"] == "Splunk hec-token-1234"
    first = json.loads(request.body.decode().splitlines()[0])
    assert set(first) == {"time", "host", "source", "sourcetype", "event"}
    assert first["sourcetype"] == "paas:audit" and first["event"]["seq"] == 1
    assert [e["seq"] for e in https_receiver.events()] == chain_seqs(org)


def test_platform_sink_streams_chain_zero_only(world, https_receiver, siem_pki):
    sink = webhook_sink(world.operator, None, https_receiver, siem_pki, batch_size=100)
    log_events(None, 2, action="platform.event")
    log_events(world.a.org, 2)
    audit_stream.deliver_due()
    events = https_receiver.events()
    assert {e["chain"] for e in events} == {0} and [e["seq"] for e in events] == chain_seqs(None)
    sink.refresh_from_db()
    assert sink.cursor == chain_seqs(None)[-1]


# --- the outbound-address policy ----------------------------------------------------------------------


def test_address_refused_when_saved_and_when_connecting(world, https_receiver, siem_pki, settings):
    org, admin = world.a.org, world.a.users["org_admin"]
    settings.PAAS_OUTBOUND_ALLOW_LOOPBACK = False
    for url in (
        https_receiver.url(),
        "https://169.254.169.254/",
        "https://2130706433/",
        "file:///etc/passwd",
    ):
        with pytest.raises(ValidationFailed) as refused:
            webhook_sink(admin, org, https_receiver, siem_pki, url=url)
        assert "url" in refused.value.fields
    with pytest.raises(ValidationFailed) as refused:
        webhook_sink(admin, org, https_receiver, siem_pki, url=f"http://127.0.0.1:{https_receiver.port}/")
    assert "scheme" in refused.value.fields["url"][0]

    settings.PAAS_OUTBOUND_ALLOW_LOOPBACK = True
    with pytest.raises(ValidationFailed) as refused:
        webhook_sink(
            admin, org, https_receiver, siem_pki, url=f"https://u:pw@127.0.0.1:{https_receiver.port}/"
        )
    assert "credentials" in refused.value.fields["url"][0]
    sink = webhook_sink(admin, org, https_receiver, siem_pki)
    settings.PAAS_OUTBOUND_ALLOW_LOOPBACK = False  # the policy changed since: checked again at connect
    log_events(org, 1)
    audit_stream.deliver_due()
    sink.refresh_from_db()
    assert "refused" in sink.last_error and sink.cursor == 0
    assert https_receiver.attempts == 0


def test_invalid_settings_are_refused_with_field_errors(world, https_receiver, siem_pki):
    org, admin = world.a.org, world.a.users["org_admin"]
    with pytest.raises(ValidationFailed) as refused:
        audit_sink_create(
            actor=admin,
            org=org,
            name="",
            kind="https",
            url=https_receiver.url(),
            secret="short",
            ca_pem="-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n",
            backoff_initial_seconds=60,
            backoff_max_seconds=10,
            batch_size=0,
        )
    assert {"name", "secret", "ca_pem", "backoff_max_seconds", "batch_size"} <= set(refused.value.fields)


# --- who may set which sink -------------------------------------------------------------------------


def test_only_org_admins_set_their_org_and_only_operators_the_platform(world, https_receiver, siem_pki):
    a_admin, b_admin = world.a.users["org_admin"], world.b.users["org_admin"]
    with pytest.raises(NotFound):
        webhook_sink(b_admin, world.a.org, https_receiver, siem_pki)
    with pytest.raises(Forbidden):  # operators run the org, not its trail (no support access)
        webhook_sink(world.operator, world.a.org, https_receiver, siem_pki)
    with pytest.raises(Forbidden):
        webhook_sink(world.a.users["paas_admin_org"], world.a.org, https_receiver, siem_pki)
    with pytest.raises(Forbidden):
        webhook_sink(a_admin, None, https_receiver, siem_pki)
    sink = webhook_sink(a_admin, world.a.org, https_receiver, siem_pki)
    platform = webhook_sink(
        world.operator,
        None,
        https_receiver,
        siem_pki,
    )
    assert list(audit_sink_list_for(a_admin)) == [sink]
    assert list(audit_sink_list_for(b_admin)) == []
    assert list(audit_sink_list_for(world.operator)) == [platform]
    assert list(audit_sink_list_for(world.a.users["collaborator_rw"])) == []
    event = AuditEvent.objects.get(chain=world.a.org.pk, action="audit_sink.create")
    assert event.actor_id == a_admin.pk and HMAC_KEY not in json.dumps(event.details)


# --- API ----------------------------------------------------------------------------------------------


def test_api_create_list_update_delete(world, api, https_receiver, siem_pki):
    org, admin = world.a.org, world.a.users["org_admin"]
    api.as_user(admin)
    body = {
        "org": org.pk,
        "name": "api webhook",
        "kind": "https",
        "url": https_receiver.url(),
        "secret": HMAC_KEY,
        "ca_pem": siem_pki.ca_pem,
    }
    created = api.post("/api/v1/audit-sinks/", body, format="json")
    assert created.status_code == 201, created.content
    assert "secret" not in created.json() and HMAC_KEY not in created.content.decode()
    assert created.json()["health"] == "healthy" and created.json()["lag"] >= 1
    sink_id = created.json()["id"]

    listed = api.get("/api/v1/audit-sinks/").json()
    rows = listed["results"] if isinstance(listed, dict) else listed
    assert [row["id"] for row in rows] == [sink_id]

    changed = api.patch(f"/api/v1/audit-sinks/{sink_id}/", {"backoff_max_seconds": 600}, format="json")
    assert changed.status_code == 200 and changed.json()["backoff_max_seconds"] == 600
    bad = api.patch(f"/api/v1/audit-sinks/{sink_id}/", {"url": "https://169.254.169.254/"}, format="json")
    assert bad.status_code == 400 and "refused" in bad.json()["error"]["fields"]["url"][0]

    # Another org's admin and the operator (no support access) see nothing of it.
    assert api.as_user(world.b.users["org_admin"]).get(f"/api/v1/audit-sinks/{sink_id}/").status_code == 404
    assert api.as_user(world.operator).get(f"/api/v1/audit-sinks/{sink_id}/").status_code == 404
    refused = api.as_user(world.b.users["org_admin"]).post("/api/v1/audit-sinks/", body, format="json")
    assert refused.status_code in (400, 404)

    retried = api.as_user(admin).post(f"/api/v1/audit-sinks/{sink_id}/retry/")
    assert retried.status_code == 200 and retried.json()["next_attempt_at"] is None
    assert api.as_user(admin).delete(f"/api/v1/audit-sinks/{sink_id}/").status_code == 204
    assert not AuditSink.objects.filter(pk=sink_id).exists()


def test_api_platform_sinks_are_the_operators(world, api, https_receiver, siem_pki):
    body = {"name": "platform", "kind": "https", "url": https_receiver.url(), "secret": HMAC_KEY}
    assert (
        api.as_user(world.a.users["org_admin"]).post("/api/v1/audit-sinks/", body, format="json").status_code
        == 403
    )
    created = api.as_user(world.operator).post("/api/v1/audit-sinks/", body, format="json")
    assert created.status_code == 201 and created.json()["org"] is None


# --- studio -------------------------------------------------------------------------------------------


def test_studio_shows_lag_health_and_last_error(world, client, https_receiver, siem_pki):
    org, admin = world.a.org, world.a.users["org_admin"]
    sink = webhook_sink(admin, org, https_receiver, siem_pki)
    https_receiver.stop()
    log_events(org, 3)
    audit_stream.deliver_due()
    client.force_login(admin)
    page = client.get("/studio/paas/auditsink/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "webhook" in text and "failing" in text and "cannot reach" in text
    assert HMAC_KEY not in text
    change = client.get(f"/studio/paas/auditsink/{sink.pk}/change/")
    assert change.status_code == 200 and HMAC_KEY not in change.content.decode()
    client.force_login(world.b.users["org_admin"])
    assert client.get(f"/studio/paas/auditsink/{sink.pk}/change/").status_code in (302, 404)


def test_studio_add_form_creates_through_the_service(world, client, https_receiver, siem_pki):
    org, admin = world.a.org, world.a.users["org_admin"]
    client.force_login(admin)
    data = {
        "org": org.pk,
        "name": "from studio",
        "kind": "https",
        "url": https_receiver.url(),
        "new_secret": HMAC_KEY,
        "ca_pem": siem_pki.ca_pem,
        "sourcetype": "gpupaas:audit",
        "enabled": "on",
        "batch_size": 100,
        "backoff_initial_seconds": 5,
        "backoff_max_seconds": 300,
        "unhealthy_after": 5,
    }
    bad = client.post("/studio/paas/auditsink/add/", data | {"url": "https://169.254.169.254/"})
    assert bad.status_code == 200 and "refused" in bad.content.decode()
    done = client.post("/studio/paas/auditsink/add/", data)
    assert done.status_code == 302, done.content.decode()[:2000]
    sink = AuditSink.objects.get(name="from studio")
    assert sink.org == org and sink.secret.reveal() == HMAC_KEY


def test_support_access_read_sees_the_org_sinks_and_cannot_change_them(world, https_receiver, siem_pki):
    from paas import authz
    from tenancy.support_models import SupportAccess

    sink = webhook_sink(world.a.users["org_admin"], world.a.org, https_receiver, siem_pki)
    operator = world.operator
    now = timezone.now()
    grant = SupportAccess.objects.create(
        org=world.a.org,
        user=operator,
        reason="ticket 42",
        level="read",
        duration_minutes=60,
        state="approved",
        starts_at=now,
        expires_at=now + timedelta(hours=1),
    )
    authz.forget(operator)
    assert list(audit_sink_list_for(operator)) == [sink]
    from paas.audit_sinks import audit_sink_update

    with pytest.raises(Forbidden):
        audit_sink_update(actor=operator, sink=sink, batch_size=10)
    SupportAccess.objects.filter(pk=grant.pk).update(level="admin")
    authz.forget(operator)
    assert audit_sink_update(actor=operator, sink=sink, batch_size=10).batch_size == 10


# --- the secret, the schedule ------------------------------------------------------------------------


def test_secret_is_encrypted_at_rest_and_write_only(world, api, https_receiver, siem_pki):
    from django.db import connection

    sink = webhook_sink(world.a.users["org_admin"], world.a.org, https_receiver, siem_pki)
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM paas_auditsink WHERE id = %s", [sink.pk])
        stored = cursor.fetchone()[0]
    assert stored.startswith("ok1:") and HMAC_KEY not in stored  # under the org's data key (paas/keyring.py)
    response = api.as_user(world.a.users["org_admin"]).get(f"/api/v1/audit-sinks/{sink.pk}/")
    assert response.status_code == 200 and HMAC_KEY not in response.content.decode()


def test_the_schedule_runs_the_delivery(world, https_receiver, siem_pki, settings):
    from django_q.models import Schedule

    from paas import tasks

    schedule = Schedule.objects.get(name="audit stream")
    assert schedule.func == "paas.tasks.audit_stream" and schedule.minutes == 1
    with committed():  # the sink's own event is sealed, hence streamed, once its transaction commits
        webhook_sink(world.a.users["org_admin"], world.a.org, https_receiver, siem_pki, batch_size=1000)
    settings.PAAS_AUDIT_STREAM_LOOP_SECONDS = 0
    tasks.audit_stream()
    assert [e["seq"] for e in https_receiver.events()] == chain_seqs(world.a.org)


# --- the streamer process (manage.py audit_stream, which manage.py serve runs beside the worker) ------


@pytest.mark.django_db(transaction=True)
def test_the_streamer_process_delivers_new_events_within_seconds_and_stops_on_sigterm(
    https_receiver, siem_pki
):
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from tests.factories import make_operator
    from tests.support.processes import database_url
    from tests.support.wait import wait_for

    operator = make_operator(username="streamer-op")
    webhook_sink(operator, None, https_receiver, siem_pki, batch_size=100)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "paas.settings.test",
        "DATABASE_URL": database_url(),
        "PAAS_AUDIT_STREAM_POLL_SECONDS": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "manage.py", "audit_stream"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        log_events(None, 3, action="platform.event")  # committed: the process sees them
        expected = chain_seqs(None)
        wait_for(
            lambda: process.poll() is not None or [e["seq"] for e in https_receiver.events()] == expected,
            timeout=60,
            interval=0.1,
            what="the streamer delivering the platform's events",
        )
        assert process.poll() is None, process.stdout.read().decode(errors="replace")[-2000:]
        log_events(None, 2, action="platform.event")  # and later ones, without a schedule running
        expected = chain_seqs(None)
        wait_for(
            lambda: [e["seq"] for e in https_receiver.events()] == expected,
            timeout=30,
            interval=0.1,
            what="the next events",
        )
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
