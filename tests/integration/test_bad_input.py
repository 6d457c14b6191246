"""Bad input is never a 500: each case gets a clear error (API, studio, portal, services), a run that
meets an unexpected error fails with its reason, and secret-typed inputs are encrypted and never shown."""

import json

import pytest
from django.contrib import admin
from django.db import connection
from django.urls import NoReverseMatch, reverse

from catalog import secret_inputs, templating
from catalog import services as catalog_services
from catalog.models import ComputeProfile
from instances import deployer
from instances.models import ComputeInstance, Run
from instances.states import State
from inventory import kube
from paas.errors import Conflict, ValidationFailed
from paas.models import AuditEvent
from paas.secrets import MASK
from tenancy import services as tenancy_services
from tenancy.models import Project
from tests.factories import ONE_A100, make_profile, make_synced_cluster
from tests.support.instances import launch
from tests.support.support import grant_support

DEEP = 5000  # far past Python's recursion limit
CONFIG_MAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ instance.name }}-info\ndata:\n  a: b\n"


# --- deeply nested YAML and JSON -------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "[" * DEEP,
        "{a: " * DEEP,
        "a:\n" + "".join("  " * i + "b:\n" for i in range(1, 400)),
    ],
    ids=["flow-sequences", "flow-mappings", "block-mappings"],
)
def test_deeply_nested_manifests_are_a_template_error(text):
    with pytest.raises(templating.TemplateError) as caught:
        templating.parse(text)
    assert "nested more than 100 levels deep" in json.dumps(caught.value.errors)


@pytest.mark.parametrize(
    "source",
    ["{{ " + "(" * DEEP + "1" + ")" * DEEP + " }}", "{% if x %}" * 2000 + "{% endif %}" * 2000],
    ids=["expression", "blocks"],
)
def test_deeply_nested_jinja_is_a_template_error(source):
    with pytest.raises(templating.TemplateError) as caught:
        templating.check_version(manifests=source, inputs=[], outputs=[], actions=[], custom_resources=[])
    assert caught.value.errors == {
        "manifests": ["the template is nested too deeply (brackets, expressions or blocks)"]
    }


def test_nesting_within_the_limit_still_parses():
    nested = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {}\nextra: " + "[" * 90 + "]" * 90
    value, depth = templating.parse(nested)[0]["extra"], 1
    while value:
        value, depth = value[0], depth + 1
    assert depth == 90


def test_deeply_nested_template_refused_at_publish_with_the_line(world, api):
    admin = world.a.users["org_admin"]
    template = catalog_services.template_create(actor=admin, project=world.a.project, name="deep")
    version = catalog_services.template_version_create(
        actor=admin, template=template, version="v1", manifests="x: " + "[" * DEEP
    )
    response = api.as_user(admin).post(f"/api/v1/template-versions/{version.pk}/publish/", format="json")
    assert response.status_code == 400, response.content
    assert "nested more than 100 levels deep" in response.content.decode()


@pytest.mark.parametrize("text", ["[" * DEEP, "a: " + "{b: " * DEEP, "&a [*a]"])
def test_crafted_kubeconfig_is_invalid_not_a_crash(text):
    with pytest.raises(kube.KubeconfigInvalid):
        kube.parse_kubeconfig(text)


def test_oversized_kubeconfig_is_refused():
    with pytest.raises(kube.KubeconfigInvalid, match="larger than"):
        kube.parse_kubeconfig("# " + "x" * (kube.MAX_KUBECONFIG_CHARS + 1))


def test_deeply_nested_kubeconfig_at_registration_is_a_field_error(world, api):
    response = api.as_user(world.operator).post(
        "/api/v1/clusters/", {"name": "deep", "kubeconfig": "a: " + "[" * DEEP}, format="json"
    )
    assert response.status_code == 400, response.content
    assert "kubeconfig" in response.json()["error"].get("fields", {}), response.content


