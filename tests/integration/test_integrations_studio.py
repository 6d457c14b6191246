"""The studio's integration pages: the application catalog (add with an uploaded file, edit, publish,
share, delete; by scope and role) and applications (read-only, with their revisions)."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction

from catalog.models import CatalogApplication, ContainerRegistry, Repository
from instances import applications
from instances.models import ComputeInstance
from instances.states import State, transition
from paas.models import AuditEvent
from tests.factories import make_profile, make_synced_cluster
from tests.support.canary import CANARY
from tests.support.instances import launch
from tests.support.roles import user_for

CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  a: b\n"
PAGE = "/studio/catalog/catalogapplication/"


def _form(**extra):
    data = {
        "org": "",
        "project": "",
        "name": "hello",
        "display_name": "Hello",
        "description": "",
        "package_type": "yaml",
        "sync": "upload",
        "files": "{}",
        "repository": "",
        "ref": "",
        "path": "",
        "chart": "",
        "chart_version": "",
        "values_file": "",
        "values": "replicas: 1\n",
        "readme": "# Hello",
        "icon_url": "",
    }
    return data | extra


def _errors(response) -> str:
    """The form's errors of a studio page that did not save (for an assertion's message)."""
    context = response.context or {}
    form = context.get("adminform").form if context.get("adminform") else context.get("form")
    return f"{response.status_code}: {form.errors.as_text() if form is not None else response.content[:500]}"


def _upload(name="hello.yaml", text=None):
    return SimpleUploadedFile(name, (text or CONFIGMAP.format(name="hello")).encode(), "application/yaml")


@pytest.mark.parametrize(
    ("who", "scope", "allowed"),
    [
        ("operator", "system", True),
        ("org_admin", "org", True),
        ("org_admin", "project", True),
        ("paas_admin_org", "org", True),
        ("paas_admin_project", "project", True),
        ("paas_admin_project", "org", False),
        ("org_admin", "system", False),
    ],
)
def test_catalog_application_add_by_scope(world, client, who, scope, allowed):
    client.force_login(user_for(world, who))
    assert client.get(PAGE).status_code == 200
    assert client.get(f"{PAGE}add/").status_code == 200
    fields = {"system": {}, "org": {"org": world.a.org.pk}, "project": {"project": world.a.project.pk}}[scope]
    before = AuditEvent.objects.count()
    response = client.post(f"{PAGE}add/", _form(**fields, add_file=_upload()))
    created = CatalogApplication.objects.filter(name="hello").first()
    if allowed:
        assert response.status_code == 302, _errors(response)
        assert created.files == {"hello.yaml": CONFIGMAP.format(name="hello")}
        assert (
            created.scope_label
            == {
                "system": "system",
                "org": f"{world.a.org.name} (organization)",
                "project": str(world.a.project),
            }[scope]
        )
        assert AuditEvent.objects.count() > before
    else:
        assert created is None and AuditEvent.objects.count() == before
        # The form is shown again (the org is not offered, or the service refuses on the form).
        assert response.status_code == 200


def test_catalog_application_edit_publish_share_delete(world, client):
    client.force_login(world.a.users["org_admin"])
    # Bad input is shown on the form, the input kept.
    bad = client.post(
        f"{PAGE}add/", _form(org=world.a.org.pk, values="- a list", add_file=_upload(), description="kept")
    )
    page = bad.content.decode()
    assert bad.status_code == 200 and "YAML mapping" in page and "kept" in page
    namespace = client.post(
        f"{PAGE}add/",
        _form(
            org=world.a.org.pk,
            add_file=_upload("ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n"),
        ),
    )
    assert namespace.status_code == 200 and "Namespace" in namespace.content.decode()
    assert not CatalogApplication.objects.exists()

    assert client.post(f"{PAGE}add/", _form(org=world.a.org.pk, add_file=_upload())).status_code == 302
    item = CatalogApplication.objects.get(name="hello")
    change = client.get(f"{PAGE}{item.pk}/change/")
    assert change.status_code == 200 and "hello.yaml" in change.content.decode()
    edited = client.post(
        f"{PAGE}{item.pk}/change/",
        _form(files=json.dumps({"hello.yaml": CONFIGMAP.format(name="hi")}), display_name="Hi"),
    )
    assert edited.status_code == 302, _errors(edited)
    item.refresh_from_db()
    assert item.display_name == "Hi" and "name: hi" in item.files["hello.yaml"] and item.published is False
    # Publish (the list's action) and share with the spare project only.
    client.post(PAGE, {"action": "publish", "_selected_action": [item.pk]})
    item.refresh_from_db()
    assert item.published
    shared = client.post(
        f"{PAGE}{item.pk}/share/", {"sharing": "selected", "targets": [world.a.spare_project.pk]}
    )
    assert shared.status_code == 302
    assert list(item.shared_projects.values_list("pk", flat=True)) == [world.a.spare_project.pk]
    assert AuditEvent.objects.filter(action="catalogapplication.share", target_id=str(item.pk)).exists()
    # Another org's admin does not find it; a PaaS admin of the project only sees it but may not change it.
    client.force_login(world.b.users["org_admin"])
    assert client.get(f"{PAGE}{item.pk}/change/").status_code in (302, 404)
    assert client.post(f"{PAGE}{item.pk}/delete/", {"post": "yes"}).status_code in (302, 403, 404)
    assert CatalogApplication.objects.filter(pk=item.pk).exists()
    client.force_login(world.a.users["org_admin"])
    assert client.post(f"{PAGE}{item.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not CatalogApplication.objects.filter(pk=item.pk).exists()


@pytest.fixture
def application(world):
    profile = make_profile(
        actor=world.a.users["paas_admin_org"],
        project=world.a.project,
        manifests=CONFIGMAP.format(name="{{ instance.name }}-info"),
        resource_groups=[
            {
                "gpu_model": "A100-SXM4-40GB",
                "gpu_count": 1,
                "cpu_cores": "4",
                "memory_gib": 16,
                "storage_gib": 10,
            }
        ],
        name="box",
        template="box-tpl",
    )
    make_synced_cluster(name="c1")
    instance = launch(world, profile, "dev")
    with transaction.atomic():
        instance = ComputeInstance.objects.select_for_update().get(pk=instance.pk)
        instance.namespace = "i-dev-ns"
        instance.save(update_fields=["namespace"])
        transition(instance, State.PROVISIONING)
        transition(instance, State.READY)
    return applications.application_create(
        actor=instance.owner,
        compute_instance=instance,
        name="web",
        package_type="yaml",
        sync="upload",
        files={"web.yaml": CONFIGMAP.format(name="web")},
    )


@pytest.mark.parametrize(
    "who", ["operator", "operator_read", "org_admin", "paas_admin_org", "paas_admin_project", "outsider"]
)
def test_applications_are_read_only_in_the_studio(world, client, application, who):
    client.force_login(user_for(world, who))
    listed = client.get("/studio/instances/application/")
    detail = client.get(f"/studio/instances/application/{application.pk}/change/")
    if who in ("operator_read", "org_admin"):  # (the operator through a read support access)
        assert listed.status_code == 200 and "web" in listed.content.decode()
        page = detail.content.decode()
        assert detail.status_code == 200 and "web.yaml" not in page  # the files stay out of the page
        assert "revision" in page.lower() and "pending" in page.lower()
        assert "Save" not in page and 'name="_save"' not in page
        assert client.get("/studio/instances/application/add/").status_code == 403
        posted = client.post(f"/studio/instances/application/{application.pk}/change/", {"name": "x"})
        assert posted.status_code == 403
    elif who in ("operator", "outsider"):  # no support access / another org's admin: nothing to see
        assert listed.status_code in (200, 403) and "web" not in listed.content.decode().split("</thead>")[-1]
        assert detail.status_code in (302, 404)
    else:  # PaaS admins see the catalog sections only
        assert listed.status_code == 403


# --- repositories and container registries ---------------------------------------------------------

REGISTRIES = "/studio/catalog/containerregistry/"
REPOSITORIES = "/studio/catalog/repository/"


def _registry_form(**extra):
    data = {
        "org": "",
        "project": "",
        "name": "harbor",
        "display_name": "",
        "description": "",
        "provider": "generic",
        "scheme": "https",
        "endpoint": "127.0.0.1:5000",
        "username": "robot",
        "new_credential": f"{CANARY}-studio",
    }
    return data | extra


@pytest.mark.parametrize(
    ("who", "scope", "allowed"),
    [
        ("operator", "system", True),
        ("org_admin", "org", True),
        ("paas_admin_project", "project", True),
        ("paas_admin_project", "org", False),
        ("org_admin", "system", False),
    ],
)
def test_registry_add_by_scope(world, client, who, scope, allowed):
    client.force_login(user_for(world, who))
    page = client.get(f"{REGISTRIES}add/")
    assert page.status_code == 200 and "Pull-only credentials only" in page.content.decode()
    assert 'type="password"' in page.content.decode()
    fields = {"system": {}, "org": {"org": world.a.org.pk}, "project": {"project": world.a.project.pk}}[scope]
    response = client.post(f"{REGISTRIES}add/", _registry_form(**fields))
    created = ContainerRegistry.objects.filter(name="harbor").first()
    if allowed:
        assert response.status_code == 302, _errors(response)
        assert created.credential.reveal() == f"{CANARY}-studio" and created.credential_version == 1
    else:
        assert created is None and response.status_code == 200


def test_registry_change_keeps_the_credential_and_never_shows_it(world, client):
    client.force_login(world.a.users["org_admin"])
    assert client.post(f"{REGISTRIES}add/", _registry_form(org=world.a.org.pk)).status_code == 302
    registry = ContainerRegistry.objects.get(name="harbor")
    # The canary watch fails this test if the credential is rendered (the change page, the list).
    page = client.get(f"{REGISTRIES}{registry.pk}/change/").content.decode()
    assert "Pull-only credentials only" in page and "Credential stored" in page
    assert client.get(REGISTRIES).status_code == 200
    kept = client.post(
        f"{REGISTRIES}{registry.pk}/change/", _registry_form(new_credential="", description="kept it")
    )
    assert kept.status_code == 302, _errors(kept)
    registry.refresh_from_db()
    assert registry.description == "kept it" and registry.credential.reveal() == f"{CANARY}-studio"
    assert registry.credential_version == 1
    bad = client.post(f"{REGISTRIES}{registry.pk}/change/", _registry_form(endpoint="file:///etc"))
    assert bad.status_code == 200 and "host[:port]" in bad.content.decode()
    shared = client.post(f"{REGISTRIES}{registry.pk}/share/", {"sharing": "all"})
    assert shared.status_code == 302
    registry.refresh_from_db()
    assert registry.sharing == "all"
    assert AuditEvent.objects.filter(action="containerregistry.update", target_id=str(registry.pk)).exists()
    # Another org's admin does not find it; the project's PaaS admin may not change an org registry.
    client.force_login(world.b.users["org_admin"])
    assert client.get(f"{REGISTRIES}{registry.pk}/change/").status_code in (302, 404)
    client.force_login(world.a.users["paas_admin_project"])
    refused = client.post(f"{REGISTRIES}{registry.pk}/change/", _registry_form(description="x"))
    assert refused.status_code == 403
    client.force_login(world.a.users["org_admin"])
    assert client.post(f"{REGISTRIES}{registry.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not ContainerRegistry.objects.filter(pk=registry.pk).exists()


def test_repository_pages(world, client):
    client.force_login(world.a.users["paas_admin_project"])
    form = {
        "org": "",
        "project": world.a.project.pk,
        "name": "app",
        "display_name": "",
        "description": "",
        "kind": "git",
        "url": "file:///etc/passwd",
        "default_ref": "main",
        "path": "",
        "ca_certificate": "",
        "ssh_known_hosts": "",
        "auth": "token",
        "username": "",
        "new_credential": f"{CANARY}-repo",
    }
    refused = client.post(f"{REPOSITORIES}add/", form)
    assert refused.status_code == 200 and not Repository.objects.exists()
    assert "file" in refused.content.decode().lower()
    created = client.post(f"{REPOSITORIES}add/", form | {"url": "https://127.0.0.1:9/app.git"})
    assert created.status_code == 302, _errors(created)
    repository = Repository.objects.get(name="app")
    assert repository.credential.reveal() == f"{CANARY}-repo"
    page = client.get(f"{REPOSITORIES}{repository.pk}/change/")
    assert page.status_code == 200 and "never checked" in page.content.decode()
    queued = client.post(REPOSITORIES, {"action": "check_now", "_selected_action": [repository.pk]})
    assert queued.status_code == 302
    assert AuditEvent.objects.filter(
        action="repository.check_requested", target_id=str(repository.pk)
    ).exists()
    client.force_login(world.a.users["workspace_admin"])  # not a studio role
    assert client.get(REPOSITORIES).status_code == 302
