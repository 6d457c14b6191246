"""Container registries: the services (scopes: admins only; endpoint through the outbound policy;
credential write-only, its version bumped on change; ``registry_changed`` naming the projects before and
after), the ``/v2/`` check against the real distribution registry (token flow with a pull-only robot,
htpasswd; a wrong password, an unreachable host), and Amazon ECR's token exchange and refresh.

Amazon ECR itself cannot be reached from here: its API is a loopback stand-in (``EcrStandIn``) that
checks the Signature Version 4 signature of ``GetAuthorizationToken`` with the key it knows (the
signing is checked against AWS's published examples in tests/unit/test_registry_check.py) and answers
as ECR documents; the registry host ``<account>.dkr.ecr.<region>.amazonaws.com`` resolves to 127.0.0.1
through a stand-in of DNS for that one name.
"""

from __future__ import annotations

import base64
import json
import socket
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from django_q.models import Schedule

from catalog import registries, registry_check, registry_tasks
from catalog.models import ContainerRegistry
from catalog.signals import registry_changed
from instances import pull_secrets
from paas import authz
from paas.errors import Forbidden, ValidationFailed
from paas.models import AuditEvent
from tests.support.canary import CANARY
from tests.support.integration_servers import (
    REGISTRY_PASSWORD,
    REGISTRY_PULLER,
    REGISTRY_PULLER_PASSWORD,
    REGISTRY_USER,
)
from tests.support.loopback_http import BackgroundHTTPServer, LoopbackHandler
from tests.support.registry import free_port
from tests.support.support import grant_support

pytestmark = pytest.mark.django_db


@pytest.fixture
def changes():
    """Every ``registry_changed`` sent during the test: (registry_id, reason, project_ids)."""
    seen: list[tuple[int, str, list[int]]] = []

    def record(*, registry_id, reason, project_ids, **kwargs):
        seen.append((registry_id, reason, list(project_ids)))

    registry_changed.connect(record, dispatch_uid="test-registry-changes")
    yield seen
    registry_changed.disconnect(dispatch_uid="test-registry-changes")


def _create(actor, *, project=None, org=None, **data):
    data.setdefault("provider", ContainerRegistry.Provider.GENERIC)
    data.setdefault("endpoint", "127.0.0.1:5999")
    data.setdefault("scheme", "http")
    return registries.registry_create(
        actor=actor, project=project, org=org, name=data.pop("name", "r"), **data
    )


# --- scopes and permissions ---------------------------------------------------------------------------


def test_only_admins_of_the_scope_manage_registries(world):
    a, b = world.a, world.b
    for role in ("workspace_admin", "collaborator_rw", "collaborator_ro"):
        with pytest.raises(Forbidden):
            _create(a.users[role], project=a.project)
    with pytest.raises(Forbidden):
        _create(b.users["org_admin"], project=a.project)
    with pytest.raises(Forbidden):
        _create(a.users["paas_admin_project"], org=a.org)  # a project's PaaS admin is not the org's
    with pytest.raises(Forbidden):
        _create(a.users["org_admin"])  # system registries: operators only

    project_registry = _create(a.users["paas_admin_project"], project=a.project, name="proj")
    org_registry = _create(a.users["org_admin"], org=a.org, name="org", sharing="all")
    system_registry = _create(world.operator, name="sys", system_sharing="selected", shared_orgs=[a.org])
    assert (project_registry.org, project_registry.project) == (a.org, a.project)
    assert (org_registry.org, org_registry.project) == (a.org, None)
    assert (system_registry.org, system_registry.project) == (None, None)

    with pytest.raises(Forbidden):
        registries.registry_update(actor=b.users["org_admin"], registry=org_registry, description="x")
    with pytest.raises(Forbidden):
        registries.registry_delete(actor=a.users["org_admin"], registry=system_registry)
    with pytest.raises(ValidationFailed) as error:
        registries.registry_update(
            actor=a.users["org_admin"], registry=org_registry, sharing="selected", shared_projects=[b.project]
        )
    assert "shared_projects" in error.value.fields
    # what each workspace sees
    assert {r.name for r in pull_secrets.registries_for(a.project)} == {"proj", "org", "sys"}
    assert {r.name for r in pull_secrets.registries_for(a.spare_project)} == {"org", "sys"}
    assert pull_secrets.registries_for(b.project) == []


