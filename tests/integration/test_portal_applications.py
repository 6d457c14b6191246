"""The developer hub's application pages through Django's test client: "My deployments → Applications"
(the list, its search and filters, the DEBUG button, the two "New Application" buttons), New
Application (uploads and repositories), New Application From Catalog, the application page (live
status, objects, debug with events, revisions, update, roll back, retry, delete, refresh) and each
page's answer to every role. Pages that change something call the real service layer
(``instances.applications``: its checks, the revision, the queued run); list and application pages
read rows as a deploy leaves them (the deploys themselves are in tests/integration/test_applications*)."""

import pytest
import yaml
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from catalog.models import CatalogApplication, Repository
from instances.application_models import Application, ApplicationRevision
from instances.models import Run
from tests.factories import ONE_A100, make_profile, make_synced_cluster
from tests.support.html_forms import form_data
from tests.support.instances import launch
from tests.support.roles import user_for

MANIFESTS = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ instance.name }}-info\ndata:\n  a: b\n"
CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config\ndata:\n  mode: dev\n"


@pytest.fixture
def hub(world):
    """Tenant A's team workspace with two ready compute instances ("box", "spare") on a synced (never
    deployed) cluster, and tenant B's workspace with one ("theirs")."""
    make_synced_cluster(name="portal-apps", nodes=2)
    size = make_profile(
        actor=world.a.users["org_admin"],
        project=world.a.project,
        manifests=MANIFESTS,
        name="one-gpu",
        template="ns",
        resource_groups=ONE_A100,
    )
    b_size = make_profile(
        actor=world.b.users["org_admin"],
        project=world.b.project,
        manifests=MANIFESTS,
        name="one-gpu",
        template="ns",
        resource_groups=ONE_A100,
    )
    box, spare = launch(world, size, "box"), launch(world, size, "spare")
    theirs = launch(world, b_size, "theirs", actor=world.b.users["workspace_admin"], project=world.b.project)
    for i in (box, spare, theirs):
        i.state, i.namespace = "ready", f"i-{i.name}"
        i.save(update_fields=["state", "namespace"])
    Run.objects.filter(instance__in=(box, spare, theirs)).update(outcome="succeeded")
    return world, box, spare, theirs


def app_row(
    instance, name: str, *, state: str = "ready", package_type: str = "yaml", **fields
) -> Application:
    """An application as a deploy leaves it (no cluster involved), with its first revision."""
    application = Application.objects.create(
        org=instance.org,
        project=instance.project,
        compute_instance=instance,
        name=name,
        owner=instance.owner,
        package_type=package_type,
        state=state,
        revision=1,
        **fields,
    )
    ApplicationRevision.objects.create(
        application=application,
        number=1,
        package_type=package_type,
        sync="upload",
        files={"web.yaml": CONFIGMAP},
        outcome="deployed" if state == "ready" else "pending",
        deployed_at=timezone.now() if state == "ready" else None,
    )
    return application


def as_user(client, world, who: str):
    client.logout()
    client.force_login(user_for(world, who))
    return client


