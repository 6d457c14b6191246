"""The developer hub's service pages through Django's test client: "My deployments" lists and their
filters, the service page (live status, URL, run log, controls by role), the compute instance page's
services part and the catalog cards' Launch buttons. Services are rows written directly (no deploy),
except on the new-service page, which launches through the service layer for real (its checks, the
snapshot, the queued deploy run); real deploys are in tests/browser/test_services_browser.py."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from catalog import system
from catalog.models import ComputeProfile, ServiceProfile
from catalog.service_inputs import input_fields
from instances import service_instances
from instances.models import ComputeInstance, Run, ServiceInstance
from tests.factories import ONE_A100, make_profile, make_synced_cluster
from tests.support.instances import launch
from tests.support.roles import user_for

MANIFESTS = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ instance.name }}-info\ndata:\n  a: b\n"


@pytest.fixture
def hub(world):
    """Tenant A's team workspace: the system catalog (its service profiles), a one-GPU size and two
    compute instances, "box" (ready) and "spare" (ready), on a synced (never deployed) cluster."""
    system.load(actor=world.operator)
    size = make_profile(
        actor=world.a.users["org_admin"],
        project=world.a.project,
        manifests=MANIFESTS,
        name="one-gpu",
        template="ns",
        resource_groups=ONE_A100,
    )
    make_synced_cluster(name="portal-svc", nodes=2)
    box = launch(world, size, "box")
    spare = launch(world, size, "spare")
    for i in (box, spare):
        i.state, i.namespace = "ready", f"i-{i.name}"
        i.save(update_fields=["state", "namespace"])
    Run.objects.filter(instance__in=(box, spare)).update(outcome="succeeded")  # as a finished deploy
    return world, box, spare


def service_row(instance, profile_name: str, name: str, *, state: str = "ready", **fields) -> ServiceInstance:
    """A service row as a deploy leaves it (no cluster involved)."""
    profile = ServiceProfile.objects.get(org__isnull=True, name=profile_name)
    return ServiceInstance.objects.create(
        org=instance.org,
        project=instance.project,
        compute_instance=instance,
        name=name,
        owner=instance.owner,
        profile=profile,
        service_type=profile.service_type,
        snapshot={"name": profile.name, "display_name": profile.display_name},
        state=state,
        **fields,
    )


def as_user(client, world, who: str):
    client.logout()
    client.force_login(user_for(world, who))
    return client


def test_navigation_lists_and_filters_per_type(hub, client):
    world, box, spare = hub
    nb = service_row(box, "jupyter-notebook", "nb-one", host="nb-one.box.example.test")
    service_row(spare, "jupyter-notebook", "nb-two", state="provisioning")
    service_row(box, "jupyter-notebook", "nb-gone", state="deleted")
    service_row(box, "training-job", "train")
    c = as_user(client, world, "collaborator_ro")
    landing = c.get(f"/w/{world.a.project.pk}/").content.decode()
    assert "My deployments" in landing
    for slug, label in (
        ("notebooks", "Notebooks"),
        ("jobs", "Jobs"),
        ("inference", "Inference"),
        ("custom", "Custom services"),
    ):
        assert f'href="/w/{world.a.project.pk}/deployments/{slug}/">{label}</a>' in landing

    base = f"/w/{world.a.project.pk}/deployments/notebooks/"
    page = c.get(base).content.decode()
    assert "nb-one" in page and "nb-two" in page and "Jupyter Notebook" in page  # name and profile
    assert "nb-gone" not in page and "train" not in page  # deleted ones and other types are not listed
    assert f'href="/instances/{box.pk}/">box</a>' in page and 'data-state="provisioning"' in page
    assert 'hx-trigger="every 3s"' in page  # nb-two is deploying: the rows refresh themselves
    assert "New notebook" not in page  # read-only: no controls
    only_box = c.get(base, {"instance": box.pk}).content.decode()
    assert "nb-one" in only_box and "nb-two" not in only_box
    ready = c.get(base, {"state": "ready"}).content.decode()
    assert "nb-one" in ready and "nb-two" not in ready and 'hx-trigger="every 3s"' not in ready
    assert "nb-gone" in c.get(base, {"state": "all"}).content.decode()
    assert c.get(base, {"state": "bogus", "instance": "x"}).status_code == 200  # ignored, not a 500
    assert "train" in c.get(f"/w/{world.a.project.pk}/deployments/jobs/").content.decode()
    assert c.get(f"/w/{world.a.project.pk}/deployments/bogus/").status_code == 404
    assert f'href="/services/{nb.pk}/"' in page

    rw = as_user(client, world, "collaborator_rw").get(base).content.decode()
    assert "New notebook" in rw
    other = as_user(client, world, "outsider")
    assert other.get(base).status_code == 404
    assert other.get(f"/services/{nb.pk}/").status_code == 404


def test_service_page_status_url_runs_and_controls_by_role(hub, client):
    world, box, _ = hub
    nb = service_row(box, "jupyter-notebook", "nb", host="nb.box.apps.example.test")
    Run.objects.create(
        instance=box, service=nb, kind="deploy", outcome="succeeded", log=[{"time": "", "message": "applied"}]
    )
    Run.objects.create(
        instance=box, kind="deploy", outcome="succeeded", log=[{"time": "", "message": "box own"}]
    )
    c = as_user(client, world, "collaborator_rw")
    page = c.get(f"/services/{nb.pk}/").content.decode()
    assert "<h1>nb</h1>" in page and 'data-state="ready"' in page
    assert 'href="http://nb.box.apps.example.test"' in page  # the URL is a link
    assert "applied" in page and "box own" not in page  # its own runs only
    assert "hx-get" not in page  # settled: nothing polls
    assert "Delete…" in page  # read-write collaborators manage services

    ro = as_user(client, world, "collaborator_ro")
    ro_page = ro.get(f"/services/{nb.pk}/").content.decode()
    assert 'data-state="ready"' in ro_page and "Delete…" not in ro_page and "Reveal" not in ro_page
    assert 'id="manage"' not in ro_page
    assert ro.get(f"/services/{nb.pk}/delete/").status_code == 403
    assert ro.post(f"/services/{nb.pk}/delete/", {"confirm_name": "nb"}).status_code == 403
    assert ro.post(f"/services/{nb.pk}/actions/stop/").status_code == 403
    assert ro.get(f"/services/{nb.pk}/redeploy/").status_code == 403
    assert ServiceInstance.objects.get(pk=nb.pk).state == "ready"

    ServiceInstance.objects.filter(pk=nb.pk).update(state="provisioning")
    live = c.get(f"/services/{nb.pk}/").content.decode()
    assert f'hx-get="/services/{nb.pk}/status/"' in live  # polls its status fragment while deploying
    fragment = c.get(f"/services/{nb.pk}/status/")
    assert fragment["Cache-Control"] == "no-store" and b'id="service-status"' in fragment.content
    assert b"<html" not in fragment.content


def test_instance_page_lists_its_services_and_deploy_links(hub, client):
    world, box, _ = hub
    nb = service_row(box, "jupyter-notebook", "nb")
    Run.objects.create(
        instance=box,
        service=nb,
        kind="deploy",
        outcome="succeeded",
        log=[{"time": "", "message": "svc step"}],
    )
    c = as_user(client, world, "collaborator_rw")
    page = c.get(f"/instances/{box.pk}/").content.decode()
    assert "Services on this instance" in page and f'href="/services/{nb.pk}/">nb</a>' in page
    assert "Deploy a service" in page
    assert f"/w/{world.a.project.pk}/deployments/notebooks/new/?instance={box.pk}" in page
    assert "svc step" not in page  # the instance's run log shows only its own runs
    assert "Delete…" not in page  # read-write collaborators do not manage instances
    ro_page = as_user(client, world, "collaborator_ro").get(f"/instances/{box.pk}/").content.decode()
    assert "nb" in ro_page and "Deploy a service" not in ro_page


def test_catalog_cards_launch_into_the_new_service_page(hub, client):
    world, box, _ = hub
    jupyter = ServiceProfile.objects.get(org__isnull=True, name="jupyter-notebook")
    c = as_user(client, world, "collaborator_rw")
    cards = c.get(f"/w/{world.a.project.pk}/services/").content.decode()
    launch_url = f"/w/{world.a.project.pk}/deployments/launch/?profile={jupyter.pk}"
    assert launch_url in cards and 'aria-label="Launch Jupyter Notebook"' in cards
    followed = c.get(launch_url)
    assert followed.status_code == 302
    assert followed.url == f"/w/{world.a.project.pk}/deployments/notebooks/new/?profile={jupyter.pk}"
    new = c.get(followed.url).content.decode()
    assert f'<option value="{jupyter.pk}" selected>Jupyter Notebook</option>' in new
    assert f'<option value="{box.pk}">box</option>' in new
    preselected = c.get(followed.url + f"&instance={box.pk}").content.decode()
    assert f'<option value="{box.pk}" selected>box</option>' in preselected
    assert c.get(f"/w/{world.a.project.pk}/deployments/launch/?profile=999999").status_code == 404

    ro = as_user(client, world, "collaborator_ro")
    assert "deployments/launch/" not in ro.get(f"/w/{world.a.project.pk}/services/").content.decode()
    assert ro.get(followed.url).status_code == 403
    assert (
        ro.post(followed.url, {"name": "x", "profile": jupyter.pk, "compute_instance": box.pk}).status_code
        == 403
    )
    assert not ServiceInstance.objects.filter(name="x").exists()


# --- the new-service page ---------------------------------------------------------------------------------


@pytest.fixture
def jupyter():
    return ServiceProfile.objects.get(org__isnull=True, name="jupyter-notebook")


def expose_image(profile):
    """Let users set the notebook's image (a single-line text input), as an admin may."""
    settings = dict(profile.input_settings)
    settings["image"] = {"default": None, "required": False, "exposed": True, "overridable": True}
    ServiceProfile.objects.filter(pk=profile.pk).update(input_settings=settings)
    profile.refresh_from_db()


