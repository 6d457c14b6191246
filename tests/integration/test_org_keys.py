"""Per-organization data keys (paas.keyring): each org's secrets under its own key, rotated or destroyed
(crypto-shredded) on their own; platform-key tokens stored before keep reading; platform-key rotation
re-wraps the data keys."""

import re

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from rest_framework.test import APIClient

from catalog import registries, secret_inputs
from catalog import services as catalog_services
from catalog.models import ComputeProfile, ContainerRegistry
from paas import keyring, secrets
from paas.errors import Conflict, Forbidden, NotFound, ValidationFailed
from paas.keyring_models import KeyState, OrgDataKey
from paas.models import AuditEvent
from paas.org_keys import org_key_destroy, org_key_list_for, org_key_rotate
from tenancy.models import Organization
from tenancy.services.orgs import org_update
from tests.factories import ONE_A100

SECRET_MANIFESTS = (
    "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {{ instance.name }}-db\n"
    "stringData:\n  password: {{ inputs.password }}\n"
)


def _registry(tenant, name="reg", credential="pull-token-of-{}"):
    return registries.registry_create(
        actor=tenant.users["org_admin"],
        org=tenant.org,
        name=name,
        provider=ContainerRegistry.Provider.GENERIC,
        endpoint="127.0.0.1:5999",
        scheme="http",
        username="robot",
        credential=credential.format(tenant.org.name),
    )


def _secret_profile(tenant, password):
    admin = tenant.users["org_admin"]
    template = catalog_services.template_create(actor=admin, project=tenant.project, name="db")
    version = catalog_services.template_version_create(
        actor=admin,
        template=template,
        version="v1",
        manifests=SECRET_MANIFESTS,
        inputs=[{"name": "password", "type": "secret", "required": True}],
    )
    version = catalog_services.template_version_publish(actor=admin, version=version)
    return catalog_services.profile_create(
        actor=admin,
        model=ComputeProfile,
        project=tenant.project,
        name="db",
        template_version=version,
        published=True,
        resource_groups=ONE_A100,
        input_values={"password": password},
    )


