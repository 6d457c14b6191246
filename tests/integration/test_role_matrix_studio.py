"""The role matrix through the PaaS Studio (the Django admin): what each role sees and may do.

The operator runs organizations (create, rename, quotas, their first admin's invitation), the platform's
pages (warm pools, the queues) and the system catalog; inside org A they act only with a support
access: ``operator_read`` sees and changes nothing, ``operator_admin`` acts as an org admin."""

import pytest

from paas.models import AuditEvent
from tenancy.models import Project, RoleAssignment
from tests.support.roles import OPERATORS, user_for

STUDIO_ROLES = {
    "operator",
    "org_admin",
    "paas_admin_org",
    "paas_admin_project",
    "operator_read",
    "operator_admin",
}
ADMINS = {"org_admin", "operator_admin"}
NOT_STUDIO = ["workspace_admin", "collaborator_rw", "collaborator_ro"]


def _login(client, world, who):
    user = user_for(world, who)
    client.force_login(user)
    return user


@pytest.mark.parametrize("who", NOT_STUDIO)
def test_end_users_do_not_enter_the_studio(world, client, who):
    """End-user roles have no studio (the developer hub is theirs)."""
    _login(client, world, who)
    response = client.get("/studio/")
    assert response.status_code == 302 and "/studio/login/" in response.url
    assert client.get(f"/studio/tenancy/project/{world.a.project.pk}/change/").status_code == 302


@pytest.mark.parametrize("who", sorted(STUDIO_ROLES))
def test_studio_index_lists_only_allowed_sections(world, client, who):
    _login(client, world, who)
    page = client.get("/studio/").content.decode()
    assert "PaaS Studio" in page
    assert ("/studio/django_q/" in page) == (who in OPERATORS), "only operators see the worker queues"
    # Operators: the platform's events (and a support org's); org admins their org's.
    assert ("/studio/paas/auditevent/" in page) == (who in OPERATORS | {"org_admin"})


EXPECTED = {
    # (page, method) -> roles allowed
    "org_add_page": OPERATORS,
    "org_change_post": OPERATORS | {"org_admin"},
    "project_add_post": ADMINS,
    "project_change_post": ADMINS,
    "project_delete_post": ADMINS,
    "role_add_post": ADMINS,
    "role_delete_post": ADMINS,
    # An org admin's invitation to A, which has an admin: its admins (and admin support). The operator
    # sends an org's first admin's only (test_support_access.py).
    "invitation_add_post": {"operator_admin", "org_admin"},
    "invitation_member_post": ADMINS,
    "org_quota_post": OPERATORS,
    "project_quota_post": ADMINS,
    # A PaaS admin sees profiles and templates only (issue 11 part 7): the audit list was an empty 200.
    "audit_list_page": OPERATORS | {"org_admin"},
    "instance_list_page": OPERATORS | {"org_admin"},
    # Warm pools hold the provider's capacity: operators only (issue 15).
    "warm_pool_list_page": OPERATORS,
    "standby_list_page": OPERATORS,
    # Integrations (issue 14): catalog managers manage the application catalog, repositories and
    # registries of their scopes; applications are shown read-only as instances are.
    "catalog_application_list_page": STUDIO_ROLES,
    "catalog_application_add_post": STUDIO_ROLES - {"operator", "operator_read"},
    "repository_list_page": STUDIO_ROLES,
    "registry_list_page": STUDIO_ROLES,
    "registry_add_post": STUDIO_ROLES - {"operator", "operator_read"},
    "application_list_page": OPERATORS | {"org_admin"},
}


