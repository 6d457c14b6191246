"""The PaaS Studio home (reference 001) per role: System and Custom Profiles cards, the "new profile"
starts, "launch into projects" where the viewer may share, and the Developer Hub of the viewer's scope
only (an operator: the system catalog, and an org's workspaces only through a support access to it; an
org admin: theirs; a PaaS admin: none). Another org's profiles and workspaces never appear."""

import re

import pytest

from catalog import selectors
from catalog import services as catalog_services
from catalog.models import ServiceProfile
from instances import services as instance_services
from instances.models import ComputeInstance, ServiceInstance
from paas.models import AuditEvent
from tenancy.models import Project
from tests.factories import ONE_A100, make_profile, make_synced_cluster
from tests.support.html_forms import form_data
from tests.support.roles import user_for
from tests.support.support import grant_support

pytestmark = pytest.mark.django_db

MANIFESTS = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  a: b\n"


def _service_profile(actor, project, name, version, **extra):
    return catalog_services.profile_create(
        actor=actor,
        model=ServiceProfile,
        project=project,
        name=name,
        service_type="notebook",
        template_version=version,
        **extra,
    )


def _running(actor, project, profile, name):
    instance = instance_services.instance_launch(actor=actor, project=project, name=name, profile=profile)
    ComputeInstance.objects.filter(pk=instance.pk).update(state="ready")
    return instance


@pytest.fixture
def home(world):
    op, a_admin, b_admin = world.operator, world.a.users["org_admin"], world.b.users["org_admin"]
    make_synced_cluster(name="home-cluster")
    a_compute = make_profile(
        actor=a_admin,
        project=world.a.project,
        manifests=MANIFESTS,
        resource_groups=ONE_A100,
        name="a-compute",
    )
    a_service = _service_profile(
        a_admin, world.a.project, "a-notebook", a_compute.template_version, published=True
    )
    b_compute = make_profile(
        actor=b_admin,
        project=world.b.project,
        manifests=MANIFESTS,
        resource_groups=ONE_A100,
        name="b-compute",
    )
    _service_profile(b_admin, world.b.project, "b-secret-svc", b_compute.template_version)
    system_template = catalog_services.template_create(actor=op, project=None, name="sys-tpl")
    version = catalog_services.template_version_publish(
        actor=op,
        version=catalog_services.template_version_create(
            actor=op, template=system_template, version="v1", manifests=MANIFESTS
        ),
    )
    catalog_services.item_share(actor=op, item=system_template, sharing="all")
    shared = _service_profile(op, None, "sys-notebook", version, published=True)
    catalog_services.item_share(actor=op, item=shared, sharing="all")
    hidden = _service_profile(op, None, "sys-hidden", version, published=True)
    catalog_services.item_share(actor=op, item=hidden, sharing="selected", orgs=[world.b.org])
    a_instance = _running(world.a.users["workspace_admin"], world.a.project, a_compute, "a-box")
    _running(world.b.users["workspace_admin"], world.b.project, b_compute, "b-box")
    ServiceInstance.objects.create(
        org=world.a.org,
        project=world.a.project,
        compute_instance=a_instance,
        name="nb",
        owner=world.a.users["collaborator_rw"],
        profile=a_service,
        service_type="notebook",
        state="ready",
    )
    return {"a_service": a_service, "a_compute": a_compute, "shared": shared, "hidden": hidden}


def _cards(html: str) -> set[str]:
    return set(re.findall(r'data-profile="([^"]+)"', html))


def _workspaces(html: str) -> set[str]:
    return set(re.findall(r'data-workspace="([^"]+)"', html))


def _kpi(html: str, label: str) -> int:
    return int(re.search(rf"<strong>(\d+)</strong>{label}", html).group(1))


def test_operator_sees_the_system_catalog_and_an_orgs_workspaces_only_through_support(world, client, home):
    client.force_login(world.operator)
    html = client.get("/studio/").content.decode()
    assert "System Profiles" in html and "Developer Hub" in html
    assert {"sys-notebook", "sys-hidden"} <= _cards(html)
    assert not {"a-notebook", "a-compute", "b-secret-svc", "b-compute"} & _cards(html), "no tenant's catalog"
    assert not _workspaces(html)
    assert _kpi(html, "compute instances running") == 0 and _kpi(html, "services running") == 0
    assert f"/studio/catalog/serviceprofile/{home['shared'].pk}/launch/" in html
    assert "/studio/django_q/" in html, "every studio page stays reachable from the home"
    # A support access to A: A's workspaces and activity, still nothing of B.
    grant_support(operator=world.operator, org=world.a.org, level="read")
    html = client.get("/studio/").content.decode()
    assert {"orga/team", "orga/spare"} <= _workspaces(html)
    assert all(w.startswith("orga/") for w in _workspaces(html))
    assert _kpi(html, "compute instances running") == 1 and _kpi(html, "services running") == 1
    assert not {"b-secret-svc", "b-compute"} & _cards(html)


