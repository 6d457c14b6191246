"""The profile catalog: templates and publishing, profiles, sharing, inheritance, clone, the system
catalog, and the catalog a project sees, through services, the API and the studio."""

import pytest

from catalog import selectors, services
from catalog.models import ComputeProfile, EnvironmentTemplate, ServiceProfile, SystemSharing
from paas.errors import Forbidden, ValidationFailed
from tenancy.roles import Role
from tests.support.support import grant_support

MANIFESTS = """apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ instance.name }}-info
data:
  greeting: "{{ inputs.greeting }}"
  gpus: "{{ profile.resource_groups[0].gpu_count }}"
"""
INPUTS = [
    {"name": "greeting", "type": "text", "required": False, "default": "hello", "description": "A word."},
    {
        "name": "size",
        "type": "select",
        "required": True,
        "default": None,
        "options": ["s", "m"],
        "description": "Size.",
    },
]
OUTPUTS = [
    {
        "name": "info",
        "description": "The ConfigMap.",
        "source": {"type": "template", "value": "{{ instance.name }}-info"},
    }
]
GROUP = [
    {"gpu_model": "A100-SXM4-40GB", "gpu_count": 1, "cpu_cores": "26", "memory_gib": 200, "storage_gib": 100}
]


def _template(actor, project, name="tpl"):
    template = services.template_create(actor=actor, project=project, name=name)
    version = services.template_version_create(
        actor=actor, template=template, version="v1", manifests=MANIFESTS, inputs=INPUTS, outputs=OUTPUTS
    )
    return template, services.template_version_publish(actor=actor, version=version)


@pytest.fixture
def cat(world):
    """Org A's team project has a PaaS admin with a template and a compute and a service profile."""
    admin = world.a.users["paas_admin_project"]
    template, version = _template(admin, world.a.project)
    compute = services.profile_create(
        actor=admin,
        model=ComputeProfile,
        project=world.a.project,
        name="small",
        template_version=version,
        resource_groups=GROUP,
        published=True,
        cost_amount="2.40",
    )
    service = services.profile_create(
        actor=admin,
        model=ServiceProfile,
        project=world.a.project,
        name="notebook",
        service_type="notebook",
        template_version=version,
        published=True,
        input_settings={"size": {"default": None, "required": True, "exposed": True, "overridable": True}},
        readme="# Hello\n<script>alert(1)</script>[x](javascript:alert(1))",
    )
    return {"template": template, "version": version, "compute": compute, "service": service, "admin": admin}


def test_publishing_refuses_bad_templates(world):
    op = world.operator
    template = services.template_create(actor=op, project=None, name="bad")
    cases = {
        "syntax": ("{% if %}", "manifests"),
        "undefined": ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ nope }}\n", "manifests"),
        "invalid object": (
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\nspec:\n  replicas: three\n",
            "manifests",
        ),
        "cluster-scoped": (
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n"
            "  name: x\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "
            "cluster-admin}\nsubjects: []\n",
            "manifests",
        ),
        "sandbox escape": (
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n"
            "  a: \"{{ ''.__class__.__mro__ }}\"\n",
            "manifests",
        ),
    }
    for index, (case, (manifests, field)) in enumerate(cases.items()):
        version = services.template_version_create(
            actor=op, template=template, version=f"v{index}", manifests=manifests
        )
        with pytest.raises(ValidationFailed) as refused:
            services.template_version_publish(actor=op, version=version)
        assert field in refused.value.fields, (case, refused.value.fields)
        version.refresh_from_db()
        assert version.state == "draft", case


def test_published_version_is_immutable(cat, api):
    client = api.as_user(cat["admin"])
    response = client.patch(
        f"/api/v1/template-versions/{cat['version'].pk}/", {"manifests": "x"}, format="json"
    )
    assert response.status_code == 409 and "immutable" in response.json()["error"]["message"]


def test_unique_name_cannot_change(cat, api, client):
    api_client = api.as_user(cat["admin"])
    response = api_client.patch(
        f"/api/v1/compute-profiles/{cat['compute'].pk}/", {"name": "other"}, format="json"
    )
    assert response.status_code == 400 and "name" in response.json()["error"]["fields"]
    ok = api_client.patch(
        f"/api/v1/compute-profiles/{cat['compute'].pk}/", {"display_name": "Small!"}, format="json"
    )
    assert ok.status_code == 200 and ok.json()["name"] == "small"