def _do(client, world, action):
    a = world.a
    if action == "org_add_page":
        return client.get("/studio/tenancy/organization/add/"), None
    if action == "audit_list_page":
        return client.get("/studio/paas/auditevent/"), None
    if action == "instance_list_page":
        return client.get("/studio/instances/computeinstance/"), None
    if action == "warm_pool_list_page":
        return client.get("/studio/instances/warmpool/"), None
    if action == "standby_list_page":
        return client.get("/studio/instances/standbyinstance/"), None
    if action == "catalog_application_list_page":
        return client.get("/studio/catalog/catalogapplication/"), None
    if action == "repository_list_page":
        return client.get("/studio/catalog/repository/"), None
    if action == "registry_list_page":
        return client.get("/studio/catalog/containerregistry/"), None
    if action == "application_list_page":
        return client.get("/studio/instances/application/"), None
    if action == "catalog_application_add_post":
        from catalog.models import CatalogApplication

        data = {
            "project": a.project.pk,
            "name": "hello",
            "display_name": "Hello",
            "package_type": "yaml",
            "sync": "upload",
            "files": '{"cm.yaml": "apiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: cm\\n"}',
        }
        r = client.post("/studio/catalog/catalogapplication/add/", data)
        return r, lambda: CatalogApplication.objects.filter(name="hello").exists()
    if action == "registry_add_post":
        from catalog.models import ContainerRegistry

        data = {
            "project": a.project.pk,
            "name": "harbor",
            "provider": "generic",
            "scheme": "https",
            "endpoint": "127.0.0.1:5000",
            "username": "robot",
            "new_credential": "pull-only-token",
        }
        r = client.post("/studio/catalog/containerregistry/add/", data)
        return r, lambda: ContainerRegistry.objects.filter(name="harbor").exists()
    if action == "org_change_post":
        r = client.post(f"/studio/tenancy/organization/{a.org.pk}/change/", {"display_name": "New name"})
        return r, lambda: a.org.__class__.objects.get(pk=a.org.pk).display_name == "New name"
    if action == "project_add_post":
        data = {"org": a.org.pk, "name": "studio-made", "display_name": "Studio made", "description": ""}
        r = client.post("/studio/tenancy/project/add/", data)
        return r, lambda: Project.objects.filter(org=a.org, name="studio-made").exists()
    if action == "project_change_post":
        r = client.post(
            f"/studio/tenancy/project/{a.project.pk}/change/", {"display_name": "X", "description": "d"}
        )
        return r, lambda: Project.objects.get(pk=a.project.pk).description == "d"
    if action == "project_delete_post":
        r = client.post(f"/studio/tenancy/project/{a.spare_project.pk}/delete/", {"post": "yes"})
        return r, lambda: not Project.objects.filter(pk=a.spare_project.pk).exists()
    if action == "role_add_post":
        data = {
            "user": a.users["collaborator_ro"].pk,
            "role": "collaborator_rw",
            "org": a.org.pk,
            "project": a.project.pk,
        }
        r = client.post("/studio/tenancy/roleassignment/add/", data)
        return r, lambda: RoleAssignment.objects.filter(
            user=a.users["collaborator_ro"], role="collaborator_rw"
        ).exists()
    if action == "role_delete_post":
        ra = RoleAssignment.objects.get(user=a.users["collaborator_ro"], project=a.project)
        r = client.post(f"/studio/tenancy/roleassignment/{ra.pk}/delete/", {"post": "yes"})
        return r, lambda: not RoleAssignment.objects.filter(pk=ra.pk).exists()
    if action in ("invitation_add_post", "invitation_member_post"):
        data = {
            "org": a.org.pk,
            "project": "",
            "email": "new@example.com",
            "first_name": "N",
            "last_name": "U",
            "role": "org_admin" if action == "invitation_add_post" else "paas_admin",
        }
        r = client.post("/studio/tenancy/invitation/add/", data)
        return r, lambda: a.org.invitations.filter(email="new@example.com").exists()
    limits = {
        "gpus": "5",
        "cpu_cores": "",
        "memory_gib": "",
        "storage_gib": "",
        "instances": "",
        "gpu_model_limits": "",
    }
    quota = a.org.quota if action == "org_quota_post" else a.project.quota
    r = client.post(f"/studio/tenancy/quota/{quota.pk}/change/", limits)
    return r, lambda: quota.__class__.objects.get(pk=quota.pk).gpus == 5