def test_the_list_its_search_and_filters_and_who_sees_what(hub, client):
    world, box, spare, theirs = hub
    web = app_row(box, "web")
    app_row(spare, "chart-app", package_type="helm", state="provisioning")
    app_row(box, "gone", state="deleted")
    app_row(theirs, "other-org-app")
    base = f"/w/{world.a.project.pk}/applications/"

    ro = as_user(client, world, "collaborator_ro")
    landing = ro.get(f"/w/{world.a.project.pk}/").content.decode()
    assert f'href="{base}">Applications</a>' in landing  # My deployments → Applications
    page = ro.get(base).content.decode()
    for column in ("Name", "Package Type", "Compute Instance", "Created At", "Deployment Status"):
        assert f">{column}</th>" in page
    assert "web" in page and "chart-app" in page and "K8s YAML" in page and "Helm chart" in page
    assert "gone" not in page and "other-org-app" not in page
    assert f'href="/applications/{web.pk}/#debug"' in page and ">DEBUG</a>" in page
    assert 'data-state="provisioning"' in page and 'hx-trigger="every 3s"' in page  # live while deploying
    assert "+ New Application" not in page and "From Catalog" not in page  # read-only: no buttons
    assert "chart-app" not in ro.get(base, {"q": "we"}).content.decode()
    assert "web" in ro.get(base, {"q": "we"}).content.decode()
    helm_only = ro.get(base, {"package_type": "helm"}).content.decode()
    assert "chart-app" in helm_only and ">web</a>" not in helm_only
    only_box = ro.get(base, {"instance": box.pk}).content.decode()
    assert ">web</a>" in only_box and "chart-app" not in only_box
    assert "gone" in ro.get(base, {"state": "deleted"}).content.decode()
    assert ro.get(base, {"state": "bogus", "instance": "x", "q": "a\x00b"}).status_code == 200  # not a 500
    assert ro.get(f"{base}new/").status_code == 403
    assert ro.post(f"{base}new/", {"name": "x"}).status_code == 403

    rw = as_user(client, world, "collaborator_rw").get(base).content.decode()
    assert f'href="{base}new/">+ New Application</a>' in rw
    assert f'href="{base}catalog/">+ New Application From Catalog</a>' in rw
    box_page = as_user(client, world, "collaborator_rw").get(f"/instances/{box.pk}/").content.decode()
    assert f'href="/applications/{web.pk}/">web</a>' in box_page and "chart-app" not in box_page
    assert f'href="{base}new/?instance={box.pk}">New application</a>' in box_page
    new_on_box = client.get(f"{base}new/?instance={box.pk}").content.decode()
    assert f'<option value="{box.pk}" selected>box</option>' in new_on_box

    outsider = as_user(client, world, "outsider")  # tenant B's org admin
    assert outsider.get(base).status_code == 404
    assert outsider.get(f"/applications/{web.pk}/").status_code == 404
    assert outsider.get(f"/applications/{web.pk}/status/").status_code == 404
    assert outsider.post(f"/applications/{web.pk}/delete/", {"confirm_name": "web"}).status_code == 404
    assert Application.objects.get(pk=web.pk).state == "ready"


def test_the_application_page_objects_debug_revisions_and_controls_by_role(hub, client):
    world, box, _, _ = hub
    events = [
        {
            "object": "Pod/web-5d9c7-abcde",
            "type": "Warning",
            "reason": "BackOff",
            "message": "Back-off pulling image",
            "count": 7,
            "last": "x",
        }
    ]
    web = app_row(
        box,
        "web",
        state="failed",
        state_reason="Deployment web is not ready: 0/1 replicas.",
        objects_applied=[{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}],
        object_status=[
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "web-config", "ready": True, "message": ""},
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": "web",
                "ready": False,
                "message": "0/1 replicas ready",
                "events": events,
            },
        ],
        status_checked_at=timezone.now(),
    )
    ApplicationRevision.objects.create(
        application=web,
        number=2,
        package_type="yaml",
        sync="repository",
        ref="main",
        commit="0123456789abcdef0123",
        outcome="failed",
        message="not ready",
    )
    Application.objects.filter(pk=web.pk).update(revision=2)
    ApplicationRevision.objects.filter(application=web, number=1).update(
        outcome="superseded", deployed_at=timezone.now()
    )
    run = Run.objects.create(
        instance=box,
        application=web,
        kind="deploy",
        outcome="failed",
        log=[{"time": "2026-01-01T00:00:00", "message": "applied 1 object"}],
    )
    Run.objects.create(
        instance=box, kind="deploy", outcome="succeeded", log=[{"time": "", "message": "box own"}]
    )

    rw = as_user(client, world, "collaborator_rw")
    page = rw.get(f"/applications/{web.pk}/").content.decode()
    assert "<h1>web</h1>" in page and 'data-state="failed"' in page and "0/1 replicas" in page
    assert 'data-object="Deployment/web"' in page and 'data-object="ConfigMap/web-config"' in page
    assert 'id="debug"' in page and "Back-off pulling image" in page and "BackOff" in page
    assert "Pod/web-5d9c7-abcde" in page  # a workload's events include its pods'; each names its object
    assert "applied 1 object" in page and "box own" not in page  # its own run log only
    assert 'data-revision="2"' in page and "0123456789ab" in page and "(deleted repository)" in page
    assert "Update…" in page and "Delete…" in page and ">Retry</button>" in page
    assert ">Roll back</button>" in page and '<option value="1">' in page  # revision 1 was deployed
    assert ">Refresh status</button>" in page
    assert "hx-get" not in page  # settled: nothing polls

    # "Refresh status": queued on the agent; the page polls until the worker has read the status again.
    refreshed = rw.post(f"/applications/{web.pk}/refresh/")
    assert refreshed.status_code == 302 and refreshed.url.startswith(f"/applications/{web.pk}/?refresh=")
    waiting = rw.get(refreshed.url).content.decode()
    assert f'hx-get="/applications/{web.pk}/status/?refresh=' in waiting
    Application.objects.filter(pk=web.pk).update(status_checked_at=timezone.now())  # the task ran
    assert "hx-get" not in rw.get(refreshed.url).content.decode()

    ro = as_user(client, world, "collaborator_ro")
    ro_page = ro.get(f"/applications/{web.pk}/").content.decode()
    assert "Back-off pulling image" in ro_page  # the debug view is for readers too
    assert 'id="manage"' not in ro_page and "Update…" not in ro_page and "Retry" not in ro_page
    assert ">Refresh status</button>" in ro_page  # reading the status again is for readers too
    for path, data in (
        ("update/", {"ref": "x"}),
        ("rollback/", {"revision": 1}),
        ("retry/", {}),
        ("delete/", {"confirm_name": "web"}),
    ):
        assert ro.post(f"/applications/{web.pk}/{path}", data).status_code == 403, path
    assert ro.get(f"/applications/{web.pk}/update/").status_code == 403
    web.refresh_from_db()
    assert (web.state, web.revision, web.runs.count()) == ("failed", 2, 1)

    Application.objects.filter(pk=web.pk).update(state="provisioning")
    run.outcome = "running"
    run.save(update_fields=["outcome"])
    live = rw.get(f"/applications/{web.pk}/").content.decode()
    assert f'hx-get="/applications/{web.pk}/status/"' in live and "Update…" not in live
    fragment = rw.get(f"/applications/{web.pk}/status/")
    assert fragment["Cache-Control"] == "no-store" and b'id="application-status"' in fragment.content
    assert b"<html" not in fragment.content