def test_inherited_profiles_are_read_only(cat, world, api):
    spare_admin = world.a.users["collaborator_ro"]
    services_role = __import__("tenancy.services", fromlist=["role_assign"])
    services_role.role_assign(
        actor=world.a.users["org_admin"],
        user=spare_admin,
        role=Role.PAAS_ADMIN,
        project=world.a.spare_project,
    )
    services.item_share(actor=cat["admin"], item=cat["compute"], sharing="all")
    client = api.as_user(spare_admin)
    listed = {p["name"]: p for p in client.get("/api/v1/compute-profiles/").json()["results"]}
    assert listed["small"]["allowed_actions"] == []
    pk = cat["compute"].pk
    assert (
        client.patch(f"/api/v1/compute-profiles/{pk}/", {"display_name": "x"}, format="json").status_code
        == 403
    )
    assert client.delete(f"/api/v1/compute-profiles/{pk}/").status_code == 403
    assert (
        client.post(f"/api/v1/compute-profiles/{pk}/share/", {"sharing": "none"}, format="json").status_code
        == 403
    )
    clone = client.post(
        f"/api/v1/compute-profiles/{pk}/clone/",
        {"target_project": world.a.spare_project.pk, "name": "mine"},
        format="json",
    )
    assert clone.status_code == 403 and "inherited" in clone.json()["error"]["message"]
    catalog = client.get(f"/api/v1/projects/{world.a.spare_project.pk}/catalog/compute-profiles/").json()
    assert "small" in {p["name"] for p in catalog["results"]}


def test_system_profiles_are_edited_as_a_tenant_copy(cat, world, api):
    op = world.operator
    _, version = _template(op, None, name="sys")
    services.item_share(actor=op, item=version.template, sharing=SystemSharing.ALL)
    system = services.profile_create(
        actor=op,
        model=ComputeProfile,
        project=None,
        name="sys-small",
        template_version=version,
        resource_groups=GROUP,
        published=True,
    )
    services.item_share(actor=op, item=system, sharing=SystemSharing.ALL)
    org_admin = world.a.users["org_admin"]
    assert selectors.allowed_actions(org_admin, system) == {"edit"}
    for action in ("share", "clone", "delete"):
        with pytest.raises(Forbidden):
            if action == "share":
                services.item_share(actor=org_admin, item=system, sharing="none")
            elif action == "clone":
                services.profile_clone(
                    actor=org_admin, profile=system, target_project=world.a.project, name="c"
                )
            else:
                services.profile_delete(actor=org_admin, profile=system)
    copy = services.profile_update(actor=org_admin, profile=system, display_name="Acme Small")
    assert copy.pk != system.pk and copy.origin_id == system.pk and copy.org_id == world.a.org.pk
    system.refresh_from_db()
    assert system.display_name == "sys-small"  # the original is untouched
    names_a = {p.display_name for p in selectors.catalog_for(ComputeProfile, world.a.project)}
    names_b = {p.display_name for p in selectors.catalog_for(ComputeProfile, world.b.project)}
    assert "Acme Small" in names_a and "sys-small" not in names_a
    assert "sys-small" in names_b and "Acme Small" not in names_b
    # A second edit changes the same copy.
    again = services.profile_update(actor=org_admin, profile=system, description="ours")
    assert again.pk == copy.pk


def test_clone_needs_the_template_shared_with_the_target(cat, world):
    admin = world.a.users["org_admin"]
    with pytest.raises(ValidationFailed) as refused:
        services.profile_clone(
            actor=admin, profile=cat["compute"], target_project=world.a.spare_project, name="small-copy"
        )
    message = refused.value.fields["template_version"][0]
    assert "'tpl'" in message and "orga/spare" in message
    services.item_share(
        actor=cat["admin"], item=cat["template"], sharing="selected", projects=[world.a.spare_project]
    )
    clone = services.profile_clone(
        actor=admin,
        profile=cat["compute"],
        target_project=world.a.spare_project,
        name="small-copy",
        display_name="Small copy",
    )
    assert clone.project == world.a.spare_project and clone.resource_groups.count() == 1
    assert (clone.display_name, clone.description) == ("Small copy", cat["compute"].description)
    within = services.profile_clone(
        actor=admin, profile=cat["service"], target_project=world.a.project, name="notebook-2"
    )
    assert within.input_settings == cat["service"].input_settings


