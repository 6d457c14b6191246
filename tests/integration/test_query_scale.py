"""Constant-cost pages (issue 20): every API list, portal page and studio changelist runs the same number
of queries at two data sizes and two page sizes.

The endpoints are enumerated (tests/support/endpoints.py), not listed: every GET route of the API
(``/api/v1/``) that is a viewset's list or a view of the whole collection or of one workspace (a
``project_id``), every portal page whose arguments are a workspace (and a deployment kind), and the
changelist of every ModelAdmin registered on the studio. A new endpoint is measured without editing
this file; one that does not answer 200 to the user measuring it fails until it is listed in
``endpoints.NOT_MEASURED`` with the reason.

Each endpoint is requested at two sizes of the bulk data set (tests/support/dataset.py; the larger has
more orgs, workspaces, members, instances, services and audit events, also in the workspace and org
measured) and at two page sizes (API ``page_size``, the portal's ``PAGE_SIZE``, the studio's
``list_per_page``), the cache emptied before each request: small size at one page size, large size at
both (three points cover both dimensions); the three query counts must be equal. Both data sets are
built once for the module, each in a transaction rolled back after its measurements.
"""

import re
import sys
from collections import Counter
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import pytest
from django.contrib import admin
from django.core.cache import cache
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext

from paas import authz
from paas.audit import audit_verify
from tenancy.models import Project, User
from tests.support.dataset import Size, generate
from tests.support.endpoints import ENDPOINTS, EXPECTED_STATUS, SERVICE_KINDS, Endpoint, url_of

# Marked so that the test database is set up (pytest-django sets up the databases its marked tests use).
pytestmark = pytest.mark.django_db

SMALL = Size(
    orgs=2, workspaces_per_org=4, members=3, instances_per_workspace=3, live_per_workspace=2, clusters=1
)
LARGE = Size(
    orgs=4,
    workspaces_per_org=6,
    members=5,
    instances_per_workspace=9,
    live_per_workspace=6,
    services_per_instance=2,
    clusters=2,
)
PAGE_SIZES = (3, 5)
SIZES = {"small": SMALL, "large": LARGE}

# --- measuring -----------------------------------------------------------------------------------------


@contextmanager
def _page_size(endpoint: Endpoint, size: int):
    """The page size of the endpoint's list: patched where the page reads it."""
    with ExitStack() as stack:
        if endpoint.area == "portal":
            module = sys.modules.get(endpoint.view_module)
            if module is not None and hasattr(module, "PAGE_SIZE"):
                stack.enter_context(pytest.MonkeyPatch.context()).setattr(module, "PAGE_SIZE", size)
        if endpoint.area == "studio":
            for model_admin in admin.site._registry.values():
                if model_admin.model._meta.label_lower == endpoint.name:
                    stack.enter_context(pytest.MonkeyPatch.context()).setattr(
                        model_admin, "list_per_page", size
                    )
        yield


def _normalise(sql: str) -> str:
    return re.sub(r"\b\d+\b", "N", re.sub(r"'[^']*'", "'S'", sql))


@dataclass
class Measured:
    status: int
    count: int
    queries: Counter


def _get(client: Client, endpoint: Endpoint, url: str, page_size: int) -> Measured:
    if endpoint.area == "api":
        url += f"?page_size={page_size}"
    with _page_size(endpoint, page_size):
        cache.clear()
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url)
    return Measured(
        status=response.status_code,
        count=len(captured.captured_queries),
        queries=Counter(_normalise(q["sql"]) for q in captured.captured_queries),
    )


def _who(clients: list[Client], endpoint: Endpoint, url: str) -> int:
    """Which of ``clients`` measures the endpoint: the first it answers (the tenant's user, or the
    operator where only operators may look). This first request also warms what a process keeps
    (content types, compiled templates)."""
    for n, client in enumerate(clients):
        if _get(client, endpoint, url, PAGE_SIZES[0]).status != 403:
            return n
    return 0