def _upload(name: str, text: str | bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode() if isinstance(text, str) else text, "application/yaml")


def test_new_application_from_uploaded_yaml_and_bad_uploads_named(hub, client):
    world, box, _, theirs = hub
    c = as_user(client, world, "collaborator_rw")
    url = f"/w/{world.a.project.pk}/applications/new/"
    page = c.get(url).content.decode()
    for label in ("Name", "Package type", "Artifact sync", "Compute instance", "K8s YAML", "Helm chart"):
        assert label in page
    assert f'<option value="{box.pk}">box</option>' in page and "theirs" not in page
    base = {"name": "web", "package_type": "yaml", "sync": "upload", "compute_instance": box.pk}

    bad = c.post(url, base | {"files": [_upload("broken.yaml", "kind: [unclosed\n")]})
    assert bad.status_code == 400 and "broken.yaml" in bad.content.decode()
    binary = c.post(url, base | {"files": [_upload("blob.yaml", b"\xff\xfe\x00")]})
    assert binary.status_code == 400 and "blob.yaml is not UTF-8 text." in binary.content.decode()
    named = c.post(url, base | {"files": [_upload("notes.txt", CONFIGMAP)]})
    assert "notes.txt: Kubernetes YAML files are named *.yaml or *.yml." in named.content.decode()
    none = c.post(url, base)
    assert none.status_code == 400 and "Choose the files to upload." in none.content.decode()
    foreign = c.post(url, base | {"compute_instance": theirs.pk, "files": [_upload("web.yaml", CONFIGMAP)]})
    assert foreign.status_code == 400 and "Select a valid choice" in foreign.content.decode()
    assert not Application.objects.filter(name="web").exists()

    done = c.post(url, base | {"files": [_upload("web.yaml", CONFIGMAP)]})
    assert done.status_code == 302, done.content.decode()[:2000]
    application = Application.objects.get(name="web", compute_instance=box)
    assert done.url == f"/applications/{application.pk}/"
    revision = application.revisions.get()
    assert (revision.sync, revision.files) == ("upload", {"web.yaml": CONFIGMAP})
    assert application.runs.get().kind == "deploy"
    shown = c.get(done.url).content.decode()
    assert "Deploying web on box." in shown and "upload: web.yaml" in shown
    listed = c.get(f"/w/{world.a.project.pk}/applications/").content.decode()
    assert f'href="/applications/{application.pk}/">web</a>' in listed

    again = c.post(url, base | {"files": [_upload("web.yaml", CONFIGMAP)]})  # the name is taken on box
    assert again.status_code in (400, 409) and "web" in again.content.decode()