def test_sharing_never_crosses_orgs(cat, world, api):
    client = api.as_user(cat["admin"])
    response = client.post(
        f"/api/v1/compute-profiles/{cat['compute'].pk}/share/",
        {"sharing": "selected", "projects": [world.b.project.pk]},
        format="json",
    )
    assert response.status_code == 400  # B's project does not exist for A's admin
    # Nor can an operator acting as both orgs' admin (administrative support accesses) cross them.
    grant_support(operator=world.operator, org=world.a.org, level="admin")
    grant_support(operator=world.operator, org=world.b.org, level="admin")
    with pytest.raises(ValidationFailed, match="never crosses"):
        services.item_share(
            actor=world.operator, item=cat["compute"], sharing="selected", projects=[world.b.project]
        )
    assert not selectors.catalog_for(ComputeProfile, world.b.project).filter(pk=cat["compute"].pk).exists()


def test_catalog_a_project_sees(cat, world):
    admin = cat["admin"]
    hidden = services.profile_create(
        actor=admin,
        model=ComputeProfile,
        project=world.a.project,
        name="draft",
        template_version=cat["version"],
        resource_groups=GROUP,
        published=False,
    )
    team = set(selectors.catalog_for(ComputeProfile, world.a.project).values_list("name", flat=True))
    assert "small" in team and hidden.name not in team
    assert "small" not in set(
        selectors.catalog_for(ComputeProfile, world.a.spare_project).values_list("name", flat=True)
    )
    services.item_share(
        actor=admin, item=cat["compute"], sharing="selected", projects=[world.a.spare_project]
    )
    assert selectors.catalog_for(ComputeProfile, world.a.spare_project).filter(name="small").exists()
    services.profile_delete(actor=admin, profile=cat["compute"])  # gone from every catalog at once
    assert not ComputeProfile.objects.filter(name="small").exists()
    assert not selectors.catalog_for(ComputeProfile, world.a.spare_project).filter(name="small").exists()


def test_end_users_read_their_projects_catalog_only(cat, world, api):
    user = world.a.users["collaborator_ro"]
    ok = api.as_user(user).get(f"/api/v1/projects/{world.a.project.pk}/catalog/service-profiles/")
    assert ok.status_code == 200
    [item] = [p for p in ok.json()["results"] if p["name"] == "notebook"]
    assert "<script>" not in item["readme_html"] and "javascript:" not in item["readme_html"]
    assert "<h3>Hello</h3>" in item["readme_html"]  # under the page's own title
    assert (
        api.as_user(world.b.users["org_admin"])
        .get(f"/api/v1/projects/{world.a.project.pk}/catalog/compute-profiles/")
        .status_code
        == 404
    )
    assert api.as_user(user).get("/api/v1/compute-profiles/").json()["count"] == 0  # no admin view


def test_service_profile_settings_are_validated(cat, world, api):
    client = api.as_user(cat["admin"])
    body = {
        "project": world.a.project.pk,
        "name": "nb2",
        "service_type": "notebook",
        "template_version": cat["version"].pk,
        "input_settings": {"nope": {"default": 1}, "size": {"required": True, "exposed": False}},
        "output_settings": {"missing": {"shown": True}},
        "action_settings": {"stop": {}},
        "labels": {"ALLOW_DAY2_OPERATIONS": "true", "bad key!": "x"},
    }
    response = client.post("/api/v1/service-profiles/", body, format="json")
    assert response.status_code == 400
    assert "labels" in response.json()["error"]["fields"]
    body["labels"] = {"ALLOW_DAY2_OPERATIONS": "true"}
    fields = client.post("/api/v1/service-profiles/", body, format="json").json()["error"]["fields"]
    text = str(fields)
    assert "nope: not an input" in text and "size: required without a default" in text
    assert "missing: not an output" in text and "stop: not an action" in text


