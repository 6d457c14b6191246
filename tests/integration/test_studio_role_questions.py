"""The studio's role-wide questions ("may this user open the tenancy section? the catalog? budgets?")
are asked once a request, not once per section of the sidebar; the answers are dropped when roles
change. And the audit trail's filters stay readable with thousands of projects and users: past a
handful of choices they list those of the organization chosen."""

from collections import Counter

from django.db import connection
from django.test.utils import CaptureQueriesContext

from paas import authz
from paas.models import AuditEvent
from tenancy import admin_audit, selectors
from tenancy.models import Project
from tenancy.roles import Role
from tests.factories import UserFactory, add_member


def test_a_studio_page_asks_each_role_question_once(world, client):
    client.force_login(world.a.users["org_admin"])
    client.get("/studio/billing/budget/")
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/studio/billing/budget/").status_code == 200
    repeated = Counter(q["sql"] for q in queries.captured_queries).most_common(1)[0]
    # Each section of the sidebar asked "does this user administer an org?" again: 107 queries, 51 of
    # them the same one. Now each question is asked once (the same SQL at most four times: four sections
    # ask "which orgs does this user administer?" each for its own reason).
    assert len(queries) < 40, len(queries)
    assert repeated[1] <= 4, repeated


def test_a_remembered_answer_is_dropped_when_the_roles_change(world):
    admin = world.a.users["org_admin"]
    newcomer = UserFactory(username="newcomer", email="newcomer@example.com")
    assert not selectors.administers_any_org(newcomer)
    assert authz.remembered(newcomer, "administers_any_org", lambda: True) is False  # (the memo holds)
    add_member(admin=admin, user=newcomer, role=Role.ORG_ADMIN, org=world.a.org)
    newcomer.refresh_from_db()
    assert selectors.administers_any_org(newcomer)


def _choices(page: str, parameter: str) -> set[str]:
    import re

    return set(re.findall(rf"(?:\?|&amp;){parameter}=(\d+)", page))


def test_the_audit_filters_list_an_orgs_choices_once_they_are_many(world, client, monkeypatch):
    monkeypatch.setattr(admin_audit, "CHOICES_SHOWN", 1)  # A's admin sees 2 projects and A's members
    a, b = world.a, world.b
    projects_of_a = {str(pk) for pk in Project.objects.filter(org=a.org).values_list("pk", flat=True)}
    client.force_login(a.users["org_admin"])
    page = client.get("/studio/paas/auditevent/").content.decode()
    assert _choices(page, "org") == {str(a.org.pk)}
    assert not _choices(page, "project") and not _choices(page, "user")  # too many: choose an org first

    page = client.get(f"/studio/paas/auditevent/?org={a.org.pk}").content.decode()
    assert _choices(page, "project") == projects_of_a
    members = {str(u.pk) for u in a.users.values()}
    assert _choices(page, "user") and _choices(page, "user") <= members

    # A project or person chosen while the choices are many: still listed, and the list filtered by it.
    page = client.get(f"/studio/paas/auditevent/?project={a.project.pk}").content.decode()
    assert _choices(page, "project") == {str(a.project.pk)} and "orga/team" in page
    events = AuditEvent.objects.filter(project=a.project).count()
    assert events and f"{events} audit event" in page
    # Another org's project, or not an id at all: nothing of it, never an error.
    for parameter in ("org", "project", "user", "cluster"):
        for junk in ("%C2%B2", "x", "-1", "99999999999999999999999", str(b.project.pk)):
            page = client.get(f"/studio/paas/auditevent/?{parameter}={junk}")
            assert page.status_code == 200, (parameter, junk)
            assert f"{b.org.name}/" not in page.content.decode(), (parameter, junk)

    # Another org's id chosen by hand lists none of its projects or people.
    page = client.get(f"/studio/paas/auditevent/?org={b.org.pk}").content.decode()
    assert not _choices(page, "project") and not _choices(page, "user")
    assert b.project.name not in page and b.users["org_admin"].email not in page

    # Few choices: listed at once, and only the viewer's.
    monkeypatch.setattr(admin_audit, "CHOICES_SHOWN", 100)
    page = client.get("/studio/paas/auditevent/").content.decode()
    assert _choices(page, "project") == projects_of_a
    assert _choices(page, "user") <= members