def test_new_application_pulled_from_a_repository(hub, client):
    world, box, _, _ = hub
    charts = Repository.objects.create(
        org=world.a.org,
        project=world.a.project,
        name="charts",
        display_name="Charts",
        kind="helm",
        url="https://charts.example.test/",
    )
    Repository.objects.create(
        org=world.b.org,
        project=world.b.project,
        name="theirs",
        display_name="Theirs",
        kind="git",
        url="https://git.example.test/x.git",
    )
    c = as_user(client, world, "collaborator_rw")
    url = f"/w/{world.a.project.pk}/applications/new/"
    page = c.get(url).content.decode()
    assert f'<option value="{charts.pk}">Charts (Helm)</option>' in page and "Theirs" not in page
    base = {"name": "chart", "package_type": "helm", "sync": "repository", "compute_instance": box.pk}
    missing = c.post(url, base)
    assert missing.status_code == 400 and "Choose a repository." in missing.content.decode()
    done = c.post(
        url,
        base
        | {
            "repository": charts.pk,
            "chart": "web",
            "chart_version": "1.2.0",
            "values_file": "values-prod.yaml",
            "values": "replicaCount: 2\n",
        },
    )
    assert done.status_code == 302, done.content.decode()[:2000]
    revision = Application.objects.get(name="chart").revisions.get()
    assert (revision.repository_id, revision.chart, revision.chart_version) == (charts.pk, "web", "1.2.0")
    assert (revision.values_file, revision.values, revision.package_type) == (
        "values-prod.yaml",
        "replicaCount: 2\n",
        "helm",
    )

    # An update to a new chart version: a new revision with the rest of the source kept.
    application = Application.objects.get(name="chart")
    Application.objects.filter(pk=application.pk).update(state="ready")
    Run.objects.filter(application=application).update(outcome="succeeded")
    form = c.get(f"/applications/{application.pk}/update/").content.decode()
    assert 'value="1.2.0"' in form and "replicaCount: 2" in form
    data = form_data(form)
    data["chart_version"] = ["1.3.0"]
    assert c.post(f"/applications/{application.pk}/update/", data).status_code == 302
    latest = application.revisions.order_by("-number").first()
    assert (latest.number, latest.chart_version, latest.chart, latest.repository_id) == (
        2,
        "1.3.0",
        "web",
        charts.pk,
    )
    assert latest.values == "replicaCount: 2\n"
    busy = c.post(f"/applications/{application.pk}/update/", data)  # revision 2 is deploying
    assert busy.status_code == 409 and "deploy in progress" in busy.content.decode()


def test_new_application_from_the_catalog(hub, client):
    world, box, _, _ = hub
    item = CatalogApplication.objects.create(
        name="hello",
        display_name="Hello app",
        description="Says hello.",
        readme="# Hello\n\nA **friendly** app.<script>alert(1)</script>",
        package_type="yaml",
        sync="upload",
        files={"hello.yaml": CONFIGMAP},
        published=True,
        system_sharing="all",
    )
    CatalogApplication.objects.create(
        name="draft",
        display_name="Draft app",
        package_type="yaml",
        sync="upload",
        published=False,
        system_sharing="all",
    )
    c = as_user(client, world, "collaborator_rw")
    cards = c.get(f"/w/{world.a.project.pk}/applications/catalog/").content.decode()
    assert "Hello app" in cards and "Draft app" not in cards and "<strong>friendly</strong>" in cards
    assert "<script>" not in cards
    deploy = f"/w/{world.a.project.pk}/applications/catalog/{item.pk}/"
    assert f'href="{deploy}"' in cards
    form = c.get(deploy).content.decode()
    assert "<h1>Deploy Hello app</h1>" in form and "<strong>friendly</strong>" in form
    done = c.post(deploy, {"name": "hello", "compute_instance": box.pk})
    assert done.status_code == 302, done.content.decode()[:2000]
    application = Application.objects.get(name="hello")
    assert application.catalog_item_id == item.pk
    assert application.revisions.get().files == {"hello.yaml": CONFIGMAP}

    ro = as_user(client, world, "collaborator_ro")
    assert f'href="{deploy}"' not in ro.get(f"/w/{world.a.project.pk}/applications/catalog/").content.decode()
    assert ro.post(deploy, {"name": "x", "compute_instance": box.pk}).status_code == 403
    outsider = as_user(client, world, "outsider")
    assert outsider.get(f"/w/{world.b.project.pk}/applications/catalog/{item.pk + 1000}/").status_code == 404


