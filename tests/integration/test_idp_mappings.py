"""IdP group mappings: who manages them (studio and API, the role matrix) and their validation."""

import pytest

from paas.models import AuditEvent
from tenancy import services
from tenancy.models import IdpGroupMapping, RoleAssignment
from tenancy.roles import Role
from tests.support.roles import WITH_SUPPORT, user_for
from tests.support.support import grant_support

# An org's admins (and an operator with an administrative support access to it); never the operator
# otherwise: mappings are inside the org.
MANAGERS = {"org_admin", "operator_admin"}


@pytest.fixture
def mappings(world):
    """One mapping in each tenant."""
    a = services.idp_mapping_create(
        actor=world.a.users["org_admin"],
        org=world.a.org,
        group="a-team",
        role=Role.COLLABORATOR_RW,
        project=world.a.project,
    )
    b = services.idp_mapping_create(
        actor=world.b.users["org_admin"], org=world.b.org, group="b-team", role=Role.ORG_ADMIN
    )
    return a, b


# --- API --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("who", WITH_SUPPORT)
def test_api_list_shows_only_the_mappings_of_administered_orgs(world, api, mappings, who):
    response = api.as_user(user_for(world, who)).get("/api/v1/idp-group-mappings/")
    assert response.status_code == 200
    groups = {row["group"] for row in response.json()["results"]}
    expected = {
        "org_admin": {"a-team"},
        "outsider": {"b-team"},
        "operator_read": {"a-team"},
        "operator_admin": {"a-team"},
    }
    assert groups == expected.get(who, set()), who


@pytest.mark.parametrize("who", WITH_SUPPORT)
def test_api_create_role_matrix(world, api, who):
    before = AuditEvent.objects.count()
    response = api.as_user(user_for(world, who)).post(
        "/api/v1/idp-group-mappings/",
        {
            "org": world.a.org.pk,
            "group": "new-group",
            "role": "collaborator_ro",
            "project": world.a.project.pk,
        },
    )
    created = IdpGroupMapping.objects.filter(org=world.a.org, group="new-group").first()
    if who in MANAGERS:
        assert response.status_code == 201, response.content
        body = response.json()
        assert body["group"] == "new-group" and body["created_by"] == user_for(world, who).pk
        assert created is not None
        event = AuditEvent.objects.get(action="idp_mapping.create", target_id=str(created.pk))
        details = dict(event.details)
        # The support person's actions carry their support access (the tenant's trail shows it).
        assert ("support_access" in details) == (who == "operator_admin")
        details.pop("support_access", None)
        assert event.org_id == world.a.org.pk and details == {"group": "new-group", "role": "collaborator_ro"}
    else:
        assert response.status_code in (400, 403), (who, response.status_code, response.content)
        if response.status_code == 400:  # A's org is not even visible to them: "does not exist"
            fields = response.json()["error"]["fields"]
            assert any("does not exist" in m for messages in fields.values() for m in messages)
        assert created is None and AuditEvent.objects.count() == before


@pytest.mark.parametrize("who", WITH_SUPPORT)
def test_api_delete_role_matrix(world, api, mappings, who):
    mapping_a = mappings[0]
    response = api.as_user(user_for(world, who)).delete(f"/api/v1/idp-group-mappings/{mapping_a.pk}/")
    exists = IdpGroupMapping.objects.filter(pk=mapping_a.pk).exists()
    if who in MANAGERS:
        assert response.status_code == 204 and not exists
        assert AuditEvent.objects.filter(action="idp_mapping.delete", target_id=str(mapping_a.pk)).exists()
    elif who == "operator_read":  # sees it, may not change it
        assert response.status_code == 403 and exists
    else:
        assert response.status_code == 404, (who, response.status_code)  # not visible: like a missing one
        assert exists


def test_api_validation_messages(world, api):
    client = api.as_user(world.a.users["org_admin"])
    a = world.a

    def post(**data):
        return client.post("/api/v1/idp-group-mappings/", {"org": a.org.pk, **data})

    blank = post(group="  ", role="org_admin")
    assert blank.status_code == 400 and "group" in blank.json()["error"]["fields"]
    foreign = post(group="g", role="collaborator_ro", project=world.b.project.pk)
    assert foreign.status_code == 400 and "project" in foreign.json()["error"]["fields"]
    needs_project = post(group="g", role="workspace_admin")
    assert needs_project.status_code == 400
    assert needs_project.json()["error"]["fields"]["project"] == [
        "This role is held on a project; choose the project."
    ]
    no_project = post(group="g", role="org_admin", project=a.project.pk)
    assert (
        no_project.status_code == 400
        and "leave the project empty" in no_project.json()["error"]["fields"]["project"][0]
    )
    operator = post(group="g", role="operator")
    assert operator.status_code == 400 and "role" in operator.json()["error"]["fields"]
    assert post(group="g", role="org_admin").status_code == 201
    duplicate = post(group="g", role="org_admin")
    assert duplicate.status_code == 409 and "already gives" in duplicate.json()["error"]["message"]
    assert post(group="g", role="paas_admin", project=a.project.pk).status_code == 201
    assert post(group="g", role="paas_admin").status_code == 201


def test_service_refuses_a_project_of_another_org_even_for_operators(world):
    from paas.errors import ValidationFailed

    grant_support(operator=world.operator, org=world.a.org, level="admin")
    grant_support(operator=world.operator, org=world.b.org, level="admin")
    with pytest.raises(ValidationFailed) as refused:
        services.idp_mapping_create(
            actor=world.operator,
            org=world.a.org,
            group="g",
            role=Role.COLLABORATOR_RO,
            project=world.b.project,
        )
    assert refused.value.fields == {"project": [f"This project is not in {world.a.org.name}."]}


