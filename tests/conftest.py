import itertools
import os
from dataclasses import dataclass, field

import pytest
from rest_framework.test import APIClient

from paas import authz
from tenancy import services
from tenancy.models import Organization, Project, User
from tenancy.roles import Role
from tests.factories import PASSWORD, UserFactory, add_member, make_operator, make_org
from tests.support import canary
from tests.support.roles import TENANT_ROLES

pytest_plugins = [
    "tests.support.oidc",  # the oidc_provider and oidc fixtures: a real OIDC provider process
    "tests.support.integration_servers",  # Git, Helm chart repository and container registry servers
    "tests.support.prometheus",  # a real Prometheus scraping a DCGM exporter double (GPU utilisation)
    "tests.support.kubectl",  # kubectl_binary and bwrap_binary: the real kubectl and bubblewrap
    "tests.support.siem",  # audit streaming receivers: rsyslogd over TLS (Debian's), an HTTPS receiver
    *(
        ["tests.localkube.pytest_plugin"]
        if os.path.exists(os.path.join(os.path.dirname(__file__), "localkube", "pytest_plugin.py"))
        else []
    ),
]


@pytest.fixture(scope="session", autouse=True)
def _flush_past_the_audit_truncate_trigger():
    """Let the suite's own flush (TRUNCATE of every table after a transactional test) empty the audit
    table: the flush runs with ``session_replication_role = replica`` (superuser-only; the suite's
    role is one), under which the audit table's append-only triggers do not fire. The application's
    role cannot do this, which tests/integration/test_audit_tamper.py proves."""
    from django.db.backends.postgresql.operations import DatabaseOperations

    original = DatabaseOperations.execute_sql_flush

    def execute_sql_flush(self, sql_list):
        return original(self, ["SET LOCAL session_replication_role = replica", *sql_list])

    DatabaseOperations.execute_sql_flush = execute_sql_flush
    yield
    DatabaseOperations.execute_sql_flush = original


@pytest.fixture(autouse=True)
def _canary_never_comes_back():
    """No response and no log line of the test may carry a credential of the suite's servers. The log
    handler is put back on the root logger before every test: a logging configuration applied by an
    earlier test (Django's ``LOGGING`` for a server it starts) replaces the root's handlers."""
    canary.install_log_handler()
    canary.hits.clear()
    yield
    if canary.hits:
        found = list(canary.hits)
        canary.hits.clear()
        pytest.fail(f"A credential came back (the canary was found in: {'; '.join(found)})")


_checkpoint_stores = itertools.count()


@pytest.fixture(autouse=True)
def _fresh_audit_checkpoint_store(settings, tmp_path_factory):
    """Each test its own (lazily created) audit checkpoint store: a flushed database must not meet the
    checkpoints of chains an earlier test wrote."""
    settings.PAAS_AUDIT_CHECKPOINT_DIR = str(
        tmp_path_factory.getbasetemp() / "audit-checkpoints" / str(next(_checkpoint_stores))
    )


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Each test starts with an empty cache: the database is rolled back (or flushed) between tests, so
    what cache keys are made of (the catalog generation, row ids after a flush) starts over, while an
    earlier test's cached pages would stay in this process."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def api():
    """An API client; ``api.as_user(user)`` authenticates it as that user (session-less)."""

    class Client(APIClient):
        def as_user(self, user):
            authz.forget(user)
            self.force_authenticate(user=user)
            return self

    return Client()


@dataclass
class Tenant:
    org: Organization
    project: Project
    spare_project: Project
    users: dict[str, User] = field(default_factory=dict)


@dataclass
class World:
    operator: User
    a: Tenant
    b: Tenant
    outsider: User


