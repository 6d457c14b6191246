"""The developer hub's Integrations pages through Django's test client: a workspace's Repositories (the
list of those it may use, new, edit with the write-only credential, the connectivity check and its
result, delete; file:// and local paths refused on the form) and the Container registries delivered to
it (read-only; administrators are sent to the studio). Writes go through ``catalog.repositories``;
the check's task (``catalog.tasks.repository_check``) is run here as a worker would run it."""

import pytest

from catalog import tasks as catalog_tasks
from catalog.models import ContainerRegistry, Repository
from tests.support.roles import user_for

SECRET = "s3cret-token-never-shown"


def as_user(client, world, who: str):
    client.logout()
    client.force_login(user_for(world, who))
    return client


def repo_row(org, project, name: str, **fields) -> Repository:
    return Repository.objects.create(
        org=org,
        project=project,
        name=name,
        display_name=fields.pop("display_name", name.title()),
        kind=fields.pop("kind", "git"),
        url=fields.pop("url", f"http://127.0.0.1:9/{name}.git"),  # loopback: allowed in the test profile
        **fields,
    )


@pytest.fixture
def repos(world):
    own = repo_row(world.a.org, world.a.project, "own-repo", auth="token", credential=SECRET)
    shared = repo_row(world.a.org, world.a.spare_project, "spare-repo", sharing="all")
    hidden = repo_row(world.a.org, world.a.spare_project, "spare-private")
    theirs = repo_row(world.b.org, world.b.project, "their-repo")
    return world, own, shared, hidden, theirs


def test_repositories_list_and_who_may_change_them(repos, client):
    world, own, shared, _hidden, theirs = repos
    base = f"/w/{world.a.project.pk}/integrations/repositories/"
    ro = as_user(client, world, "collaborator_ro")
    landing = ro.get(f"/w/{world.a.project.pk}/").content.decode()
    assert f'href="{base}">Repositories</a>' in landing and "Container registries</a>" in landing
    page = ro.get(base).content.decode()
    assert 'data-repository="own-repo"' in page and 'data-repository="spare-repo"' in page
    assert "spare-private" not in page and "their-repo" not in page
    assert "+ New Repository" not in page and "Edit own-repo" not in page and "Check own-repo" not in page
    assert SECRET not in page
    assert ro.get(f"{base}new/").status_code == 403
    assert (
        ro.post(f"{base}new/", {"name": "x", "kind": "git", "url": "http://127.0.0.1:9/x"}).status_code == 403
    )
    for path in ("", "check/", "delete/"):
        assert ro.post(f"/repositories/{own.pk}/{path}", {"confirm_name": "own-repo"}).status_code == 403, (
            path
        )
    assert Repository.objects.filter(pk=own.pk).exists()

    rw = as_user(client, world, "collaborator_rw")
    rw_page = rw.get(base).content.decode()
    assert "+ New Repository" in rw_page and 'aria-label="Edit own-repo"' in rw_page
    assert 'aria-label="Edit spare-repo"' not in rw_page  # another workspace's, shared: used, not changed
    assert rw.get(f"/repositories/{shared.pk}/").status_code in (403, 404)
    assert rw.get(f"/repositories/{theirs.pk}/").status_code == 404
    assert rw.post(f"/repositories/{theirs.pk}/delete/", {"confirm_name": "their-repo"}).status_code == 404
    assert as_user(client, world, "outsider").get(base).status_code == 404


def test_new_repository_refuses_local_urls_and_edit_keeps_the_credential(repos, client):
    world, own, *_ = repos
    c = as_user(client, world, "collaborator_rw")
    new = f"/w/{world.a.project.pk}/integrations/repositories/new/"
    form = c.get(new).content.decode()
    assert "New Repository" in form and "Git" in form and "Helm" in form
    base = {"name": "mine", "kind": "git", "auth": "none", "sharing": "none"}
    for url in ("file:///etc/passwd", "/srv/git/repo.git"):
        refused = c.post(new, base | {"url": url})
        assert refused.status_code == 400, url
        assert 'id="id_url_error"' in refused.content.decode(), url  # the message is beside the URL
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nnot-a-key-" + SECRET + "\n-----END OPENSSH PRIVATE KEY-----\n"
    ssh = c.post(
        new,
        base
        | {"auth": "ssh_key", "url": "ssh://git@127.0.0.1:9/mine.git", "ssh_key": key, "credential": "x"},
    )
    assert ssh.status_code == 400 and "Please correct" in ssh.content.decode()
    assert SECRET not in ssh.content.decode()  # a private key typed is never sent back, even with errors
    assert not Repository.objects.filter(name="mine").exists()
    done = c.post(new, base | {"url": "http://127.0.0.1:9/mine.git", "default_ref": "main"})
    assert done.status_code == 302, done.content.decode()[:3000]
    created = Repository.objects.get(name="mine")
    assert (created.project_id, created.default_ref) == (world.a.project.pk, "main")

    edit = f"/repositories/{own.pk}/"
    shown = c.get(edit).content.decode()
    assert SECRET not in shown and "one is stored" in shown
    kept = c.post(
        edit,
        {
            "display_name": "Own",
            "kind": "git",
            "url": own.url,
            "auth": "token",
            "sharing": "none",
            "credential": "",
        },
    )
    assert kept.status_code == 302, kept.content.decode()[:3000]
    own.refresh_from_db()
    assert own.credential.reveal() == SECRET and own.display_name == "Own"
    replaced = c.post(
        edit, {"kind": "git", "url": own.url, "auth": "token", "sharing": "none", "credential": "new-token"}
    )
    assert replaced.status_code == 302
    own.refresh_from_db()
    assert own.credential.reveal() == "new-token"
    local = c.post(edit, {"kind": "git", "url": "file:///tmp/x", "auth": "none", "sharing": "none"})
    assert local.status_code == 400 and 'id="id_url_error"' in local.content.decode()