def test_org_admin_sees_their_org_only(world, client, home):
    client.force_login(world.a.users["org_admin"])
    html = client.get("/studio/").content.decode()
    assert {"sys-notebook", "a-notebook", "a-compute"} <= _cards(html)
    assert not {"b-secret-svc", "b-compute", "sys-hidden"} & _cards(html), "never another org's profiles"
    assert {"orga/team", "orga/spare"} <= _workspaces(html)
    assert all(w.startswith("orga/") for w in _workspaces(html)), "never another org's workspaces"
    assert _kpi(html, "compute instances running") == 1 and _kpi(html, "services running") == 1
    # the six members of orga, each with a workspace role (at least in their personal workspace); not orgb's
    assert _kpi(html, "developers") == len(world.a.users) == 6
    assert _kpi(html, "profiles in use") == 2  # a-compute (the instance) and a-notebook (the service)
    assert f"/studio/catalog/serviceprofile/{home['a_service'].pk}/launch/" in html
    assert f"/studio/catalog/serviceprofile/{home['shared'].pk}/launch/" not in html, (
        "a tenant cannot share it"
    )
    assert "/studio/catalog/serviceprofile/add/" in html and "/studio/catalog/computeprofile/add/" in html
    assert "/studio/tenancy/project/" in html and "/studio/django_q/" not in html


@pytest.mark.parametrize("who", ["paas_admin_org", "paas_admin_project"])
def test_paas_admin_sees_profiles_but_no_developer_data(world, client, home, who):
    client.force_login(user_for(world, who))
    html = client.get("/studio/").content.decode()
    assert {"sys-notebook", "a-notebook"} <= _cards(html)
    assert not {"b-secret-svc", "sys-hidden"} & _cards(html)
    assert not _workspaces(html) and "compute instances running" not in html
    assert "as a PaaS admin you manage profiles and templates" in html
    assert "/studio/catalog/serviceprofile/add/" in html
    assert "/studio/tenancy/" not in html and "/studio/instances/" not in html


def test_launch_into_projects_shares_through_the_rules(world, client, home):
    profile = home["a_service"]
    url = f"/studio/catalog/serviceprofile/{profile.pk}/launch/"
    client.force_login(world.a.users["org_admin"])
    page = client.get(url).content.decode()
    offered = set(form_data(page.replace("<input", "<input checked")).get("targets", []))
    others = Project.objects.filter(org=world.a.org).exclude(pk=world.a.project.pk)
    assert offered == {str(pk) for pk in others.values_list("pk", flat=True)}, "the org's other projects only"
    assert str(world.a.spare_project.pk) in offered
    refused = client.post(url, {"targets": [str(world.b.project.pk)]})
    assert refused.status_code == 200 and "Select a valid choice" in refused.content.decode()
    assert not selectors.catalog_for(ServiceProfile, world.a.spare_project).filter(pk=profile.pk).exists()
    response = client.post(url, {"targets": [str(world.a.spare_project.pk)]})
    assert response.status_code == 302 and response.url == "/studio/"
    assert selectors.catalog_for(ServiceProfile, world.a.spare_project).filter(pk=profile.pk).exists()
    assert AuditEvent.objects.filter(action="serviceprofile.share", target_id=str(profile.pk)).exists()
    # a tenant may not launch a system profile (only operators share the system catalog)
    client.force_login(world.a.users["org_admin"])
    assert client.get(f"/studio/catalog/serviceprofile/{home['shared'].pk}/launch/").status_code == 403
    # an operator launches a system profile into an organization: all its workspaces see it
    client.force_login(world.operator)
    hidden = home["hidden"]
    response = client.post(
        f"/studio/catalog/serviceprofile/{hidden.pk}/launch/", {"targets": [str(world.a.org.pk)]}
    )
    assert response.status_code == 302
    assert selectors.catalog_for(ServiceProfile, world.a.project).filter(pk=hidden.pk).exists()
    assert selectors.catalog_for(ServiceProfile, world.b.project).filter(pk=hidden.pk).exists(), "B kept"


def test_launch_publishes_an_unpublished_profile_when_asked(world, client, home):
    admin = world.a.users["org_admin"]
    draft = _service_profile(admin, world.a.project, "draft-nb", home["a_compute"].template_version)
    client.force_login(admin)
    url = f"/studio/catalog/serviceprofile/{draft.pk}/launch/"
    response = client.post(url, {"targets": [str(world.a.spare_project.pk)], "publish": "on"})
    assert response.status_code == 302
    assert selectors.catalog_for(ServiceProfile, world.a.spare_project).filter(pk=draft.pk).exists()


def test_the_developer_hub_in_the_api(world, api, home):
    body = api.as_user(world.a.users["org_admin"]).get("/api/v1/developer-hub/").json()
    assert body["instances_running"] == 1 and body["services_running"] == 1
    assert {w["org"] for w in body["workspaces"]} == {world.a.org.name}
    team = next(w for w in body["workspaces"] if w["id"] == world.a.project.pk)
    assert team["instances_running"] == 1 and team["services_running"] == 1 and team["profiles_in_use"] == 2
    assert api.as_user(world.operator).get("/api/v1/developer-hub/").json()["instances_running"] == 0
    grant_support(operator=world.operator, org=world.b.org, level="admin")
    assert api.as_user(world.operator).get("/api/v1/developer-hub/").json()["instances_running"] == 1
    for who in ("paas_admin_org", "paas_admin_project", "workspace_admin", "collaborator_ro"):
        response = api.as_user(user_for(world, who)).get("/api/v1/developer-hub/")
        assert response.status_code == 403, who
    assert b"/api/v1/developer-hub/" in api.as_user(world.operator).get("/api/schema/").content