def test_compute_profile_validation(cat, world, api):
    client = api.as_user(cat["admin"])
    body = {
        "project": world.a.project.pk,
        "name": "bad",
        "template_version": cat["version"].pk,
        "resource_groups": [{"gpu_count": 8, "cpu_cores": "0", "memory_gib": 0, "storage_gib": 0}],
        "allocation_strategy": "warm_pool",
        "warm_pool_size": 0,
        "cost_currency": "usd",
    }
    fields = client.post("/api/v1/compute-profiles/", body, format="json").json()["error"]["fields"]
    assert {"warm_pool_size", "cost_currency"} <= set(fields)
    body.update(allocation_strategy="on_demand", cost_currency="USD")
    groups = client.post("/api/v1/compute-profiles/", body, format="json").json()["error"]["fields"]
    assert "resource_groups" in groups
    hetero = body | {
        "resource_groups": [GROUP[0], GROUP[0] | {"gpu_model": "NVIDIA-H100-80GB-HBM3", "gpu_count": 8}],
        "name": "hetero",
    }
    made = client.post("/api/v1/compute-profiles/", hetero, format="json")
    assert made.status_code == 201 and len(made.json()["resource_groups"]) == 2


def test_paas_admin_sees_only_the_catalog_in_the_studio(cat, world, client):
    client.force_login(world.a.users["paas_admin_org"])
    page = client.get("/studio/").content.decode()
    assert "/studio/catalog/computeprofile/" in page and "/studio/catalog/serviceprofile/" in page
    for other in ("/studio/tenancy/", "/studio/inventory/", "/studio/paas/auditevent/"):
        assert other not in page
    assert client.get("/studio/tenancy/roleassignment/").status_code == 403
    listing = client.get("/studio/catalog/computeprofile/").content.decode()
    assert "small" in listing and "Clone" in listing and "Manage sharing" in listing


def test_studio_catalog_admins_keep_no_request_of_their_own(cat, world, client):
    """A ModelAdmin serves every request of a threaded server: the actions column learns the user from
    its own change list, and the registered admin keeps no request or user between requests."""
    from django.contrib import admin
    from django.http import HttpRequest

    from tenancy.models import User

    client.force_login(world.a.users["org_admin"])
    for model in (EnvironmentTemplate, ComputeProfile, ServiceProfile):
        page = client.get(f"/studio/catalog/{model._meta.model_name}/")
        assert page.status_code == 200 and "Manage sharing" in page.content.decode()
        kept = vars(admin.site._registry[model]).values()
        assert not any(isinstance(value, HttpRequest | User) for value in kept)


def test_studio_clone_and_share_pages(cat, world, client):
    client.force_login(world.a.users["org_admin"])  # manages the catalog of every project of the org
    pk = cat["compute"].pk
    page = client.post(
        f"/studio/catalog/computeprofile/{pk}/clone/",
        {"name": "small-2", "target_project": world.a.spare_project.pk},
    )
    assert page.status_code == 200 and "is not shared with orga/spare" in page.content.decode()
    done = client.post(
        f"/studio/catalog/computeprofile/{pk}/clone/",
        {"name": "small-2", "target_project": world.a.project.pk, "display_name": "Small 2"},
    )
    assert done.status_code == 302 and ComputeProfile.objects.filter(name="small-2").exists()
    shared = client.post(f"/studio/catalog/computeprofile/{pk}/share/", {"sharing": "all"})
    assert shared.status_code == 302
    cat["compute"].refresh_from_db()
    assert cat["compute"].sharing == "all"