def new_url(world, kind="notebooks"):
    return f"/w/{world.a.project.pk}/deployments/{kind}/new/"


def form_data(jupyter, box, **extra):
    return {
        "name": "demo-notebook",
        "description": "exploring",
        "profile": jupyter.pk,
        "compute_instance": box.pk,
        "input_notebook_profile": "Minimal",
        "input_gpus": "0",
        "input_cpu": "2",
        "input_memory_gib": "8",
        "input_home_size_gib": "5",
        "launch": "1",
    } | extra


def test_the_inputs_are_fields_of_their_types(hub, client, jupyter):
    world, box, _ = hub
    settings = dict(jupyter.input_settings)
    settings["cpu"] = settings["cpu"] | {"overridable": False}  # shown, not changeable
    ServiceProfile.objects.filter(pk=jupyter.pk).update(input_settings=settings)
    c = as_user(client, world, "collaborator_rw")
    page = c.get(new_url(world) + f"?profile={jupyter.pk}&instance={box.pk}").content.decode()
    # the notebook profile selector, as in the reference
    assert '<select name="input_notebook_profile"' in page
    for option in ("Minimal", "Data Science", "Spark", "TensorFlow", "TensorFlow with CUDA", "PyTorch"):
        assert f'<option value="{option}"' in page
    assert '<option value="Minimal" selected>' in page
    assert 'type="number" name="input_gpus"' in page and 'type="number" name="input_memory_gib"' in page
    cpu = page[page.index('name="input_cpu"') - 200 : page.index('name="input_cpu"') + 200]
    assert "disabled" in cpu and "set by your administrator" in page
    assert "input_image" not in page and "input_token" not in page  # not exposed: not shown
    assert "input_ingress_class" not in page
    # a multi-line input is a text area (the training job's command)
    job = ServiceProfile.objects.get(org__isnull=True, name="training-job")
    jobs = c.get(new_url(world, "jobs") + f"?profile={job.pk}").content.decode()
    assert '<textarea name="input_command"' in jobs