def test_check_shows_the_result_and_delete_asks_for_the_name(repos, client, settings):
    world, own, *_ = repos
    Repository.objects.filter(pk=own.pk).update(auth="none", credential="")
    c = as_user(client, world, "collaborator_rw")
    base = f"/w/{world.a.project.pk}/integrations/repositories/"
    assert 'data-check="never"' in c.get(base).content.decode()
    checked = c.post(f"/repositories/{own.pk}/check/")
    assert checked.status_code == 302 and checked.url.startswith(f"{base}?repository={own.pk}&checking=")
    waiting = c.get(checked.url).content.decode()
    assert 'hx-trigger="every 2s"' in waiting  # polls until the worker stored the result
    catalog_tasks.repository_check(own.pk)  # what the agent's worker runs
    result = c.get(checked.url).content.decode()
    assert 'data-check="failed"' in result and 'hx-trigger="every 2s"' not in result
    own.refresh_from_db()
    assert own.check_message and own.check_message in result  # what failed, in words

    # Where the check runs from: a datacenter's agent, for those who may read the inventory (as the API).
    from inventory.models import Datacenter

    east = Datacenter.objects.create(name="east", display_name="East", kind="data_center", credentials="x")
    assert 'name="datacenter"' not in c.get(base).content.decode()  # members pick no datacenter
    assert (
        "flash-error"
        in c.post(f"/repositories/{own.pk}/check/", {"datacenter": east.pk}, follow=True).content.decode()
    )
    admin = as_user(client, world, "org_admin")
    assert f'<option value="{east.pk}">East</option>' in admin.get(base).content.decode()
    from_east = admin.post(f"/repositories/{own.pk}/check/", {"datacenter": east.pk})
    assert from_east.status_code == 302 and "checking=" in from_east.url
    assert (
        "flash-error"
        in admin.post(f"/repositories/{own.pk}/check/", {"datacenter": "x"}, follow=True).content.decode()
    )
    c = as_user(client, world, "collaborator_rw")

    wrong = c.post(f"/repositories/{own.pk}/delete/", {"confirm_name": "nope"})
    assert wrong.status_code == 400 and "Type own-repo to confirm." in wrong.content.decode()
    assert c.post(f"/repositories/{own.pk}/delete/", {"confirm_name": "own-repo"}).status_code == 302
    assert not Repository.objects.filter(pk=own.pk).exists()


def test_container_registries_are_listed_read_only(world, client):
    def registry(name, **scope):
        return ContainerRegistry.objects.create(
            name=name, display_name=name.title(), provider="jfrog", endpoint=f"{name}.example.test", **scope
        )

    registry("platform-hub", system_sharing="all")
    registry("team-reg", org=world.a.org, project=world.a.project, credential=SECRET)
    registry("org-b-reg", org=world.b.org, project=world.b.project)
    base = f"/w/{world.a.project.pk}/integrations/registries/"
    ro = as_user(client, world, "collaborator_ro").get(base).content.decode()
    assert 'data-registry="platform-hub"' in ro and 'data-registry="team-reg"' in ro
    assert "org-b-reg" not in ro and SECRET not in ro
    assert "Manage in the studio" not in ro and "https://team-reg.example.test" in ro
    admin = as_user(client, world, "org_admin").get(base).content.decode()
    assert 'data-registry="team-reg"' in admin
    assert 'href="/studio/catalog/containerregistry/">Manage in the studio</a>' in admin