def test_endpoints_are_checked(world):
    admin = world.a.users["org_admin"]
    for endpoint, says in [
        ("https://registry.example.com", "without a scheme"),
        ("user:pw@registry.example.com", "without a scheme or user name"),
        ("169.254.169.254", "metadata"),
        ("0.0.0.0:5000", "unspecified"),
        ("no-such-host.invalid", "does not resolve"),
        ("registry example", "host[:port]"),
    ]:
        with pytest.raises(ValidationFailed) as error:
            _create(admin, org=a_org(world), endpoint=endpoint)
        assert says in str(error.value.fields["endpoint"]), (endpoint, error.value.fields)
    with pytest.raises(ValidationFailed) as error:
        _create(admin, org=a_org(world), provider="ecr", endpoint="registry.example.com", scheme="https")
    assert "dkr.ecr" in str(error.value.fields["endpoint"])
    with pytest.raises(ValidationFailed) as error:
        _create(admin, org=a_org(world), credential="token-without-user")
    assert "username" in error.value.fields


def a_org(world):
    return world.a.org


def test_credential_is_write_only_and_its_changes_rotate(world, changes):
    a = world.a
    admin = a.users["org_admin"]
    registry = _create(
        admin,
        org=a.org,
        sharing="selected",
        shared_projects=[a.project],
        username="robot",
        credential="first",
    )
    assert registry.credential_version == 1
    assert changes[-1] == (registry.pk, "created", [a.project.pk])

    kept = registries.registry_update(actor=admin, registry=registry, credential="", description="new words")
    assert kept.credential.reveal() == "first" and kept.credential_version == 1
    assert changes[-1][1] == "created", "a description is not delivered: no re-sync"

    rotated = registries.registry_update(actor=admin, registry=registry, credential=f"{CANARY}-second")
    assert rotated.credential.reveal() == f"{CANARY}-second" and rotated.credential_version == 2
    assert changes[-1] == (registry.pk, "credential", [a.project.pk])

    # sharing ends for 'team' and starts for 'spare': both are told
    registries.registry_share(actor=admin, registry=rotated, sharing="selected", projects=[a.spare_project])
    assert changes[-1] == (registry.pk, "sharing", sorted([a.project.pk, a.spare_project.pk]))

    cleared = registries.registry_update(actor=admin, registry=rotated, clear_credential=True)
    assert not cleared.credential and cleared.credential_version == 3

    registries.registry_delete(actor=admin, registry=cleared)
    assert changes[-1] == (registry.pk, "deleted", [a.spare_project.pk])
    events = AuditEvent.objects.filter(target_type="catalog.containerregistry", target_id=str(registry.pk))
    actions = list(events.order_by("pk").values_list("action", flat=True))
    assert actions == [
        "containerregistry.create",
        "containerregistry.update",
        "containerregistry.update",
        "containerregistry.update",
        "containerregistry.update",
        "containerregistry.delete",
    ]
    assert CANARY not in json.dumps(list(events.values_list("details", flat=True)))


# --- the /v2/ check against the real registry --------------------------------------------------------------


@pytest.mark.toolchain
def test_check_token_flow_with_the_pull_only_robot(world, registry_token):
    admin = world.a.users["paas_admin_project"]
    registry = _create(
        admin,
        project=world.a.project,
        endpoint=registry_token.host,
        username=REGISTRY_PULLER,
        credential=REGISTRY_PULLER_PASSWORD,
    )
    checked = registries.registry_check(actor=admin, registry=registry)
    assert checked.check_ok is True, checked.check_message
    assert "accepted the credential (token from 127.0.0.1" in checked.check_message
    assert "push" not in checked.check_message
    assert registry_token.token_server.issued[-1][0] == REGISTRY_PULLER

    # a credential that may push works too, and the check says it must not be delivered
    pusher = registries.registry_update(
        actor=admin, registry=checked, username=REGISTRY_USER, credential=REGISTRY_PASSWORD
    )
    checked = registries.registry_check(actor=admin, registry=pusher)
    assert checked.check_ok is True and "may also push images" in checked.check_message

    wrong = registries.registry_update(
        actor=admin, registry=checked, username=REGISTRY_PULLER, credential="nope"
    )
    checked = registries.registry_check(actor=admin, registry=wrong)
    assert checked.check_ok is False
    assert "token server 127.0.0.1" in checked.check_message
    assert "refused the username or password (HTTP 401)" in checked.check_message
    audit = AuditEvent.objects.filter(action="containerregistry.check", target_id=str(registry.pk))
    assert [e["ok"] for e in audit.order_by("pk").values_list("details", flat=True)] == [True, True, False]