def _tenant(operator: User, name: str) -> Tenant:
    org, admin = make_org(operator=operator, name=name)
    project = services.project_create(actor=admin, org=org, name="team", display_name="Team")
    spare = services.project_create(actor=admin, org=org, name="spare", display_name="Spare")
    users = {"org_admin": admin}
    for role_name in TENANT_ROLES[1:]:
        users[role_name] = UserFactory(username=f"{name}-{role_name.replace('_', '-')}")
    add_member(admin=admin, user=users["paas_admin_org"], role=Role.PAAS_ADMIN, org=org)
    add_member(admin=admin, user=users["paas_admin_project"], role=Role.PAAS_ADMIN, project=project)
    for role in (Role.WORKSPACE_ADMIN, Role.COLLABORATOR_RW, Role.COLLABORATOR_RO):
        add_member(admin=admin, user=users[role.value], role=role, project=project)
    return Tenant(org=org, project=project, spare_project=spare, users=users)


def _build_world() -> World:
    operator = make_operator(username="op")
    return World(
        operator=operator,
        a=_tenant(operator, "orga"),
        b=_tenant(operator, "orgb"),
        outsider=UserFactory(username="outsider"),
    )


def _reload(world: World) -> World:
    """Fresh Python objects for each test: nothing a test changes in memory leaks into the next."""

    def tenant(t: Tenant) -> Tenant:
        return Tenant(
            org=Organization.objects.get(pk=t.org.pk),
            project=Project.objects.get(pk=t.project.pk),
            spare_project=Project.objects.get(pk=t.spare_project.pk),
            users={key: User.objects.get(pk=u.pk) for key, u in t.users.items()},
        )

    return World(
        operator=User.objects.get(pk=world.operator.pk),
        a=tenant(world.a),
        b=tenant(world.b),
        outsider=User.objects.get(pk=world.outsider.pk),
    )


@pytest.fixture(scope="session")
def _session_world(django_db_setup, django_db_blocker) -> World:
    # Built once and committed; every test using `world` runs in a transaction that is rolled back.
    with django_db_blocker.unblock():
        return _build_world()


@pytest.fixture
def world(_session_world, db) -> World:
    """Two tenants A and B, each with one user per role on its org or its 'team' project."""
    if not User.objects.filter(pk=_session_world.operator.pk).exists():
        return _build_world()  # a transactional test flushed the database: build it inside this test
    return _reload(_session_world)


@pytest.fixture
def password() -> str:
    return PASSWORD


@pytest.fixture(scope="session")
def _asgi_servers(django_db_setup, django_db_blocker):
    """The session's ASGI servers (tests/support/asgi_server.py) stop at its end, before the test
    database is dropped: their shutdown still reaches it."""
    from tests.support import asgi_server

    yield
    with django_db_blocker.unblock():
        asgi_server.stop_all()


@pytest.fixture
def kube_proxy(request, settings, _asgi_servers):
    """The platform's kubectl proxy, served by the real ASGI server (tests/support/asgi_server.py):
    kubeconfigs issued in the test point at it. A test on the ``db`` fixture lends the server its
    connection (so the server sees the test's rows); on ``transactional_db`` nothing is lent."""
    from tests.support import asgi_server

    server = asgi_server.session_server()
    settings.PAAS_KUBE_PROXY_URL = server.url
    if "transactional_db" in request.fixturenames or "live_server" in request.fixturenames:
        yield server
        return
    request.getfixturevalue("db")
    with asgi_server.sharing_the_test_connection():
        yield server


@pytest.fixture
def kube_proxy_tls(request, settings, _asgi_servers):
    """The kubectl proxy as ``kube_proxy``, served over HTTPS (kubectl sends its credential to no plain
    HTTP server): kubeconfigs issued in the test point at it and carry its CA (``.ca_file``)."""
    from tests.support import asgi_server

    server = asgi_server.session_server(tls=True)
    if "kube_proxy" in request.fixturenames:
        request.getfixturevalue("kube_proxy")  # (its connection lending is the test's already)
    settings.PAAS_KUBE_PROXY_URL = server.url
    settings.PAAS_KUBE_PROXY_CA_FILE = server.ca_file
    if {"kube_proxy", "transactional_db", "live_server"} & set(request.fixturenames):
        yield server
        return
    request.getfixturevalue("db")
    with asgi_server.sharing_the_test_connection():
        yield server
