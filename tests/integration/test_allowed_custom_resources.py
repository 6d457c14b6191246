"""The operators' allow-list of custom resources (catalog.custom_resources): only operators write it
(service, API and studio), every write is audited in its transaction, template writers read it, and
publishing a template that renders an unlisted custom kind is refused naming the object.

The deploy side (refused at apply, an allowed kind deploying against the real cluster) is in
tests/integration/test_hostile_templates.py.
"""

import pytest

from catalog import custom_resources, system
from catalog import services as catalog_services
from catalog.models import AllowedCustomResource, TemplateVersion
from paas.errors import Forbidden, ValidationFailed
from paas.models import AuditEvent
from tests.support.hostile_templates import manifests, obj

pytestmark = pytest.mark.django_db

URL = "/api/v1/allowed-custom-resources/"
RAY = [{"apiVersion": "ray.io/v1", "kind": "RayCluster", "scope": "Namespaced"}]


def _events(action: str):
    return AuditEvent.objects.filter(action=action)


def test_only_operators_allow_a_kind_and_each_write_is_audited(world):
    for role in ("org_admin", "paas_admin_org", "workspace_admin", "collaborator_rw"):
        with pytest.raises(Forbidden):
            custom_resources.allowed_custom_resource_create(
                actor=world.a.users[role], group="ray.io", kind="RayCluster"
            )
    assert not AllowedCustomResource.objects.exists() and not _events("custom_resource.allow")

    entry = custom_resources.allowed_custom_resource_create(
        actor=world.operator, group="Ray.io ", kind="RayCluster", description="KubeRay"
    )
    assert (entry.group, entry.kind, entry.created_by) == ("ray.io", "RayCluster", world.operator)
    event = _events("custom_resource.allow").get()
    assert event.actor == world.operator and event.target_id == str(entry.pk)
    assert event.details == {"group": "ray.io", "kind": "RayCluster", "description": "KubeRay"}

    with pytest.raises(ValidationFailed) as twice:
        custom_resources.allowed_custom_resource_create(
            actor=world.operator, group="ray.io", kind="RayCluster"
        )
    assert "allowed already" in twice.value.fields["kind"][0]

    with pytest.raises(Forbidden):
        custom_resources.allowed_custom_resource_delete(actor=world.a.users["org_admin"], entry=entry)
    custom_resources.allowed_custom_resource_delete(actor=world.operator, entry=entry)
    assert not AllowedCustomResource.objects.exists()
    assert _events("custom_resource.disallow").get().details == {"group": "ray.io", "kind": "RayCluster"}


@pytest.mark.parametrize(
    ("group", "kind", "field", "expected"),
    [
        ("apps", "Deployment", "group", "DNS subdomain with a dot"),
        ("rbac.authorization.k8s.io", "ClusterRole", "group", "built-in Kubernetes API group"),
        ("networking.k8s.io", "NetworkPolicy", "group", "built-in Kubernetes API group"),
        ("ray.io", "raycluster", "kind", "CamelCase"),
        ("ray.io", "", "kind", "CamelCase"),
        ("not a group.io", "Thing", "group", "DNS subdomain"),
    ],
)
def test_built_in_groups_and_malformed_names_cannot_be_allowed(world, group, kind, field, expected):
    with pytest.raises(ValidationFailed) as refused:
        custom_resources.allowed_custom_resource_create(actor=world.operator, group=group, kind=kind)
    assert expected in refused.value.fields[field][0]
    assert not AllowedCustomResource.objects.exists()