@pytest.mark.parametrize("who", sorted(STUDIO_ROLES))
@pytest.mark.parametrize("action", sorted(EXPECTED))
def test_studio_role_matrix(world, client, who, action):
    _login(client, world, who)
    before = AuditEvent.objects.count()
    response, happened = _do(client, world, action)
    allowed = who in EXPECTED[action]
    if happened is None:  # a page view
        assert (response.status_code == 200) == allowed, (who, action, response.status_code)
        return
    assert happened() == allowed, (who, action, response.status_code)
    assert (AuditEvent.objects.count() > before) == allowed
    if allowed:
        assert response.status_code == 302, response.content.decode()[:2000]
    else:
        assert response.status_code in (200, 302, 403), (who, action, response.status_code)
        if response.status_code == 200:  # the form again, saying what was refused
            assert "errornote" in response.content.decode(), (who, action)


def test_studio_shows_service_errors_on_the_form_and_keeps_input(world, client):
    client.force_login(world.a.users["org_admin"])
    response = client.post(
        "/studio/tenancy/project/add/",
        {"org": world.a.org.pk, "name": "team", "display_name": "Typed by hand", "description": "kept"},
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert "already exists" in page and "Typed by hand" in page and "kept" in page


def test_studio_refuses_project_quota_above_org_quota(world, client):
    from tenancy.services import quota_update

    quota_update(actor=world.operator, quota=world.a.org.quota, gpus=8)
    client.force_login(world.a.users["org_admin"])
    limits = {
        "gpus": "9",
        "cpu_cores": "",
        "memory_gib": "",
        "storage_gib": "",
        "instances": "",
        "gpu_model_limits": "NVIDIA-H100-80GB-HBM3 = 2",
    }
    response = client.post(f"/studio/tenancy/quota/{world.a.project.quota.pk}/change/", limits)
    assert response.status_code == 200
    assert "exceed the organization&#x27;s limit of 8" in response.content.decode()


def _launched_in_a(world):
    from instances import services
    from tests.factories import ONE_A100, make_profile, make_synced_cluster

    make_synced_cluster(name="matrix-c")
    profile = make_profile(
        actor=world.a.users["paas_admin_project"],
        project=world.a.project,
        manifests="apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: info\n",
        resource_groups=ONE_A100,
        name="matrix",
        template="matrix",
    )
    admin = world.a.users["workspace_admin"]
    return services.instance_launch(actor=admin, project=world.a.project, name="seen-by", profile=profile)


def _rows(client, url) -> list:
    response = client.get(url)
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


def test_operator_sees_an_orgs_instances_and_trail_only_through_a_support_access(world, client):
    from tests.support.support import grant_support

    instance = _launched_in_a(world)
    client.force_login(world.operator)
    assert _rows(client, "/studio/instances/computeinstance/") == []
    assert client.get(f"/studio/instances/computeinstance/{instance.pk}/change/").status_code in (302, 404)
    trail = _rows(client, "/studio/paas/auditevent/")
    assert trail and {event.org_id for event in trail} == {None}  # the platform's events only

    access = grant_support(operator=world.operator, org=world.a.org, level="read")
    assert [i.pk for i in _rows(client, "/studio/instances/computeinstance/")] == [instance.pk]
    assert {event.org_id for event in _rows(client, "/studio/paas/auditevent/")} == {None, world.a.org.pk}
    # Read-only: the project's change form does not save.
    response = client.post(
        f"/studio/tenancy/project/{world.a.project.pk}/change/", {"display_name": "X", "description": "ro"}
    )
    assert response.status_code in (302, 403)
    assert Project.objects.get(pk=world.a.project.pk).description != "ro"

    access.state = "revoked"
    access.save(update_fields=["state"])
    assert _rows(client, "/studio/instances/computeinstance/") == []