def test_launch_creates_the_service_and_queues_its_deploy(hub, client, jupyter):
    world, box, _ = hub
    c = as_user(client, world, "collaborator_rw")
    data = form_data(jupyter, box, input_notebook_profile="Data Science", input_cpu="3")
    response = c.post(new_url(world), data)
    assert response.status_code == 302, (response.context["error"], response.context["form"].errors)
    service = ServiceInstance.objects.get(compute_instance=box, name="demo-notebook")
    assert response.url == f"/services/{service.pk}/"
    assert service.description == "exploring" and service.owner == world.a.users["collaborator_rw"]
    assert service.input_values["notebook_profile"] == "Data Science" and service.input_values["cpu"] == 3
    assert Run.objects.filter(service=service, kind="deploy").exists()
    page = c.get(response.url).content.decode()
    assert "Deploying demo-notebook on box." in page and f'hx-get="/services/{service.pk}/status/"' in page


def test_every_service_error_lands_on_its_field_and_nothing_typed_is_lost(hub, client, jupyter):
    world, box, _ = hub
    service_row(box, "jupyter-notebook", "taken")
    c = as_user(client, world, "collaborator_rw")
    taken = c.post(new_url(world), form_data(jupyter, box, name="taken", input_cpu="3"))
    assert taken.status_code == 400
    form = taken.context["form"]
    assert "exists on box already" in " ".join(form.errors["name"])
    text = taken.content.decode()
    assert 'value="taken"' in text and "exploring</textarea>" in text and 'value="3"' in text
    assert 'aria-invalid="true"' in text and 'id="id_name_error"' in text

    # a value the service layer refuses for one input: its message beside that input
    expose_image(jupyter)
    refused = c.post(new_url(world), form_data(jupyter, box, input_image="two\nlines"))
    assert refused.status_code == 400
    assert "single line" in " ".join(refused.context["form"].errors.get("input_image", []))
    assert 'value="demo-notebook"' in refused.content.decode()

    # what does not fit what is left of the instance: refused with the numbers, above the form
    too_big = c.post(new_url(world), form_data(jupyter, box, input_memory_gib="4000"))
    assert too_big.status_code in (400, 409)
    assert "GiB" in too_big.content.decode() and 'value="4000"' in too_big.content.decode()

    # a form error of the page itself (no name, no instance)
    empty = c.post(new_url(world), form_data(jupyter, box, name="", compute_instance=""))
    assert empty.status_code == 400
    assert set(empty.context["form"].errors) >= {"name", "compute_instance"}
    assert not ServiceInstance.objects.filter(name="demo-notebook").exists()