def test_deeply_nested_json_body_is_a_400(world, api):
    body = '{"name": "x", "labels": ' + "[" * DEEP + "]" * DEEP + "}"
    response = api.as_user(world.a.users["org_admin"]).generic(
        "POST", "/api/v1/projects/", body, content_type="application/json"
    )
    assert response.status_code == 400, response.content
    assert "nested more than 100 levels" in response.json()["error"]["message"]
    moderately = '{"name": "x", "labels": ' + "[" * 150 + "]" * 150 + "}"
    response = api.as_user(world.a.users["org_admin"]).generic(
        "POST", "/api/v1/projects/", moderately, content_type="application/json"
    )
    assert response.status_code == 400 and "nested" in response.json()["error"]["message"]


def test_deeply_nested_json_in_a_studio_form_is_a_form_error(world, client):
    client.force_login(world.a.users["org_admin"])
    response = client.post(
        "/studio/catalog/computeprofile/add/",
        {"project": world.a.project.pk, "name": "deep", "labels": "[" * DEEP, "input_values": "{}"},
    )
    assert response.status_code == 200
    assert "nested more than 100 levels deep" in response.content.decode()


# --- non-ASCII digits ------------------------------------------------------------------------------
@pytest.mark.parametrize("digits", ["٣", "\uff13", "²", "1٣", "٣.5"])
def test_non_ascii_digits_are_not_a_number_input(digits):
    declared = [{"name": "replicas", "type": "number", "required": True}]
    with pytest.raises(templating.TemplateError) as caught:
        templating.resolve_inputs(declared, {"replicas": digits})
    assert caught.value.errors == {"replicas": ["must be a number"]}
    assert templating.resolve_inputs(declared, {"replicas": " 3 "}) == {"replicas": 3}


@pytest.mark.parametrize("count", ["²", "٣", "\uff13", "-1", "1e3"])
def test_studio_quota_gpu_model_counts_take_ascii_digits_only(world, client, count):
    client.force_login(world.operator)
    quota = world.a.org.quota
    response = client.post(
        f"/studio/tenancy/quota/{quota.pk}/change/", {"gpu_model_limits": f"A100 = {count}"}
    )
    assert response.status_code == 200, "the form is shown again with its error"
    assert "write &#x27;GPU model = count&#x27;" in response.content.decode()


@pytest.mark.parametrize("step", ["²", "٣", "3" * 30, "-1", ""])
def test_portal_launch_step_with_odd_digits_is_not_a_500(world, client, step):
    client.force_login(world.a.users["workspace_admin"])
    response = client.post(f"/w/{world.a.project.pk}/instances/new/", {"step": step, "name": "dev"})
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("query", "status"),
    [("page=٣", 404), ("page=²", 404), ("page_size=٣", 400), ("page_size=²", 400), ("page_size=\uff13", 400)],
)
def test_api_page_parameters_take_ascii_digits_only(world, api, query, status):
    client = api.as_user(world.a.users["org_admin"])
    for path in ("/api/v1/projects/", "/api/v1/audit-events/"):
        response = client.get(f"{path}?{query}")
        assert response.status_code == status, (path, query, response.content)
    catalog = client.get(f"/api/v1/projects/{world.a.project.pk}/catalog/compute-profiles/?{query}")
    assert catalog.status_code == 400 and catalog.json()["error"]["fields"], catalog.content


@pytest.mark.parametrize("offset", ["%2B17:40", "-23:59"])
def test_audit_time_filters_with_offsets_postgresql_refuses(world, api, offset):
    client = api.as_user(world.a.users["org_admin"])
    since, until = f"2026-01-01T00:00:00{offset}", "9999-12-31T23:00:00"
    response = client.get(f"/api/v1/audit-events/?since={since}&until={until}")
    assert response.status_code == 200, response.content
    far = client.get(f"/api/v1/audit-events/?until=0001-01-01T00:00:00{offset.replace('-', '%2B')}")
    assert far.status_code in (200, 400), far.content