def test_studio_creates_a_compute_profile_with_resource_groups(cat, world, client):
    client.force_login(cat["admin"])
    form = {
        "project": world.a.project.pk,
        "name": "studio-made",
        "display_name": "Studio made",
        "description": "",
        "template_version": cat["version"].pk,
        "flavor": "namespace",
        "allocation_strategy": "on_demand",
        "warm_pool_size": 0,
        "cost_currency": "USD",
        "cost_amount": "1.5",
        "cost_period": "hour",
        "input_values": "{}",
        "labels": "{}",
        "annotations": "{}",
        "icon_url": "",
        "readme": "",
        "published": "on",
        "resource_groups-TOTAL_FORMS": "2",
        "resource_groups-INITIAL_FORMS": "0",
        "resource_groups-MIN_NUM_FORMS": "1",
        "resource_groups-MAX_NUM_FORMS": "1000",
        "resource_groups-0-gpu_model": "A100-SXM4-40GB",
        "resource_groups-0-gpu_count": "8",
        "resource_groups-0-mig_profile": "",
        "resource_groups-0-mig_count": "0",
        "resource_groups-0-cpu_cores": "208",
        "resource_groups-0-memory_gib": "1600",
        "resource_groups-0-storage_gib": "800",
        "resource_groups-1-gpu_model": "NVIDIA-H100-80GB-HBM3",
        "resource_groups-1-gpu_count": "8",
        "resource_groups-1-mig_profile": "",
        "resource_groups-1-mig_count": "0",
        "resource_groups-1-cpu_cores": "124",
        "resource_groups-1-memory_gib": "1024",
        "resource_groups-1-storage_gib": "1024",
    }
    response = client.post("/studio/catalog/computeprofile/add/", form)
    assert response.status_code == 302, response.content.decode()[:3000]
    profile = ComputeProfile.objects.get(name="studio-made")
    assert [g.gpu_count for g in profile.resource_groups.all()] == [8, 8]
    assert EnvironmentTemplate.objects.count() >= 1


def test_the_system_catalog_loads_publishes_and_is_seen_by_every_org(world, api):
    from catalog import system

    report = system.load(actor=world.operator)
    assert any(line.startswith("  published") for line in report)
    assert system.load(actor=world.operator) == []  # idempotent
    compute = {p.name: p for p in selectors.catalog_for(ComputeProfile, world.b.project)}
    assert {"small", "medium", "large", "mig-small", "cpu-only"} <= set(compute)
    small, medium, large = compute["small"], compute["medium"], compute["large"]

    def totals(profile):
        groups = list(profile.resource_groups.all())
        return (
            sum(g.gpu_count for g in groups),
            sum(g.cpu_cores for g in groups),
            sum(g.storage_gib for g in groups),
        )

    assert (
        totals(small) == (1, 26, 100) and totals(medium) == (8, 208, 800) and totals(large) == (32, 832, 3200)
    )
    assert compute["mig-small"].resource_groups.get().mig_count == 1
    assert totals(compute["cpu-only"])[0] == 0
    services_ = {p.name for p in selectors.catalog_for(ServiceProfile, world.a.project)}
    assert {
        "jupyter-notebook",
        "training-job",
        "fine-tuning-job",
        "inference-kserve",
        "ray-cluster",
        "kubernetes-yaml-app",
    } <= services_
    listed = (
        api.as_user(world.a.users["collaborator_ro"])
        .get(f"/api/v1/projects/{world.a.project.pk}/catalog/compute-profiles/?page_size=100")
        .json()
    )
    card = next(p for p in listed["results"] if p["name"] == "medium")
    assert card["resource_groups"][0]["gpu_count"] == 8 and card["cost_currency"] == "USD"


def test_cached_catalog_pages_are_never_stale(cat, world, api):
    client = api.as_user(world.a.users["collaborator_ro"])
    url = f"/api/v1/projects/{world.a.project.pk}/catalog/compute-profiles/"

    def names():
        return {p["name"] for p in client.get(url).json()["results"]}

    assert names() == {"small"} and names() == {"small"}  # the second read is served from the cache
    services.profile_update(actor=cat["admin"], profile=cat["compute"], display_name="Small (renamed)")
    assert client.get(url).json()["results"][0]["display_name"] == "Small (renamed)"
    services.profile_create(
        actor=cat["admin"],
        model=ComputeProfile,
        project=world.a.project,
        name="big",
        template_version=cat["version"],
        resource_groups=GROUP,
        published=True,
    )
    assert names() == {"small", "big"}
    services.profile_delete(actor=cat["admin"], profile=cat["compute"])
    assert names() == {"big"}