def test_switching_the_type_shows_its_inputs_and_keeps_what_was_typed(hub, client):
    world, box, _ = hub
    job = ServiceProfile.objects.get(org__isnull=True, name="training-job")
    fine = ServiceProfile.objects.get(org__isnull=True, name="fine-tuning-job")
    c = as_user(client, world, "collaborator_rw")
    switched = c.post(
        new_url(world, "jobs"),
        {"name": "my-job", "description": "d", "profile": fine.pk, "compute_instance": box.pk}
        | {"refresh": "1"},
        HTTP_HX_REQUEST="true",
    )
    assert switched.status_code == 200
    text = switched.content.decode()
    assert 'value="my-job"' in text and f'<option value="{box.pk}" selected>' in text
    assert 'id="service-inputs"' in text and "error" not in switched.context["form"].errors
    assert not switched.context["form"].is_bound  # no "required" errors for what is not typed yet
    assert job.pk != fine.pk


def test_who_may_launch(hub, client, jupyter):
    world, box, _ = hub
    for who in ("collaborator_ro", "paas_admin_project"):
        c = as_user(client, world, who)
        assert c.get(new_url(world)).status_code == 403, who
        assert c.post(new_url(world), form_data(jupyter, box)).status_code == 403, who
    outsider = as_user(client, world, "outsider")
    assert outsider.get(new_url(world)).status_code == 404
    assert not ServiceInstance.objects.filter(name="demo-notebook").exists()
    owner = as_user(client, world, "workspace_admin")
    assert owner.post(new_url(world), form_data(jupyter, box)).status_code == 302