@pytest.mark.toolchain
def test_check_htpasswd_and_an_unreachable_host(world, registry_htpasswd):
    admin = world.a.users["org_admin"]
    registry = _create(
        admin, org=world.a.org, endpoint=registry_htpasswd.host, username=REGISTRY_USER, credential="wrong"
    )
    checked = registries.registry_check(actor=admin, registry=registry)
    assert (
        checked.check_ok is False and "refused the username or password (HTTP 401)" in checked.check_message
    )
    fixed = registries.registry_update(actor=admin, registry=checked, credential=REGISTRY_PASSWORD)
    checked = registries.registry_check(actor=admin, registry=fixed)
    assert checked.check_ok is True and "basic authentication" in checked.check_message

    gone = _create(admin, org=world.a.org, name="gone", endpoint=f"127.0.0.1:{free_port()}")
    checked = registries.registry_check(actor=admin, registry=gone)
    assert checked.check_ok is False and "refused the connection" in checked.check_message
    with pytest.raises(Forbidden):
        registries.registry_check(actor=world.a.users["workspace_admin"], registry=gone)


# --- Amazon ECR (a loopback stand-in of its API) ------------------------------------------------------

ECR_HOST = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
ACCESS_KEY = "AKIAEXAMPLEPULLONLY"


class _EcrHandler(LoopbackHandler):
    def handle_request(self, user) -> None:
        owner: EcrStandIn = self.server.owner  # type: ignore[assignment]
        if self.command == "HEAD":
            self.reply(200, b"")
            return
        body = self.read_body()
        if self.headers.get("X-Amz-Target") != registry_check.ECR_TARGET:
            self.reply(400, b'{"__type":"UnknownOperationException"}', "application/x-amz-json-1.1")
            return
        amz_date = datetime.strptime(self.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        expected = registry_check.sigv4_headers(
            method="POST",
            url=f"http://{self.headers['Host']}{self.path}",
            headers={
                "Content-Type": self.headers["Content-Type"],
                "X-Amz-Target": self.headers["X-Amz-Target"],
            },
            body=body,
            region="eu-west-1",
            service="ecr",
            access_key=ACCESS_KEY,
            secret_key=owner.secret_key,
            now=amz_date,
        )
        if self.headers.get("Authorization") != expected["Authorization"]:
            self.reply(400, b'{"__type":"InvalidSignatureException"}', "application/x-amz-json-1.1")
            return
        owner.issued += 1
        password = f"{CANARY}-ecr-token-{owner.issued}"
        answer = {
            "authorizationData": [
                {
                    "authorizationToken": base64.b64encode(f"AWS:{password}".encode()).decode(),
                    "expiresAt": time.time() + 12 * 3600,
                    "proxyEndpoint": f"https://{ECR_HOST}",
                }
            ]
        }
        self.reply(200, json.dumps(answer).encode(), "application/x-amz-json-1.1")


class EcrStandIn(BackgroundHTTPServer):
    handler = _EcrHandler

    def __init__(self, secret_key: str):
        super().__init__()
        self.secret_key = secret_key
        self.issued = 0


@pytest.fixture
def ecr(settings, monkeypatch):
    real = socket.getaddrinfo

    def resolve(host, *args, **kwargs):  # the stand-in of DNS for the one ECR name
        return real("127.0.0.1" if host == ECR_HOST else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    with EcrStandIn(f"{CANARY}-aws-secret") as server:
        settings.PAAS_ECR_API_URL = f"{server.url}/"
        yield server


def test_ecr_token_exchanged_refreshed_before_expiry_and_delivered(world, ecr, changes, settings):
    a = world.a
    admin = a.users["org_admin"]
    assert Schedule.objects.filter(
        name="registry tokens", func="catalog.registry_tasks.registry_tokens_refresh"
    ).exists()
    registry = _create(
        admin,
        org=a.org,
        sharing="all",
        provider="ecr",
        scheme="https",
        endpoint=ECR_HOST,
        username=ACCESS_KEY,
        credential="not-the-key",
    )
    assert registries.registries_due_for_refresh() == [registry]
    assert registry_tasks.registry_token_refresh(registry.pk) is False
    registry.refresh_from_db()
    assert registry.check_ok is False and "Amazon ECR refused the access key" in registry.check_message
    assert "InvalidSignatureException" in registry.check_message

    registry = registries.registry_update(actor=admin, registry=registry, credential=f"{CANARY}-aws-secret")
    assert registry_tasks.registry_tokens_refresh() == 1
    registry.refresh_from_db()
    assert registry.token.reveal() == f"{CANARY}-ecr-token-1"
    assert timezone.now() + timedelta(hours=11) < registry.token_expires_at
    assert changes[-1][:2] == (registry.pk, "token") and a.project.pk in changes[-1][2]
    assert registries.registries_due_for_refresh() == [], "12 hours left: not due"
    assert registry_tasks.registry_tokens_refresh() == 0

    # delivered as user AWS with the token, never the secret access key
    [secret] = [s for s in _desired(world) if s["metadata"]["name"] == f"paas-registry-{registry.pk}"]
    config = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
    assert config["auths"][ECR_HOST]["username"] == "AWS"
    assert config["auths"][ECR_HOST]["password"] == f"{CANARY}-ecr-token-1"
    assert f"{CANARY}-aws-secret" not in json.dumps(secret)

    # within the margin before expiry it is due again; an expired token is not delivered
    ContainerRegistry.objects.filter(pk=registry.pk).update(
        token_expires_at=timezone.now() + timedelta(hours=1)
    )
    assert registries.registries_due_for_refresh() == [registry]
    ContainerRegistry.objects.filter(pk=registry.pk).update(
        token_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert f"paas-registry-{registry.pk}" not in [s["metadata"]["name"] for s in _desired(world)]
    assert registry_tasks.registry_tokens_refresh() == 1
    assert f"paas-registry-{registry.pk}" in [s["metadata"]["name"] for s in _desired(world)]
    assert ecr.issued == 2


def _desired(world):
    """``pull_secrets.desired`` for a (not launched) instance of tenant A's 'team' workspace."""
    from instances.models import ComputeInstance

    return pull_secrets.desired(ComputeInstance(project=world.a.project, org=world.a.org))


def test_who_sees_which_registry(world):
    from catalog import registry_selectors
    from paas.errors import NotFound

    a, b = world.a, world.b
    own = _create(a.users["paas_admin_project"], project=a.project, name="own")
    spare_only = _create(
        a.users["org_admin"],
        org=a.org,
        name="spare-only",
        sharing="selected",
        shared_projects=[a.spare_project],
    )
    system = _create(world.operator, name="sys", system_sharing="selected", shared_orgs=[b.org])

    def names(user):
        return {r.name for r in registry_selectors.registry_list_for(user)}

    assert names(world.operator) == {"sys"}  # an org's only through a support access
    grant_support(operator=world.operator, org=a.org, level="read")
    authz.forget(world.operator)
    assert names(world.operator) == {"own", "spare-only", "sys"}
    assert names(a.users["org_admin"]) == {"own", "spare-only"}
    assert names(a.users["collaborator_ro"]) == {"own"}  # visible in 'team', read-only
    assert names(b.users["workspace_admin"]) == {"sys"}
    assert names(world.outsider) == set()
    with pytest.raises(NotFound):
        registry_selectors.registry_get_for(b.users["org_admin"], own.pk)
    assert registry_selectors.registry_get_for(a.users["collaborator_ro"], own.pk) == own
    assert registry_selectors.can_manage_registry(a.users["org_admin"], spare_only)
    assert not registry_selectors.can_manage_registry(a.users["collaborator_ro"], own)
    assert not registry_selectors.can_manage_registry(a.users["org_admin"], system)
    assert list(registry_selectors.registries_for_project(b.project)) == [system]