# --- absurd page numbers and page sizes ------------------------------------------------------------
ABSURD_PAGES = [
    "page=99999999999999999999",
    "page=-1",
    "page=0",
    "page=abc",
    "page=1e3",
    "page_size=abc",
    "page_size=-5",
    "page_size=99999999999999999999",
    "page=9223372036854775807&page_size=500",
]


def test_page_size_garbage_is_a_field_error(world, api):
    response = api.as_user(world.a.users["org_admin"]).get("/api/v1/projects/?page_size=abc")
    assert response.status_code == 400 and "page_size" in response.json()["error"]["fields"]


@pytest.mark.parametrize("query", ABSURD_PAGES)
def test_absurd_pages_are_a_clear_answer(world, api, query):
    client = api.as_user(world.a.users["org_admin"])
    for path in (
        "/api/v1/projects/",
        "/api/v1/audit-events/",
        "/api/v1/instances/",
        f"/api/v1/projects/{world.a.project.pk}/catalog/compute-profiles/",
        f"/api/v1/projects/{world.a.project.pk}/catalog/service-profiles/",
    ):
        response = client.get(f"{path}?{query}")
        assert response.status_code in (200, 400, 404), (path, query, response.content)
        if response.status_code != 200:
            assert response.json()["error"]["message"], (path, query)


# --- studio filters, ordering and pages ------------------------------------------------------------
def _changelists():
    for model, model_admin in admin.site._registry.items():
        try:
            url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        except NoReverseMatch:
            continue
        yield pytest.param(model, model_admin, url, id=f"{model._meta.app_label}.{model._meta.model_name}")


def _garbage_queries(model, model_admin) -> list[str]:
    queries = ["o=abc", "o=-1.x.2", "p=abc", "p=-1", "p=99999999999999999999", "q=%00", "e=1", "_to_field=x"]
    filters = [f for f in model_admin.list_filter if isinstance(f, str)]
    for name in filters:
        for value in ("abc", "%00", "99999999999999999999", "٣", "2026-13-45"):
            queries += [f"{name}__exact={value}", f"{name}__id__exact={value}"]
    if model_admin.date_hierarchy:
        field = model_admin.date_hierarchy
        queries += [f"{field}__year=abc", f"{field}__year=99999", f"{field}__month=13&{field}__year=2026"]
    return queries


@pytest.mark.parametrize(("model", "model_admin", "url"), list(_changelists()))
def test_studio_changelists_answer_garbage_filters_without_a_500(world, client, model, model_admin, url):
    # The operator sees every studio page; with an administrative support access, org A's rows too.
    grant_support(operator=world.operator, org=world.a.org, level="admin")
    client.force_login(world.operator)
    client.raise_request_exception = False  # list every failing query, not the first
    failed = []
    for query in _garbage_queries(model, model_admin):
        response = client.get(f"{url}?{query}")
        if response.status_code >= 500:
            failed.append(query)
    assert not failed, (url, failed)


# --- deleting a workspace that still has instances -------------------------------------------------
@pytest.fixture
def launched(world):
    admin = world.a.users["org_admin"]
    profile = make_profile(
        actor=admin,
        project=world.a.project,
        manifests=CONFIG_MAP,
        name="one-gpu",
        template="ns",
        resource_groups=ONE_A100,
    )
    make_synced_cluster(name="bad-input-c")
    instance = launch(world, profile, "busy")
    return instance


def test_project_with_instances_is_not_deleted_service(world, launched):
    with pytest.raises(Conflict) as caught:
        tenancy_services.project_delete(actor=world.a.users["org_admin"], project=world.a.project)
    assert "still has 1 instance (busy)" in caught.value.message
    assert Project.objects.filter(pk=world.a.project.pk).exists()
    assert not AuditEvent.objects.filter(action="project.delete").exists()


def test_project_with_instances_is_not_deleted_api(world, api, launched):
    response = api.as_user(world.a.users["org_admin"]).delete(f"/api/v1/projects/{world.a.project.pk}/")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "project_not_empty"
    assert "busy" in response.json()["error"]["message"]