def _clients(data) -> dict[str, list[Client]]:
    org_admin = User.objects.get(pk=data.admin_ids[0])
    workspace_admin = User.objects.get(pk=data.workspace_admin_ids[0])
    operator = User.objects.filter(is_superuser=True).order_by("pk").first()
    clients = {}
    for user in (org_admin, workspace_admin, operator):
        authz.forget(user)
        client = Client()
        client.force_login(user)
        clients[user.pk] = client
    return {
        "api": [clients[org_admin.pk], clients[operator.pk]],
        "portal": [clients[workspace_admin.pk]],
        "studio": [clients[operator.pk], clients[org_admin.pk]],
    }


@pytest.fixture(scope="module")
def measured(django_db_setup, django_db_blocker):
    """Every endpoint at the small size (first page size) and at the large size (both page sizes):
    ``{endpoint id: {(kind, size, page): Measured}}``; and the data sets' audit verification. Three
    points cover both dimensions (rows shown: the large size's two page sizes; data behind the page:
    the two sizes at one page size) and keep the suite's time within its budget."""
    results: dict[str, dict] = {e.id: {} for e in ENDPOINTS}
    who: dict[tuple, int] = {}
    verified = {}
    with django_db_blocker.unblock():
        for label, size in SIZES.items():
            with transaction.atomic():
                data = generate(size=size)
                verified[label] = (audit_verify(checkpoints=False), data)
                # the org admin's first team workspace: what the workspace pages show
                project = (
                    Project.objects.filter(org_id=data.org_ids[0], kind=Project.Kind.TEAM)
                    .order_by("pk")
                    .first()
                )
                clients = _clients(data)
                for client in clients["portal"]:  # signed in, in the workspace: the session settled
                    client.get(f"/w/{project.pk}/")
                for endpoint in ENDPOINTS:
                    kinds = SERVICE_KINDS if "{kind}" in endpoint.route else ("",)
                    for kind in kinds:
                        url = url_of(endpoint, project_id=project.pk, kind=kind)
                        candidates = clients[endpoint.area]
                        if (endpoint.id, kind) not in who:
                            who[(endpoint.id, kind)] = _who(candidates, endpoint, url)
                        client = candidates[who[(endpoint.id, kind)]]
                        for page in PAGE_SIZES if label == "large" else PAGE_SIZES[:1]:
                            results[endpoint.id][(kind, label, page)] = _get(client, endpoint, url, page)
                transaction.set_rollback(True)
    return results, verified


def test_the_data_set_is_what_was_asked_and_its_audit_chains_verify(measured):
    _results, verified = measured
    for label, (result, data) in verified.items():
        size = SIZES[label]
        assert result.ok, (label, [str(b) for b in result.broken])
        assert data.counts["orgs"] == size.orgs
        assert data.counts["workspaces"] == size.workspaces
        assert data.counts["instances"] == size.instances
        assert data.counts["live_instances"] == size.workspaces * size.live_per_workspace
        assert data.counts["services"] == size.instances * size.services_per_instance
        assert result.events >= data.counts["audit_events"]


def test_every_area_is_enumerated():
    areas = Counter(e.area for e in ENDPOINTS)
    # a broken enumeration (nothing found) must not pass as "every count equal"
    assert areas["api"] >= 30 and areas["portal"] >= 8 and areas["studio"] >= 30, areas


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.id)
def test_same_number_of_queries_at_two_sizes_and_two_page_sizes(measured, endpoint):
    results, _verified = measured
    statuses = {key: m.status for key, m in results[endpoint.id].items()}
    assert set(statuses.values()) == {EXPECTED_STATUS.get(endpoint.id, 200)}, f"{endpoint.route}: {statuses}"
    for kind in sorted({key[0] for key in results[endpoint.id]}):  # a deployment kind: its own list
        by_key = {key: m for key, m in results[endpoint.id].items() if key[0] == kind}
        counts = {key: m.count for key, m in by_key.items()}
        if len(set(counts.values())) > 1:
            low = min(by_key.values(), key=lambda m: m.count)
            high = max(by_key.values(), key=lambda m: m.count)
            grew = high.queries - low.queries
            detail = "\n".join(f"  +{n}: {sql[:400]}" for sql, n in grew.most_common())
            pytest.fail(f"{endpoint.route}: query counts differ {counts}; the queries that grew:\n{detail}")