# --- roles ---------------------------------------------------------------------------------------------

# What each role gets on a service of tenant A's team workspace (on an instance the workspace admin
# launched) and on that compute instance: 200 = the page with its controls, 403 = seen but refused,
# 404 = not visible. Read-write collaborators manage services, not instances; read-only members see
# everything and may do nothing.
ROLE_MATRIX = {
    # role: (service delete page, instance action)
    "operator": (404, 404),  # sees inside no org without a support access
    "operator_read": (403, 403),  # sees, may do nothing
    "operator_admin": (403, 403),  # as an org admin
    "org_admin": (403, 403),  # sees every workspace of the org, works in none
    "paas_admin_org": (404, 404),
    "paas_admin_project": (404, 404),
    "workspace_admin": (200, "allowed"),
    "collaborator_rw": (200, 403),
    "collaborator_ro": (403, 403),
    "outsider": (404, 404),
}


@pytest.mark.parametrize("who", list(ROLE_MATRIX))
def test_role_matrix_of_the_service_and_instance_controls(hub, client, who):
    world, box, _ = hub
    nb = service_row(box, "jupyter-notebook", "nb")
    delete_page, instance_action = ROLE_MATRIX[who]
    c = as_user(client, world, who)
    page = c.get(f"/services/{nb.pk}/")
    if delete_page == 404:
        assert page.status_code == 404
    else:
        assert page.status_code == 200
        assert ("Delete…" in page.content.decode()) is (delete_page == 200)
    assert c.get(f"/services/{nb.pk}/delete/").status_code == delete_page
    deleted = c.post(f"/services/{nb.pk}/delete/", {"confirm_name": "nb"})
    assert deleted.status_code in ({403, 404} if delete_page != 200 else {302})
    acted = c.post(f"/instances/{box.pk}/actions/stop/")
    if instance_action == "allowed":
        assert acted.status_code in (302, 404)  # 404 while the instance has no such action
    else:
        assert acted.status_code == instance_action
    if delete_page == 200:
        assert ServiceInstance.objects.get(pk=nb.pk).state == "deleting"
    else:
        assert ServiceInstance.objects.get(pk=nb.pk).state == "ready"


# --- actions and day-2 -----------------------------------------------------------------------------------


def _launched(world, box, jupyter, name="nb"):
    """A notebook launched through the service layer (snapshot, inputs), then marked ready as a
    successful deploy leaves it."""
    service = service_instances.service_launch(
        actor=world.a.users["collaborator_rw"],
        compute_instance=box,
        profile=jupyter,
        name=name,
        inputs={"cpu": 2, "memory_gib": 8}
        | ({"home_size_gib": 5} if _exposed(jupyter, "home_size_gib") else {}),
    )
    Run.objects.filter(service=service).update(outcome="succeeded")
    ServiceInstance.objects.filter(pk=service.pk).update(state="ready")
    service.refresh_from_db()
    return service


def _exposed(profile, name) -> bool:
    return any(f.name == name for f in input_fields(profile))