def test_project_with_instances_is_not_deleted_studio(world, client, launched):
    client.force_login(world.a.users["org_admin"])
    url = f"/studio/tenancy/project/{world.a.project.pk}/delete/"
    response = client.post(url, {"post": "yes"}, follow=True)
    assert response.status_code == 200
    assert "still has 1 instance (busy)" in response.content.decode()
    assert Project.objects.filter(pk=world.a.project.pk).exists()
    response = client.post(
        "/studio/tenancy/project/",
        {"action": "delete_selected", "_selected_action": [world.a.project.pk], "post": "yes"},
        follow=True,
    )
    assert response.status_code == 200 and "still has 1 instance (busy)" in response.content.decode()
    assert Project.objects.filter(pk=world.a.project.pk).exists()


def test_studio_deletes_a_workspace_with_profiles_and_deleted_instances(world, client, launched):
    ComputeInstance.objects.filter(pk=launched.pk).update(state=State.DELETED)
    client.force_login(world.a.users["org_admin"])
    url = f"/studio/tenancy/project/{world.a.project.pk}/delete/"
    assert "Cannot delete" not in client.get(url).content.decode()
    client.post(url, {"post": "yes"}, follow=True)
    assert not Project.objects.filter(pk=world.a.project.pk).exists()


def test_project_whose_instances_are_deleted_can_be_deleted(world, launched):
    ComputeInstance.objects.filter(pk=launched.pk).update(state=State.DELETED)
    tenancy_services.project_delete(actor=world.a.users["org_admin"], project=world.a.project)
    assert not Project.objects.filter(pk=world.a.project.pk).exists()
    assert not ComputeInstance.objects.filter(pk=launched.pk).exists()


# --- a run that meets an unexpected error fails with its reason ------------------------------------
def test_unexpected_error_fails_the_run_with_its_reason(world, launched):
    run = launched.runs.get()
    snapshot = dict(launched.snapshot)
    snapshot["template"] = {**snapshot["template"], "inputs": None}  # not a list: a TypeError deep inside
    ComputeInstance.objects.filter(pk=launched.pk).update(snapshot=snapshot)
    assert deployer.execute(run.pk) == State.FAILED
    run.refresh_from_db()
    launched.refresh_from_db()
    assert run.outcome == Run.Outcome.FAILED and run.finished_at
    assert run.message.startswith("Unexpected error (TypeError")
    assert launched.state == State.FAILED and launched.state_reason == run.message
    assert any("Unexpected error (TypeError" in step["message"] for step in run.log)
    event = AuditEvent.objects.filter(action="instance.failed").latest("pk")
    assert event.details["reason"] == run.message and event.details["run"] == run.pk
    assert not deployer.stale_runs().filter(pk=run.pk).exists(), "the reconcile does not re-drive it"
    assert deployer.execute(run.pk) == "finished already"


def test_run_whose_worker_keeps_dying_is_given_up(world, launched):
    run = launched.runs.get()
    Run.objects.filter(pk=run.pk).update(outcome=Run.Outcome.QUEUED, attempt=deployer.MAX_ATTEMPTS)
    assert deployer.execute(run.pk) == State.FAILED
    run.refresh_from_db()
    assert run.outcome == Run.Outcome.FAILED and "worker stopped" in run.message


# --- secret-typed inputs ---------------------------------------------------------------------------
SECRET_MANIFESTS = (
    "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {{ instance.name }}-db\n"
    "stringData:\n  password: {{ inputs.password }}\n"
)
CLEAR = "hunter2-not-for-your-eyes"