def _raw(table: str, column: str, pk: int):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column}::text FROM {table} WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def _set_raw(table: str, column: str, pk: int, value: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET {column} = %s WHERE id = %s", [value, pk])


def _stored_bytes_of(org) -> dict:
    """Every stored secret and key of ``org``, as the database holds them."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, credential, token FROM catalog_containerregistry WHERE org_id = %s ORDER BY id",
            [org.pk],
        )
        registries_ = cursor.fetchall()
        table, pk = ComputeProfile._meta.db_table, ComputeProfile._meta.pk.column
        cursor.execute(
            f"SELECT {pk}, input_values::text FROM {table} WHERE {pk} = ANY(%s) ORDER BY {pk}",
            [list(ComputeProfile.objects.filter(org=org).values_list("pk", flat=True))],
        )
        profiles = cursor.fetchall()
        cursor.execute(
            "SELECT id, version, state, wrapped_key FROM paas_orgdatakey WHERE org_id = %s ORDER BY id",
            [org.pk],
        )
        keys = cursor.fetchall()
    return {"registries": registries_, "profiles": profiles, "keys": keys}


def test_an_orgs_secrets_are_under_its_own_wrapped_data_key(world):
    reg_a, reg_b = _registry(world.a), _registry(world.b)
    token_a = _raw("catalog_containerregistry", "credential", reg_a.pk)
    token_b = _raw("catalog_containerregistry", "credential", reg_b.pk)
    key_a = OrgDataKey.objects.get(org=world.a.org, state=KeyState.ACTIVE)
    key_b = OrgDataKey.objects.get(org=world.b.org, state=KeyState.ACTIVE)
    assert token_a.startswith(f"ok1:{key_a.pk}:") and token_b.startswith(f"ok1:{key_b.pk}:")
    assert "pull-token" not in token_a
    # The data key is stored wrapped under the platform keys, and it alone opens the org's tokens.
    data_key = secrets.decrypt(key_a.wrapped_key)
    assert data_key not in key_a.wrapped_key
    from cryptography.fernet import Fernet, InvalidToken

    assert Fernet(data_key.encode()).decrypt(token_a.split(":", 2)[2].encode()) == b"pull-token-of-orga"
    with pytest.raises(InvalidToken):
        Fernet(data_key.encode()).decrypt(token_b.split(":", 2)[2].encode())
    assert ContainerRegistry.objects.get(pk=reg_a.pk).credential.reveal() == "pull-token-of-orga"
    # A second registry reuses the org's one active key; a system registry stays on the platform keys.
    _registry(world.a, name="reg2")
    assert OrgDataKey.objects.filter(org=world.a.org).count() == 1
    system = registries.registry_create(
        actor=world.operator,
        name="sys",
        provider=ContainerRegistry.Provider.GENERIC,
        endpoint="127.0.0.1:5999",
        scheme="http",
        username="robot",
        credential="system-token",
    )
    assert keyring.key_id_of(_raw("catalog_containerregistry", "credential", system.pk)) is None
    # Secret inputs too.
    profile = _secret_profile(world.a, "db-password-a")
    assert profile.input_values["password"]["encrypted"].startswith(f"ok1:{key_a.pk}:")
    assert secret_inputs.unseal(profile.input_values) == {"password": "db-password-a"}


def test_one_active_key_per_org(world):
    _registry(world.a)
    with pytest.raises(IntegrityError), transaction.atomic():
        OrgDataKey.objects.create(org=world.a.org, version=2, wrapped_key=secrets.encrypt("x"))


def test_rotating_one_org_touches_no_other_orgs_bytes(world):
    reg_a, _ = _registry(world.a), _registry(world.b)
    profile_a, _ = _secret_profile(world.a, "pw-a"), _secret_profile(world.b, "pw-b")
    # A value stored before per-org keys (a platform-key token) in org A's row still reads ...
    legacy = registries.registry_create(
        actor=world.a.users["org_admin"],
        org=world.a.org,
        name="legacy",
        provider=ContainerRegistry.Provider.GENERIC,
        endpoint="127.0.0.1:5999",
        scheme="http",
    )
    _set_raw("catalog_containerregistry", "credential", legacy.pk, secrets.encrypt("legacy-token"))
    assert ContainerRegistry.objects.get(pk=legacy.pk).credential.reveal() == "legacy-token"
    old_key = OrgDataKey.objects.get(org=world.a.org, state=KeyState.ACTIVE)
    before_a, before_b = _stored_bytes_of(world.a.org), _stored_bytes_of(world.b.org)

    new_key = org_key_rotate(actor=world.a.users["org_admin"], org=world.a.org)

    assert new_key.version == old_key.version + 1 and new_key.state == KeyState.ACTIVE
    assert _stored_bytes_of(world.b.org) == before_b  # not one byte of org B changed
    after_a = _stored_bytes_of(world.a.org)
    assert after_a["registries"] != before_a["registries"] and after_a["profiles"] != before_a["profiles"]
    for pk in (reg_a.pk, legacy.pk):  # ... and moves under the org's new key with the rest
        assert keyring.key_id_of(_raw("catalog_containerregistry", "credential", pk)) == new_key.pk
    keyring.forget()
    assert ContainerRegistry.objects.get(pk=reg_a.pk).credential.reveal() == "pull-token-of-orga"
    assert ContainerRegistry.objects.get(pk=legacy.pk).credential.reveal() == "legacy-token"
    profile_a.refresh_from_db()
    assert profile_a.input_values["password"]["encrypted"].startswith(f"ok1:{new_key.pk}:")
    assert secret_inputs.unseal(profile_a.input_values) == {"password": "pw-a"}
    old_key.refresh_from_db()
    assert old_key.state == KeyState.DESTROYED and old_key.wrapped_key == ""
    event = AuditEvent.objects.get(action="org_key.rotate")
    assert event.org_id == world.a.org.pk and event.actor_id == world.a.users["org_admin"].pk
    assert event.details["reencrypted"] == 3 and event.details["version"] == new_key.version
    assert "pull-token" not in str(event.details) and "pw-a" not in str(event.details)


def test_who_may_rotate_and_destroy(world):
    _registry(world.a)
    with pytest.raises(NotFound):
        org_key_rotate(actor=world.b.users["org_admin"], org=world.a.org)
    with pytest.raises((NotFound, Forbidden)):
        org_key_rotate(actor=world.a.users["collaborator_rw"], org=world.a.org)
    org_key_rotate(actor=world.operator, org=world.a.org)  # operators rotate any org's key
    with pytest.raises(Forbidden):
        org_key_destroy(actor=world.a.users["org_admin"], org=world.a.org, confirm=world.a.org.name)
    with pytest.raises(Conflict, match="deactivate"):
        org_key_destroy(actor=world.operator, org=world.a.org, confirm=world.a.org.name)
    assert OrgDataKey.objects.filter(org=world.a.org, state=KeyState.ACTIVE).exists()
    assert [row.org for row in org_key_list_for(world.a.users["org_admin"])] == [world.a.org]
    assert {row.org for row in org_key_list_for(world.operator)} >= {world.a.org, world.b.org}
    assert org_key_list_for(world.a.users["collaborator_ro"]) == []


def test_destroyed_keys_make_the_orgs_secrets_unreadable_with_a_clear_message(world, api):
    reg_b = _registry(world.b)
    legacy = _registry(world.b, name="legacy")
    _set_raw("catalog_containerregistry", "credential", legacy.pk, secrets.encrypt("legacy-b"))
    profile_b = _secret_profile(world.b, "pw-b")
    reg_a = _registry(world.a)
    before_a = _stored_bytes_of(world.a.org)
    org_update(actor=world.operator, org=world.b.org, is_active=False)
    with pytest.raises(ValidationFailed) as refused:
        org_key_destroy(actor=world.operator, org=world.b.org, confirm="orga")
    assert "confirm" in refused.value.fields

    assert org_key_destroy(actor=world.operator, org=world.b.org, confirm="orgb") == 1

    assert not OrgDataKey.objects.filter(org=world.b.org).exclude(wrapped_key="").exists()
    assert AuditEvent.objects.filter(action="org_key.destroy", org_id=world.b.org.pk).exists()
    assert _stored_bytes_of(world.a.org) == before_a
    assert ContainerRegistry.objects.get(pk=reg_a.pk).credential.reveal() == "pull-token-of-orga"
    for pk in (reg_b.pk, legacy.pk):  # the platform-key one was moved under the key before it went
        stored = ContainerRegistry.objects.get(pk=pk).credential
        assert isinstance(stored, secrets.UnreadableSecret) and stored
        with pytest.raises(keyring.SecretUnreadable, match="keys were destroyed"):
            stored.reveal()
    profile_b.refresh_from_db()
    with pytest.raises(keyring.SecretUnreadable):
        secret_inputs.unseal(profile_b.input_values)

    # Reactivated, the org's pages and API say so instead of failing, and a new secret can be set.
    org_update(actor=world.operator, org=world.b.org, is_active=True)
    client = api.as_user(world.b.users["org_admin"])
    shown = client.get(f"/api/v1/registries/{reg_b.pk}/")
    assert shown.status_code == 200 and shown.json()["has_credential"] is True
    assert shown.json()["credential_unreadable"] is True
    checked = client.post(f"/api/v1/registries/{reg_b.pk}/check/")
    assert checked.status_code == 409, checked.content
    assert "keys were destroyed" in checked.json()["error"]["message"]
    renamed = client.patch(f"/api/v1/registries/{reg_b.pk}/", {"display_name": "Renamed"}, format="json")
    assert renamed.status_code == 200, renamed.content  # the unreadable token is kept as it is
    reset = client.patch(f"/api/v1/registries/{reg_b.pk}/", {"credential": "fresh"}, format="json")
    assert reset.status_code == 200, reset.content
    assert ContainerRegistry.objects.get(pk=reg_b.pk).credential.reveal() == "fresh"
    assert OrgDataKey.objects.get(org=world.b.org, state=KeyState.ACTIVE).version == 2
    assert "encryption keys were destroyed" in _studio_page(world.b.users["org_admin"], legacy)
    listing = {row["org"]: row for row in client.get("/api/v1/org-keys/").json()["results"]}
    assert listing[world.b.org.pk]["version"] == 2


def _studio_page(user, registry) -> str:
    from django.test import Client

    client = Client()
    client.force_login(user)
    page = client.get(f"/studio/catalog/containerregistry/{registry.pk}/change/")
    assert page.status_code == 200
    return page.content.decode()


def test_platform_key_rotation_rewraps_data_keys(world, settings):
    old_key, new_key = settings.PAAS_ENCRYPTION_KEYS
    settings.PAAS_ENCRYPTION_KEYS = [old_key]
    reg_a = _registry(world.a)
    org_token = _raw("catalog_containerregistry", "credential", reg_a.pk)
    datacenter_like = registries.registry_create(
        actor=world.operator,
        name="sys",
        provider=ContainerRegistry.Provider.GENERIC,
        endpoint="127.0.0.1:5999",
        scheme="http",
        username="robot",
        credential="system-token",
    )
    profile = _secret_profile(world.a, "pw-a")  # a sealed input stored before per-org keys:
    ComputeProfile.objects.filter(pk=profile.pk).update(
        input_values={"password": {"encrypted": secrets.encrypt("legacy-pw")}}
    )
    settings.PAAS_ENCRYPTION_KEYS = [new_key, old_key]
    call_command("rotate_secrets")
    settings.PAAS_ENCRYPTION_KEYS = [new_key]
    keyring.forget()  # a fresh process: the data key is unwrapped with the new platform key only
    profile.refresh_from_db()
    assert secret_inputs.unseal(profile.input_values) == {"password": "legacy-pw"}
    assert (
        _raw("catalog_containerregistry", "credential", reg_a.pk) == org_token
    )  # re-wrapped, not re-encrypted
    assert ContainerRegistry.objects.get(pk=reg_a.pk).credential.reveal() == "pull-token-of-orga"
    assert ContainerRegistry.objects.get(pk=datacenter_like.pk).credential.reveal() == "system-token"
    counts = AuditEvent.objects.get(action="secrets.rotate").details["rotated"]
    assert counts["paas.orgdatakey.wrapped_key"] >= 1


def test_org_keys_api(world, api):
    _registry(world.a)
    admin_a = api.as_user(world.a.users["org_admin"])
    assert APIClient().get("/api/v1/org-keys/").status_code in (401, 403)
    listed = admin_a.get("/api/v1/org-keys/").json()["results"]
    assert [row["org"] for row in listed] == [world.a.org.pk]
    assert listed[0]["state"] == "active" and listed[0]["version"] == 1 and listed[0]["secrets"] == 1
    assert "wrapped_key" not in str(listed)
    assert admin_a.get(f"/api/v1/org-keys/{world.b.org.pk}/").status_code == 404
    assert admin_a.post(f"/api/v1/org-keys/{world.b.org.pk}/rotate/").status_code == 404
    rotated = admin_a.post(f"/api/v1/org-keys/{world.a.org.pk}/rotate/")
    assert rotated.status_code == 200 and rotated.json()["version"] == 2
    refused = admin_a.post(f"/api/v1/org-keys/{world.a.org.pk}/destroy/", {"confirm": "orga"})
    assert refused.status_code == 403
    operator = api.as_user(world.operator)
    assert {row["org"] for row in operator.get("/api/v1/org-keys/?page_size=500").json()["results"]} >= {
        world.a.org.pk,
        world.b.org.pk,
    }
    active = operator.post(f"/api/v1/org-keys/{world.a.org.pk}/destroy/", {"confirm": "orga"})
    assert active.status_code == 409 and "deactivate" in active.json()["error"]["message"]


def test_org_keys_studio_page(world, client):
    _registry(world.a)
    _registry(world.b)
    client.force_login(world.a.users["org_admin"])
    page = client.get("/studio/paas/orgdatakey/")
    assert page.status_code == 200
    body = page.content.decode()
    assert str(world.a.org) in body and str(world.b.org) not in body and "version 1" in body
    assert "/destroy/" not in body  # org admins rotate only
    # Another org's key: refused (as a missing one), nothing rotated.
    other = client.post(f"/studio/paas/orgdatakey/{world.b.org.pk}/rotate/", follow=True)
    assert "No such organization" in other.content.decode()
    assert OrgDataKey.objects.get(org=world.b.org, state=KeyState.ACTIVE).version == 1
    rotated = client.post(f"/studio/paas/orgdatakey/{world.a.org.pk}/rotate/", follow=True)
    assert "new data key v2" in rotated.content.decode()

    client.force_login(world.operator)
    body = client.get("/studio/paas/orgdatakey/").content.decode()
    assert str(world.a.org) in body and str(world.b.org) in body and "/destroy/" not in body
    org_update(actor=world.operator, org=world.b.org, is_active=False)
    body = client.get("/studio/paas/orgdatakey/").content.decode()
    assert f"/studio/paas/orgdatakey/{world.b.org.pk}/destroy/" in body
    form = client.get(f"/studio/paas/orgdatakey/{world.b.org.pk}/destroy/").content.decode()
    assert '<label for="id_confirm"' in form
    wrong = client.post(f"/studio/paas/orgdatakey/{world.b.org.pk}/destroy/", {"confirm": "orga"})
    assert wrong.status_code == 200 and "Type the organization" in wrong.content.decode()
    assert OrgDataKey.objects.filter(org=world.b.org, state=KeyState.ACTIVE).exists()
    done = client.post(f"/studio/paas/orgdatakey/{world.b.org.pk}/destroy/", {"confirm": "orgb"}, follow=True)
    assert "can no longer be read" in done.content.decode()
    assert "destroyed: its secrets cannot be read" in done.content.decode()
    assert not OrgDataKey.objects.filter(org=world.b.org, state=KeyState.ACTIVE).exists()


def test_two_first_secrets_at_once_make_one_key(transactional_db):
    """Two transactions store an org's first secret at the same instant: the org's row lock makes the
    second wait and find the key the first made (and the constraint would refuse a second one)."""
    import threading

    from tenancy.models import Organization

    org = Organization.objects.create(name="race", display_name="Race")
    barrier, tokens, errors = threading.Barrier(4), [], []

    def worker(n):
        try:
            with transaction.atomic():
                barrier.wait(timeout=10)
                tokens.append(keyring.encrypt(f"secret-{n}", org_id=org.pk))
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert OrgDataKey.objects.filter(org=org).count() == 1
    key = OrgDataKey.objects.get(org=org)
    assert {keyring.key_id_of(t) for t in tokens} == {key.pk}
    assert sorted(keyring.decrypt(t) for t in tokens) == [f"secret-{n}" for n in range(4)]


def test_a_shredded_orgs_instance_fails_to_render_with_the_reason(world):
    """An instance launched before its org's keys were destroyed: its secret inputs can no longer reach
    the deployer, which says why (and the snapshot is rotated with the org, like the profile)."""
    from instances import deployer
    from instances.models import ComputeInstance
    from tests.factories import make_synced_cluster
    from tests.support.instances import launch

    profile = _secret_profile(world.b, "pw-b")
    make_synced_cluster(name="keys-c")
    instance = launch(world, profile, "db1", actor=world.b.users["workspace_admin"], project=world.b.project)
    key = OrgDataKey.objects.get(org=world.b.org, state=KeyState.ACTIVE)
    assert instance.snapshot["input_values"]["password"]["encrypted"].startswith(f"ok1:{key.pk}:")
    rotated = org_key_rotate(actor=world.b.users["org_admin"], org=world.b.org)
    instance = ComputeInstance.objects.get(pk=instance.pk)
    assert instance.snapshot["input_values"]["password"]["encrypted"].startswith(f"ok1:{rotated.pk}:")
    assert deployer._context(instance, "ns")["inputs"]["password"] == "pw-b"

    org_update(actor=world.operator, org=world.b.org, is_active=False)
    org_key_destroy(actor=world.operator, org=world.b.org, confirm="orgb")
    with pytest.raises(keyring.SecretUnreadable, match="encryption keys were destroyed"):
        deployer.render(ComputeInstance.objects.get(pk=instance.pk), "ns")


def test_org_keys_pages_are_paged_and_count_secrets_of_the_page_only(world, client, api, monkeypatch):
    """Studio (``list_per_page``) and API (``page_size``) show one page of orgs, each with its own
    count of records holding a secret, whatever the other orgs hold."""
    from paas.admin_org_keys import OrgDataKeyAdmin

    _registry(world.a)
    _registry(world.b)
    _registry(world.b, name="second")
    monkeypatch.setattr(OrgDataKeyAdmin, "list_per_page", 1)
    client.force_login(world.operator)
    first = client.get("/studio/paas/orgdatakey/").content.decode()
    total = Organization.objects.count()
    assert f"Page 1 of {total} ({total} organizations)" in first and "Previous" not in first
    shown = []
    for number in range(1, total + 1):
        page = client.get(f"/studio/paas/orgdatakey/?p={number}").content.decode()
        rows = re.findall(r'<th scope="row">([^<(]+?)(?: \(deactivated\))?</th>', page)
        assert len(rows) == 1, rows
        shown += rows
    assert shown == [str(org) for org in Organization.objects.order_by("name")]
    assert client.get("/studio/paas/orgdatakey/?p=x").status_code == 200  # a bad page: the first
    operator = api.as_user(world.operator)
    body = operator.get("/api/v1/org-keys/?page_size=1").json()
    assert body["count"] >= 2 and len(body["results"]) == 1
    rows = {}
    for page in range(1, body["count"] + 1):
        for row in operator.get(f"/api/v1/org-keys/?page_size=1&page={page}").json()["results"]:
            rows[row["org"]] = row
    assert (rows[world.a.org.pk]["secrets"], rows[world.b.org.pk]["secrets"]) == (1, 2)


def test_the_secrets_count_finds_a_sealed_value_at_any_depth_and_nothing_else(world):
    """Counted by a JSON path over each document (``{"encrypted": token}`` anywhere), not its text."""
    profile = _secret_profile(world.a, "pw-a")
    before = keyring.secrets_count_by_org(org_ids=[world.a.org.pk]).get(world.a.org.pk, 0)
    sealed = {"encrypted": "ok1:1:token"}
    for values, counted in (
        ({"nested": [{"deeper": {"x": 1}}, {"deeper": sealed}]}, True),
        ({"list": [1, "two", [sealed]]}, True),
        ({"password": 'a text holding "encrypted": in it'}, False),
        ({"password": {"not_it": "x"}, "n": 3}, False),
    ):
        ComputeProfile.objects.filter(pk=profile.pk).update(input_values=values)
        after = keyring.secrets_count_by_org(org_ids=[world.a.org.pk]).get(world.a.org.pk, 0)
        assert after - before == (1 if counted else 0) - 1, values  # (the profile counted once before)


@pytest.mark.parametrize(
    ("model_path", "sealed_index"),
    [
        ("instances.ComputeInstance", "instances_ci_sealed_org"),
        ("instances.Run", "instances_run_sealed"),
        ("instances.ServiceInstance", "instances_svc_sealed_org"),
    ],
)
def test_the_big_tables_count_their_secrets_by_a_partial_index(world, monkeypatch, model_path, sealed_index):
    """The key page's count on the instance, run and service tables reads the rows that hold a sealed
    value by a partial index with the query's own condition (100,000 instances: 290 ms of documents
    tested one by one, a few ms by the index; tests/benchmarks/bench_pages.py). With sequential scans
    priced out, PostgreSQL must be able to prove the condition and use the index. The table's other
    indexes are dropped inside the test's transaction (rolled back): on the suite's few rows the org
    column's own index is cheaper, so the plan would otherwise turn on the statistics of the moment
    rather than on whether the condition is proven."""
    from django.apps import apps

    model = apps.get_model(model_path)
    only = [entry for entry in keyring.secret_models() if entry[0] is model]
    assert only and only[0][2], f"{model_path} holds no sealed column any more"
    monkeypatch.setattr(keyring, "secret_models", lambda: only)
    captured = []

    def capture(execute, sql, params, many, context):
        captured.append((sql, params))
        return execute(sql, params, many, context)

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute(
                "SELECT c.relname FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid"
                " WHERE i.indrelid = %s::regclass AND c.relname <> %s"
                " AND NOT EXISTS (SELECT FROM pg_constraint AS k WHERE k.conindid = i.indexrelid)",
                [model._meta.db_table, sealed_index],
            )
            for (other,) in cursor.fetchall():
                cursor.execute(f"DROP INDEX {connection.ops.quote_name(other)}")
        with connection.execute_wrapper(capture):
            keyring.secrets_count_by_org(org_ids=[world.a.org.pk, world.b.org.pk])
        ((sql, params),) = captured
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN {sql}", params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
    assert sealed_index in plan, plan