def test_service_actions_by_role(hub, client, jupyter):
    world, box, _ = hub
    nb = _launched(world, box, jupyter)
    rw = as_user(client, world, "collaborator_rw")
    page = rw.get(f"/services/{nb.pk}/").content.decode()
    assert f'action="/services/{nb.pk}/actions/stop/"' in page  # offered: stop (it runs), not start
    assert f'action="/services/{nb.pk}/actions/start/"' not in page
    ro = as_user(client, world, "collaborator_ro")
    assert "/actions/" not in ro.get(f"/services/{nb.pk}/").content.decode()
    assert ro.post(f"/services/{nb.pk}/actions/stop/").status_code == 403
    assert not Run.objects.filter(service=nb, kind="action").exists()
    rw = as_user(client, world, "collaborator_rw")
    done = rw.post(f"/services/{nb.pk}/actions/stop/")
    assert done.status_code == 302 and done.url == f"/services/{nb.pk}/"
    run = Run.objects.get(service=nb, kind="action")
    assert run.action == "stop" and run.requested_by == world.a.users["collaborator_rw"]
    live = rw.get(f"/services/{nb.pk}/").content.decode()
    assert "Running stop on nb." in live and f'hx-get="/services/{nb.pk}/status/"' in live
    assert "/actions/" not in live  # no second action while one is queued
    assert rw.post(f"/services/{nb.pk}/actions/bogus/").status_code == 404


def test_redeploy_with_changed_inputs_and_the_refusal_without_day2(hub, client, jupyter):
    world, box, _ = hub
    expose_image(jupyter)
    nb = _launched(world, box, jupyter)
    c = as_user(client, world, "collaborator_rw")
    assert f'href="/services/{nb.pk}/redeploy/"' in c.get(f"/services/{nb.pk}/").content.decode()
    form = c.get(f"/services/{nb.pk}/redeploy/").content.decode()
    assert 'name="input_cpu" value="2"' in form and 'name="input_notebook_profile"' in form
    current = {
        f"input_{f.name}": nb.input_values.get(f.name)
        for f in input_fields(nb.snapshot)
        if nb.input_values.get(f.name) is not None
    }
    bad = c.post(f"/services/{nb.pk}/redeploy/", current | {"input_cpu": "3", "input_image": "a\nb"})
    assert bad.status_code == 400 and bad.context["form"].errors.get("input_image")
    assert 'value="3"' in bad.content.decode()  # nothing typed is lost
    done = c.post(f"/services/{nb.pk}/redeploy/", current | {"input_cpu": "3"})
    assert done.status_code == 302, done.context and (done.context["error"], done.context["form"].errors)
    assert Run.objects.filter(service=nb, kind="redeploy").exists()
    ro = as_user(client, world, "collaborator_ro")
    assert ro.get(f"/services/{nb.pk}/redeploy/").status_code == 403

    job = service_row(box, "training-job", "train")  # its profile does not allow day-2 operations
    c = as_user(client, world, "collaborator_rw")
    page = c.get(f"/services/{job.pk}/").content.decode()
    assert (
        "/redeploy/" not in page and "Redeploy is not available" in page and "ALLOW_DAY2_OPERATIONS" in page
    )
    refused = c.post(f"/services/{job.pk}/redeploy/", {"input_cpu": "3"})
    assert refused.status_code == 409 and "ALLOW_DAY2_OPERATIONS" in refused.content.decode()
    assert not Run.objects.filter(service=job).exists()


def test_instance_actions_for_its_users_not_for_read_write_collaborators(hub, client):
    world, _, _ = hub
    small = ComputeProfile.objects.get(org__isnull=True, name="small")
    big = launch(world, small, "big")
    Run.objects.filter(instance=big).update(outcome="succeeded")
    ComputeInstance.objects.filter(pk=big.pk).update(state="ready", namespace="i-big")
    admin = as_user(client, world, "workspace_admin")
    page = admin.get(f"/instances/{big.pk}/").content.decode()
    assert f'action="/instances/{big.pk}/actions/stop/"' in page
    assert f'action="/instances/{big.pk}/actions/start/"' not in page
    for who in ("collaborator_rw", "collaborator_ro"):
        c = as_user(client, world, who)
        assert "/actions/" not in c.get(f"/instances/{big.pk}/").content.decode(), who
        assert c.post(f"/instances/{big.pk}/actions/stop/").status_code == 403, who
    assert not Run.objects.filter(instance=big, kind="action").exists()
    admin = as_user(client, world, "workspace_admin")
    done = admin.post(f"/instances/{big.pk}/actions/stop/")
    assert done.status_code == 302 and done.url == f"/instances/{big.pk}/"
    assert Run.objects.get(instance=big, kind="action", service__isnull=True).action == "stop"