def test_a_chart_from_the_catalog_with_its_defaults_prefilled(hub, client):
    world, box, _, _ = hub
    charts = Repository.objects.create(
        org=world.a.org,
        project=None,
        name="org-charts",
        display_name="Org charts",
        kind="helm",
        url="http://127.0.0.1:9/charts/",
        sharing="all",
    )
    item = CatalogApplication.objects.create(
        org=world.a.org,
        name="web-chart",
        display_name="Web chart",
        package_type="helm",
        sync="repository",
        repository=charts,
        chart="web",
        chart_version="1.0.0",
        values="replicaCount: 1\nimage:\n  tag: v1\n",
        published=True,
        sharing="all",
    )
    c = as_user(client, world, "collaborator_rw")
    url = f"/w/{world.a.project.pk}/applications/catalog/{item.pk}/"
    form = c.get(url).content.decode()
    assert "replicaCount: 1" in form and "tag: v1" in form  # the defaults, to change
    done = c.post(url, {"name": "web", "compute_instance": box.pk, "values": "image:\n  tag: v2\n"})
    assert done.status_code == 302, done.content.decode()[:2000]
    revision = Application.objects.get(name="web").revisions.get()
    assert (revision.repository_id, revision.chart, revision.chart_version) == (charts.pk, "web", "1.0.0")
    assert yaml.safe_load(revision.values) == {"replicaCount": 1, "image": {"tag": "v2"}}  # merged
    bad = c.post(url, {"name": "web2", "compute_instance": box.pk, "values": "- a list\n"})
    assert bad.status_code == 400 and 'id="id_values_error"' in bad.content.decode()


def test_update_roll_back_retry_and_delete_through_the_page(hub, client):
    world, box, _, _ = hub
    web = app_row(box, "web")
    c = as_user(client, world, "collaborator_rw")
    form = c.get(f"/applications/{web.pk}/update/").content.decode()
    assert "Leave empty to keep the current files." in form
    bad = c.post(f"/applications/{web.pk}/update/", {"files": [_upload("bad.yaml", "a: [\n")]})
    assert bad.status_code == 400 and "bad.yaml" in bad.content.decode()
    changed = CONFIGMAP.replace("dev", "prod")
    done = c.post(f"/applications/{web.pk}/update/", {"files": [_upload("web.yaml", changed)]})
    assert done.status_code == 302, done.content.decode()[:2000]
    latest = web.revisions.order_by("-number").first()
    assert (latest.number, latest.files) == (2, {"web.yaml": changed})

    # Revision 2 deployed: roll back to 1 (a new revision 3 with revision 1's source).
    ApplicationRevision.objects.filter(application=web, number=2).update(
        outcome="deployed", deployed_at=timezone.now()
    )
    ApplicationRevision.objects.filter(application=web, number=1).update(
        outcome="superseded", deployed_at=None
    )
    Application.objects.filter(pk=web.pk).update(state="ready", revision=2)
    Run.objects.filter(application=web).update(outcome="succeeded")
    page = c.get(f"/applications/{web.pk}/").content.decode()
    assert ">Roll back</button>" not in page  # no other revision that deployed
    ApplicationRevision.objects.filter(application=web, number=1).update(deployed_at=timezone.now())
    assert ">Roll back</button>" in c.get(f"/applications/{web.pk}/").content.decode()
    back = c.post(f"/applications/{web.pk}/rollback/", {"revision": 1}, follow=True)
    rollback = web.revisions.order_by("-number").first()
    assert (rollback.number, rollback.rollback_of.number, rollback.files) == (3, 1, {"web.yaml": CONFIGMAP})
    assert "Rolling web back to revision 1" in back.content.decode()
    assert c.post(f"/applications/{web.pk}/rollback/", {"revision": 99}).status_code == 302  # a message

    # Retry is refused unless failed (a message, not a 500); then delete after typing the name.
    retried = c.post(f"/applications/{web.pk}/retry/", follow=True)
    assert retried.status_code == 200 and "flash-error" in retried.content.decode()
    wrong = c.post(f"/applications/{web.pk}/delete/", {"confirm_name": "nope"})
    assert wrong.status_code == 400 and "Type web to confirm." in wrong.content.decode()
    Run.objects.filter(application=web).update(outcome="succeeded")
    Application.objects.filter(pk=web.pk).update(state="ready")
    gone = c.post(f"/applications/{web.pk}/delete/", {"confirm_name": "web"})
    assert gone.status_code == 302
    assert Application.objects.get(pk=web.pk).state == "deleting"
    assert Run.objects.filter(application=web, kind="delete").exists()