@pytest.fixture
def secret_profile(world):
    admin = world.a.users["org_admin"]
    template = catalog_services.template_create(actor=admin, project=world.a.project, name="db")
    version = catalog_services.template_version_create(
        actor=admin,
        template=template,
        version="v1",
        manifests=SECRET_MANIFESTS,
        inputs=[{"name": "password", "type": "secret", "required": True}, {"name": "note", "type": "text"}],
    )
    version = catalog_services.template_version_publish(actor=admin, version=version)
    return catalog_services.profile_create(
        actor=admin,
        model=ComputeProfile,
        project=world.a.project,
        name="db",
        template_version=version,
        published=True,
        resource_groups=ONE_A100,
        input_values={"password": CLEAR, "note": "plain"},
    )


def _stored_text(table: str, pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT row_to_json(t)::text FROM {table} t WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def test_secret_inputs_are_encrypted_at_rest_and_never_shown(world, api, client, secret_profile):
    admin = world.a.users["org_admin"]
    assert CLEAR not in _stored_text("catalog_computeprofile", secret_profile.pk)
    assert secret_inputs.is_sealed(secret_profile.input_values["password"])
    assert secret_profile.input_values["note"] == "plain"

    response = api.as_user(admin).get(f"/api/v1/compute-profiles/{secret_profile.pk}/")
    assert response.status_code == 200
    assert response.json()["input_values"] == {"password": MASK, "note": "plain"}
    assert CLEAR not in response.content.decode()

    client.force_login(admin)
    page = client.get(f"/studio/catalog/computeprofile/{secret_profile.pk}/change/").content.decode()
    assert CLEAR not in page and MASK in page
    assert secret_profile.input_values["password"]["encrypted"] not in page

    for event in AuditEvent.objects.all():
        assert CLEAR not in json.dumps(event.details)

    make_synced_cluster(name="secret-c")
    instance = launch(world, secret_profile, "db1")
    assert CLEAR not in _stored_text("instances_computeinstance", instance.pk)
    detail = api.as_user(admin).get(f"/api/v1/instances/{instance.pk}/").content.decode()
    assert CLEAR not in detail
    portal = client.get(f"/workspaces/{world.a.project.pk}/instances/{instance.pk}/").content.decode()
    assert CLEAR not in portal
    # The deployer (and only the deployer) gets the clear value.
    context = deployer._context(instance, "ns")
    assert context["inputs"]["password"] == CLEAR
    objects, _ = deployer.render(instance, "ns")
    assert objects[0]["stringData"]["password"] == CLEAR
    assert CLEAR not in json.dumps(Run.objects.get(instance=instance).log)


def test_secret_input_mask_keeps_the_stored_secret(world, api, secret_profile):
    admin = world.a.users["org_admin"]
    sealed = secret_profile.input_values["password"]
    client = api.as_user(admin)
    url = f"/api/v1/compute-profiles/{secret_profile.pk}/"
    response = client.patch(url, {"input_values": {"password": MASK, "note": "changed"}}, format="json")
    assert response.status_code == 200, response.content
    secret_profile.refresh_from_db()
    assert secret_profile.input_values["password"] == sealed
    assert secret_profile.input_values["note"] == "changed"
    response = client.patch(url, {"input_values": {"password": "new-secret"}}, format="json")
    assert response.status_code == 200
    secret_profile.refresh_from_db()
    assert secret_inputs.unseal(secret_profile.input_values)["password"] == "new-secret"
    # A ciphertext is not a way in: one that is not the profile's own is refused.
    forged = secret_inputs.seal([{"name": "p", "type": "secret"}], {"p": "x"}, org_id=None)["p"]
    response = client.patch(url, {"input_values": {"password": forged}}, format="json")
    assert response.status_code == 400 and "encrypted value cannot be given" in response.content.decode()


def test_secret_input_mask_without_a_stored_secret_is_refused(world, secret_profile):
    with pytest.raises(ValidationFailed):
        catalog_services.profile_create(
            actor=world.a.users["org_admin"],
            model=ComputeProfile,
            project=world.a.project,
            name="db2",
            template_version=secret_profile.template_version,
            resource_groups=ONE_A100,
            input_values={"password": MASK},
        )