def test_query_counts_do_not_grow_with_services(hub, client):
    world, box, spare = hub
    c = as_user(client, world, "collaborator_rw")
    first = service_row(box, "jupyter-notebook", "nb-0")
    for n in range(1, 3):
        service_row(box if n % 2 else spare, "jupyter-notebook", f"nb-{n}", state="ready")
    Run.objects.create(instance=box, service=first, kind="deploy", outcome="succeeded")
    urls = [
        f"/w/{world.a.project.pk}/deployments/notebooks/",
        f"/w/{world.a.project.pk}/deployments/notebooks/?instance={box.pk}&state=ready",
        f"/services/{first.pk}/",
        f"/services/{first.pk}/status/",
        f"/instances/{box.pk}/",
    ]
    for url in urls:
        c.get(url)  # warm the process-wide caches

    def count(url) -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert c.get(url).status_code == 200, url
        return len(ctx.captured_queries)

    small = {url: count(url) for url in urls}
    for n in range(3, 40):
        service_row(box if n % 2 else spare, "jupyter-notebook", f"nb-{n}", state="ready")
        Run.objects.create(instance=box, service=first, kind="action", action="stop", outcome="succeeded")
    large = {url: count(url) for url in urls}
    print(f"\nservice pages' queries, 3 vs 40 services: {small} vs {large}")
    assert small == large, (small, large)


def test_datacenter_and_storage_when_the_profile_exposes_them(hub, client, jupyter):
    from inventory.models import Datacenter, Storage

    world, box, _ = hub
    east = Datacenter.objects.create(name="east", display_name="East", kind="data_center", credentials="x")
    west = Datacenter.objects.create(name="west", display_name="West", kind="data_center", credentials="x")
    Storage.objects.create(name="open-fast", kind="high-speed-storage", storage_class="fast")
    Storage.objects.create(name="east-fast", kind="high-speed-storage", storage_class="fast", datacenter=east)
    Storage.objects.create(name="west-fast", kind="high-speed-storage", storage_class="fast", datacenter=west)
    ServiceProfile.objects.filter(pk=jupyter.pk).update(
        datacenter=east,
        datacenter_exposed=True,
        datacenter_overridable=True,
        storage_exposed=True,
        storage_overridable=True,
    )
    c = as_user(client, world, "collaborator_rw")
    page = c.get(new_url(world) + f"?profile={jupyter.pk}").content.decode()
    assert '<select name="datacenter"' in page and f'<option value="{east.pk}" selected>East</option>' in page
    assert "open-fast" in page and "east-fast" in page and "west-fast" not in page  # the visibility rule
    # A datacenter other than the one of the instance's cluster: refused, on the datacenter field.
    refused = c.post(new_url(world), form_data(jupyter, box, datacenter=west.pk))
    assert refused.status_code == 400
    assert "runs on cluster" in " ".join(refused.context["form"].errors["datacenter"])
    text = refused.content.decode()
    assert f'<option value="{west.pk}" selected>West</option>' in text and "west-fast" in text
    assert "east-fast" not in text  # the storage list follows the chosen datacenter
    # Changing the datacenter re-renders the inputs (htmx) with its storage, keeping what was typed.
    again = c.post(
        new_url(world),
        form_data(jupyter, box, datacenter=west.pk, shown_profile=jupyter.pk, input_cpu="5")
        | {"refresh": "1"},
        HTTP_HX_REQUEST="true",
    )
    text = again.content.decode()
    assert again.status_code == 200 and not again.context["form"].is_bound
    assert "west-fast" in text and "east-fast" not in text and 'name="input_cpu" value="5"' in text
    assert 'hx-post="/w/' in text.split('<select name="datacenter"')[1].split(">")[0]