def test_role_assignments_show_their_source(world, api):
    rows = api.as_user(world.a.users["org_admin"]).get("/api/v1/role-assignments/?source=manual").json()
    assert rows["count"] > 0 and {row["source"] for row in rows["results"]} == {"manual"}
    assert api.as_user(world.operator).get("/api/v1/role-assignments/?source=idp").json()["count"] == 0


def test_deleting_a_mapping_removes_the_roles_only_it_could_give(world, mappings):
    """The roles a deleted mapping gave go at once, unless another mapping could give the same role at
    the same scope (then the user's next sign-on decides); manual assignments stay."""
    mapping_a, _ = mappings
    a = world.a
    user = services.sso_login(claims={"sub": "s1", "email": "idp-user@example.org", "groups": ["a-team"]})
    assert RoleAssignment.objects.filter(user=user, project=a.project, source="idp").exists()
    twin = services.idp_mapping_create(
        actor=a.users["org_admin"], org=a.org, group="a-team-2", role=Role.COLLABORATOR_RW, project=a.project
    )
    services.idp_mapping_delete(actor=a.users["org_admin"], mapping=mapping_a)
    assert RoleAssignment.objects.filter(user=user, project=a.project, source="idp").exists()
    services.idp_mapping_delete(actor=a.users["org_admin"], mapping=twin)
    assert not RoleAssignment.objects.filter(user=user, project=a.project).exists()
    assert AuditEvent.objects.filter(action="role.revoke", details__via="idp mapping deleted").count() == 1
    # The manual collaborator of A's team project is untouched.
    assert RoleAssignment.objects.filter(user=a.users["collaborator_rw"], project=a.project).exists()


# --- studio -----------------------------------------------------------------------------------------


def test_studio_org_admin_sees_and_manages_only_their_orgs_mappings(world, client, mappings):
    mapping_a, mapping_b = mappings
    client.force_login(world.a.users["org_admin"])
    assert "/studio/tenancy/idpgroupmapping/" in client.get("/studio/").content.decode()
    listing = client.get("/studio/tenancy/idpgroupmapping/").content.decode()
    assert "a-team" in listing and "b-team" not in listing

    other = client.get(f"/studio/tenancy/idpgroupmapping/{mapping_b.pk}/change/")
    missing = client.get("/studio/tenancy/idpgroupmapping/999999999/change/")
    assert other.status_code == missing.status_code == 302 and other.url == missing.url  # "doesn't exist"
    assert (
        client.post(f"/studio/tenancy/idpgroupmapping/{mapping_b.pk}/delete/", {"post": "yes"}).status_code
        == 302
    )
    assert IdpGroupMapping.objects.filter(pk=mapping_b.pk).exists()

    added = client.post(
        "/studio/tenancy/idpgroupmapping/add/",
        {
            "org": world.a.org.pk,
            "group": "studio-group",
            "role": "collaborator_ro",
            "project": world.a.project.pk,
        },
    )
    assert added.status_code == 302, added.content.decode()[:3000]
    created = IdpGroupMapping.objects.get(group="studio-group")
    assert created.created_by == world.a.users["org_admin"]
    assert AuditEvent.objects.filter(action="idp_mapping.create", target_id=str(created.pk)).exists()

    foreign_org = client.post(
        "/studio/tenancy/idpgroupmapping/add/", {"org": world.b.org.pk, "group": "x", "role": "org_admin"}
    )
    assert foreign_org.status_code == 200 and "Select a valid choice" in foreign_org.content.decode()
    mismatch = client.post(
        "/studio/tenancy/idpgroupmapping/add/",
        {"org": world.a.org.pk, "group": "x", "role": "workspace_admin"},
    )
    assert mismatch.status_code == 200 and "on a project" in mismatch.content.decode()
    duplicate = client.post(
        "/studio/tenancy/idpgroupmapping/add/",
        {
            "org": world.a.org.pk,
            "group": "studio-group",
            "role": "collaborator_ro",
            "project": world.a.project.pk,
        },
    )
    assert duplicate.status_code == 200 and "already gives this role" in duplicate.content.decode()

    deleted = client.post(f"/studio/tenancy/idpgroupmapping/{mapping_a.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 302 and not IdpGroupMapping.objects.filter(pk=mapping_a.pk).exists()


def test_studio_operator_sees_a_mapping_only_through_a_support_access(world, client, mappings):
    client.force_login(world.operator)
    listing = client.get("/studio/tenancy/idpgroupmapping/").content.decode()
    assert "a-team" not in listing and "b-team" not in listing
    grant_support(operator=world.operator, org=world.a.org, level="read")
    listing = client.get("/studio/tenancy/idpgroupmapping/").content.decode()
    assert "a-team" in listing and "b-team" not in listing


@pytest.mark.parametrize("who", ["paas_admin_org", "paas_admin_project"])
def test_studio_paas_admins_cannot_reach_mappings(world, client, mappings, who):
    client.force_login(world.a.users[who])
    assert "idpgroupmapping" not in client.get("/studio/").content.decode()
    assert client.get("/studio/tenancy/idpgroupmapping/").status_code == 403
    assert client.get(f"/studio/tenancy/idpgroupmapping/{mappings[0].pk}/change/").status_code in (302, 403)
    assert client.get("/studio/tenancy/idpgroupmapping/add/").status_code == 403


def test_studio_role_assignment_shows_its_source(world, client):
    client.force_login(world.a.users["org_admin"])
    listing = client.get("/studio/tenancy/roleassignment/").content.decode()
    assert "column-source" in listing and "Manual" in listing
    assignment = RoleAssignment.objects.filter(org=world.a.org).first()
    page = client.get(f"/studio/tenancy/roleassignment/{assignment.pk}/change/").content.decode()
    assert "field-source" in page