def test_api_operators_write_template_writers_read_others_see_nothing(world, api):
    created = api.as_user(world.operator).post(
        URL, {"group": "ray.io", "kind": "RayCluster", "description": "KubeRay"}, format="json"
    )
    assert created.status_code == 201, created.json()
    assert created.json()["created_by"] == world.operator.username
    entry_id = created.json()["id"]
    assert _events("custom_resource.allow").count() == 1

    for role in ("org_admin", "paas_admin_org", "paas_admin_project"):
        client = api.as_user(world.a.users[role])
        listed = client.get(URL)
        assert listed.status_code == 200 and [r["kind"] for r in listed.json()["results"]] == ["RayCluster"]
        refused = client.post(URL, {"group": "example.com", "kind": "Thing"}, format="json")
        assert refused.status_code == 403, (role, refused.json())
        assert client.delete(f"{URL}{entry_id}/").status_code == 403, role
    for user in (world.a.users["workspace_admin"], world.a.users["collaborator_ro"], world.outsider):
        listed = api.as_user(user).get(URL)
        assert listed.status_code == 200 and listed.json()["results"] == [], user
        assert api.as_user(user).delete(f"{URL}{entry_id}/").status_code == 404
    assert not AllowedCustomResource.objects.filter(kind="Thing").exists()
    assert AllowedCustomResource.objects.filter(pk=entry_id).exists()
    assert _events("custom_resource.allow").count() == 1  # nothing written by the refusals

    bad = api.as_user(world.operator).post(URL, {"group": "apps", "kind": "Deployment"}, format="json")
    assert bad.status_code == 400 and "group" in bad.json()["error"]["fields"]
    assert api.as_user(world.operator).delete(f"{URL}{entry_id}/").status_code == 204
    assert _events("custom_resource.disallow").count() == 1


def test_the_studio_page_is_the_operators_only(world, client):
    entry = custom_resources.allowed_custom_resource_create(
        actor=world.operator, group="ray.io", kind="RayCluster"
    )
    page = "/studio/catalog/allowedcustomresource/"
    for role in ("org_admin", "paas_admin_org"):
        client.force_login(world.a.users[role])
        assert client.get(page).status_code == 403, role
        assert client.post(f"{page}add/", {"group": "example.com", "kind": "Thing"}).status_code == 403
        assert client.post(f"{page}{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    assert list(AllowedCustomResource.objects.values_list("kind", flat=True)) == ["RayCluster"]
    client.force_login(world.operator)
    assert client.get(page).status_code == 200
    added = client.post(f"{page}add/", {"group": "example.com", "kind": "Thing", "description": "x"})
    assert added.status_code == 302
    assert _events("custom_resource.allow").filter(details__kind="Thing").exists()


def _draft(world, name="crs"):
    admin = world.a.users["org_admin"]
    template = catalog_services.template_create(actor=admin, project=world.a.project, name=name)
    return catalog_services.template_version_create(
        actor=admin,
        template=template,
        version="v1",
        manifests=manifests([obj("ray.io/v1", "RayCluster", "ray")]),
        custom_resources=RAY,
    )


def test_publishing_an_unlisted_custom_resource_is_refused_until_an_operator_allows_it(world):
    admin = world.a.users["org_admin"]
    version = _draft(world)
    with pytest.raises(ValidationFailed) as refused:
        catalog_services.template_version_publish(actor=admin, version=version)
    text = "\n".join(refused.value.fields["manifests"])
    assert "RayCluster/ray: the custom resource RayCluster (ray.io) is not on the platform's list" in text
    assert "an operator must allow the kind" in text
    assert TemplateVersion.objects.get(pk=version.pk).state == TemplateVersion.State.DRAFT

    custom_resources.allowed_custom_resource_create(actor=world.operator, group="ray.io", kind="RayCluster")
    published = catalog_services.template_version_publish(actor=admin, version=version)
    assert published.is_published


def test_the_system_catalog_allows_its_own_kinds_and_loads_twice(world):
    report = system.load(actor=world.operator)
    assert "allowed custom resource RayCluster (ray.io)" in report
    assert set(AllowedCustomResource.objects.values_list("group", "kind")) == {
        ("ray.io", "RayCluster"),
        ("ray.io", "RayService"),
        ("serving.kserve.io", "InferenceService"),
    }
    assert _events("custom_resource.allow").count() == 3
    assert not [line for line in system.load(actor=world.operator) if "allowed" in line]
    with pytest.raises(Forbidden):
        system.load(actor=world.a.users["org_admin"])