def test_query_counts_do_not_grow_with_applications_revisions_or_runs(hub, client):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    world, box, spare, _ = hub
    c = as_user(client, world, "collaborator_rw")
    first = app_row(box, "app-0")
    urls = [
        f"/w/{world.a.project.pk}/applications/",
        f"/applications/{first.pk}/",
        f"/applications/{first.pk}/status/",
        f"/instances/{box.pk}/",
    ]

    def count(url) -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert c.get(url).status_code == 200, url
        return len(ctx.captured_queries)

    def grow(start, stop):
        for n in range(start, stop):
            app_row(box if n % 2 else spare, f"app-{n}")
            run = Run.objects.create(instance=box, application=first, kind="deploy", outcome="succeeded")
            ApplicationRevision.objects.create(
                application=first, number=n + 1, run=run, package_type="yaml", sync="upload", files={}
            )

    grow(1, 3)
    for url in urls:
        c.get(url)  # warm the process-wide caches
    small = {url: count(url) for url in urls}
    grow(3, 25)
    large = {url: count(url) for url in urls}
    assert small == large, (small, large)


def test_role_matrix_of_the_application_and_integrations_pages(hub, client):
    """Who reaches which page of tenant A's team workspace (200), is refused (403: sees the workspace,
    may not do this) or is told nothing exists (404)."""
    world, box, _, _ = hub
    web = app_row(box, "web")
    w = world.a.project.pk
    pages = {
        "list": f"/w/{w}/applications/",
        "new": f"/w/{w}/applications/new/",
        "app": f"/applications/{web.pk}/",
        "update": f"/applications/{web.pk}/update/",
        "repos": f"/w/{w}/integrations/repositories/",
        "new repo": f"/w/{w}/integrations/repositories/new/",
        "registries": f"/w/{w}/integrations/registries/",
    }
    everything = dict.fromkeys(pages, 200)
    # Org-level admins see the workspace and manage its catalog (repositories), but deploy nothing and
    # see applications only through compute instances they may view.
    org_level = everything | {"new": 403, "app": 404, "update": 404}
    expected = {
        # The operator sees inside the org only through a support access: read sees, writes nothing;
        # admin acts as an org admin does.
        "operator": dict.fromkeys(pages, 404),
        "operator_read": everything | {"new": 403, "update": 403, "new repo": 403},
        "operator_admin": org_level | {"app": 200, "update": 403},
        "org_admin": org_level | {"app": 200, "update": 403},  # org admins view every instance
        "paas_admin_org": org_level,
        "paas_admin_project": org_level,
        "workspace_admin": everything,
        "collaborator_rw": everything,
        "collaborator_ro": everything | {"new": 403, "update": 403, "new repo": 403},
        "outsider": dict.fromkeys(pages, 404),
    }
    seen = {}
    for who in expected:
        c = as_user(client, world, who)
        seen[who] = {name: c.get(url).status_code for name, url in pages.items()}
    assert seen == expected


def test_bad_input_is_a_form_error_never_a_500(hub, client):
    world, box, _, theirs = hub
    web = app_row(box, "web")
    c = as_user(client, world, "collaborator_rw")
    w = world.a.project.pk
    junk = ["x", "99999999999999999999", "a\x00b", "nan"]
    fields = ("name", "package_type", "sync", "compute_instance", "repository", "ref", "path", "chart")
    fields += ("chart_version", "values_file", "values", "revision", "confirm_name", "q", "state", "instance")
    for value in junk:
        data = dict.fromkeys(fields, value)
        for url in (
            f"/w/{w}/applications/new/",
            f"/applications/{web.pk}/update/",
            f"/applications/{web.pk}/rollback/",
            f"/applications/{web.pk}/retry/",
            f"/applications/{web.pk}/delete/",
            f"/w/{w}/integrations/repositories/new/",
        ):
            assert c.post(url, data).status_code < 500, (url, value)
        for url in (
            f"/w/{w}/applications/",
            f"/applications/{web.pk}/",
            f"/w/{w}/integrations/repositories/",
        ):
            query = {"page": value, "refresh": value, "checking": value, "repository": value} | data
            assert c.get(url, query).status_code == 200, (url, value)
    deep = "a:\n" + "".join("  " * i + "- \n" for i in range(200))
    response = c.post(
        f"/w/{w}/applications/new/",
        {
            "name": "deep",
            "package_type": "helm",
            "sync": "upload",
            "compute_instance": box.pk,
            "values": deep,
            "files": [_upload("c.tgz", b"\x1f\x8b")],
        },
    )
    assert response.status_code == 400
    assert c.post(f"/w/{w}/applications/new/", {"compute_instance": theirs.pk}).status_code == 400
