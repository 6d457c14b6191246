"""The audit trail: one event per state change, append-only in the database, tamper-evident."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.db.utils import DatabaseError

from paas import audit
from paas.context import Client, client_context
from paas.errors import ValidationFailed
from paas.models import AuditEvent
from paas.services import api_token_create, api_token_revoke
from tenancy import services
from tenancy.roles import Role
from tests.factories import UserFactory


def _actions_since(mark: int) -> list[str]:
    return list(AuditEvent.objects.filter(pk__gt=mark).order_by("pk").values_list("action", flat=True))


def _mark() -> int:
    last = AuditEvent.objects.order_by("-pk").first()
    return last.pk if last else 0


def test_every_service_writes_its_event(world):
    op, a = world.operator, world.a
    admin = a.users["org_admin"]
    steps = [
        (lambda: services.org_update(actor=admin, org=a.org, display_name="A!"), ["org.update"]),
        (lambda: services.project_create(actor=admin, org=a.org, name="p2"), ["project.create"]),
        (
            lambda: services.project_update(actor=admin, project=a.project, description="x"),
            ["project.update"],
        ),
        (lambda: services.project_delete(actor=admin, project=a.spare_project), ["project.delete"]),
        (lambda: services.quota_update(actor=admin, quota=a.project.quota, gpus=2), ["quota.update"]),
        (
            lambda: services.role_assign(
                actor=admin, user=a.users["collaborator_ro"], role=Role.COLLABORATOR_RW, project=a.project
            ),
            ["role.assign"],
        ),
        (
            lambda: services.role_revoke(
                actor=admin,
                assignment=a.users["collaborator_ro"].role_assignments.get(role=Role.COLLABORATOR_RW),
            ),
            ["role.revoke"],
        ),
        (
            lambda: services.invitation_create(
                actor=admin, org=a.org, email="z@example.com", role=Role.COLLABORATOR_RO, project=a.project
            ),
            ["invitation.create"],
        ),
        (
            lambda: services.invitation_revoke(
                actor=admin, invitation=a.org.invitations.get(email="z@example.com")
            ),
            ["invitation.revoke"],
        ),
        (
            lambda: services.user_update(actor=op, user=a.users["collaborator_ro"], first_name="Zed"),
            ["user.update"],
        ),
        (lambda: api_token_create(actor=admin, name="ci"), ["api_token.create"]),
        (
            lambda: api_token_revoke(actor=admin, api_token=admin.api_tokens.get(name="ci")),
            ["api_token.revoke"],
        ),
        (
            lambda: services.org_onboard(
                actor=op,
                name="neworg",
                admin_email="boss@new.example.com",
                admin_first_name="B",
                admin_last_name="O",
            ),
            ["org.create", "invitation.create"],
        ),
    ]
    for run, expected in steps:
        mark = _mark()
        run()
        assert _actions_since(mark) == expected
    assert audit.audit_verify().ok


def test_event_carries_context_and_scope(world):
    admin = world.a.users["org_admin"]
    with client_context(client=Client.STUDIO, request_id="req-1234567890"):
        services.project_update(actor=admin, project=world.a.project, description="ctx")
    event = AuditEvent.objects.latest("pk")
    assert (event.client, event.request_id, event.actor_id, event.actor_repr) == (
        "studio",
        "req-1234567890",
        admin.pk,
        admin.email,
    )
    assert (event.org_id, event.project_id, event.target_type, event.target_id) == (
        world.a.org.pk,
        world.a.project.pk,
        "tenancy.project",
        str(world.a.project.pk),
    )
    assert event.details == {"changes": {"description": ["", "ctx"]}}
    assert event.chain == world.a.org.pk


def test_api_request_id_reaches_the_event(world, client):
    client.force_login(world.a.users["org_admin"])
    response = client.patch(
        f"/api/v1/projects/{world.a.project.pk}/",
        {"description": "via api"},
        content_type="application/json",
        HTTP_X_REQUEST_ID="abcdef0123456789",
    )
    assert response.status_code == 200 and response["X-Request-ID"] == "abcdef0123456789"
    event = AuditEvent.objects.latest("pk")
    assert (event.client, event.request_id) == ("api", "abcdef0123456789")


def test_a_failed_change_leaves_no_event(world):
    mark = _mark()
    with pytest.raises(ValidationFailed) as failure:
        services.project_create(actor=world.a.users["org_admin"], org=world.a.org, name="team")
    assert "already exists" in failure.value.fields["name"][0]
    assert _actions_since(mark) == []


def test_update_and_delete_are_refused_by_the_database(world):
    event = AuditEvent.objects.filter(org=world.a.org).first()
    for statement in (
        f"UPDATE paas_auditevent SET action = 'forged' WHERE id = {event.pk}",
        f"DELETE FROM paas_auditevent WHERE id = {event.pk}",
    ):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cur,
        ):
            cur.execute(statement)
    with pytest.raises(RuntimeError):
        event.save()
    with pytest.raises(RuntimeError):
        event.delete()
    assert AuditEvent.objects.get(pk=event.pk).action == event.action


def _tamper(sql: str) -> None:
    """What an attacker with table-owner rights could do: bypass the trigger, then alter rows."""
    with connection.cursor() as cur:
        cur.execute("ALTER TABLE paas_auditevent DISABLE TRIGGER USER")
        cur.execute(sql)
        cur.execute("ALTER TABLE paas_auditevent ENABLE TRIGGER USER")


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        (
            "UPDATE paas_auditevent SET details = '{\"forged\": true}' WHERE id = {pk}",
            "content does not match",
        ),
        ("DELETE FROM paas_auditevent WHERE id = {pk}", "event missing"),
        ("UPDATE paas_auditevent SET hash = repeat('a', 64) WHERE id = {pk}", "content does not match"),
    ],
)
def test_audit_verify_finds_the_first_broken_link(world, sql, reason, capsys):
    call_command("audit_verify")  # intact chain passes
    events = list(AuditEvent.objects.filter(chain=world.a.org.pk).order_by("seq"))
    victim = events[2]
    _tamper(sql.replace("{pk}", str(victim.pk)))
    result = audit.audit_verify()
    assert not result.ok
    broken = [b for b in result.broken if b.chain == world.a.org.pk]
    assert len(broken) == 1 and broken[0].seq == victim.seq and reason in broken[0].reason
    with pytest.raises(CommandError, match="broken"):
        call_command("audit_verify")
    assert f"seq {victim.seq}" in capsys.readouterr().err


def test_recomputed_hash_still_breaks_the_next_link(world):
    """Re-hashing a forged row is not enough: the next event's prev_hash gives it away."""
    events = list(AuditEvent.objects.filter(chain=world.a.org.pk).order_by("seq"))
    victim = events[1]
    victim.details = {"forged": True}
    new_hash = audit.compute_hash(victim)
    forged = "'{\"forged\": true}'"
    _tamper(f"UPDATE paas_auditevent SET details = {forged}, hash = '{new_hash}' WHERE id = {victim.pk}")
    broken = [b for b in audit.audit_verify().broken if b.chain == world.a.org.pk]
    assert broken[0].seq == events[2].seq and "previous-hash" in broken[0].reason


def test_audit_log_requires_the_callers_transaction(db):
    user = UserFactory()
    with pytest.raises(RuntimeError, match="inside the transaction"):
        _outside_transaction(user)


def _outside_transaction(user):
    # pytest-django wraps tests in a transaction; leave it to check the guard truthfully.
    connection.in_atomic_block, saved = False, connection.in_atomic_block
    try:
        audit.audit_log(actor=user, action="x.y", target_type="t")
    finally:
        connection.in_atomic_block = saved
