"""The application catalog through the API (``/api/v1/application-catalog/``): who publishes where, who
sees what (published and shared only), bad input as 400 with field messages, other orgs as missing."""

from catalog.models import CatalogApplication, Repository
from paas.models import AuditEvent

URL = "/api/v1/application-catalog/"


def _repository(*, org=None, project=None, name="charts", kind=Repository.Kind.GIT, **extra):
    return Repository.objects.create(
        org=org,
        project=project,
        name=name,
        display_name=name,
        kind=kind,
        url=f"https://git.example.com/{name}.git" if kind == "git" else f"https://charts.example.com/{name}",
        **extra,
    )


def _git_item(api, user, source, **extra):
    body = {
        "name": "web",
        "display_name": "Web",
        "package_type": "yaml",
        "sync": "repository",
        "repository": source.pk,
        "ref": "main",
        "path": "deploy",
        "readme": "# Web\n\nA web server.",
        **extra,
    }
    return api.as_user(user).post(URL, body, format="json")


def test_org_admin_publishes_in_a_project_and_its_users_see_it_once_published(world, api):
    a = world.a
    repository = _repository(org=a.org, project=a.project)
    created = _git_item(api, a.users["org_admin"], repository, project=a.project.pk)
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["scope"] == str(a.project) and body["published"] is False
    assert "<h3>Web</h3>" in body["readme_html"] and body["allowed_actions"] == ["delete", "edit", "share"]
    assert AuditEvent.objects.filter(action="catalogapplication.create", target_id=str(body["id"])).exists()

    member = api.as_user(a.users["collaborator_ro"])
    listed = member.get(f"{URL}?project={a.project.pk}").json()
    assert listed["count"] == 0  # not published yet
    published = api.as_user(a.users["org_admin"]).post(f"{URL}{body['id']}/publish/", {}, format="json")
    assert published.status_code == 200 and published.json()["published"] is True
    listed = api.as_user(a.users["collaborator_ro"]).get(f"{URL}?project={a.project.pk}").json()
    assert [i["name"] for i in listed["results"]] == ["web"]
    item = api.as_user(a.users["collaborator_ro"]).get(f"{URL}{body['id']}/").json()
    assert item["allowed_actions"] == [] and "files" not in item
    # Readers may not change it; another org does not see it at all.
    assert (
        api.as_user(a.users["collaborator_rw"]).patch(f"{URL}{body['id']}/", {"description": "x"}).status_code
        == 403
    )
    outsider = api.as_user(world.b.users["org_admin"])
    assert outsider.get(f"{URL}{body['id']}/").status_code == 404
    assert outsider.delete(f"{URL}{body['id']}/").status_code == 404
    assert outsider.get(f"{URL}?project={a.project.pk}").status_code == 404
    # An update keeps the name and scope; a delete removes it.
    admin = api.as_user(a.users["org_admin"])
    patched = admin.patch(f"{URL}{body['id']}/", {"ref": "v2", "values": "replicas: 2\n"}, format="json")
    assert patched.status_code == 200 and patched.json()["ref"] == "v2"
    assert admin.delete(f"{URL}{body['id']}/").status_code == 204
    assert not CatalogApplication.objects.filter(pk=body["id"]).exists()


def test_bad_input_is_400_with_field_messages(world, api):
    a = world.a
    git = _repository(org=a.org, project=a.project)
    helm = _repository(org=a.org, project=a.project, name="helmrepo", kind=Repository.Kind.HELM)
    foreign = _repository(org=world.b.org, project=world.b.project, name="theirs")
    admin = a.users["org_admin"]
    cases = [
        ({"values": "a: [unclosed"}, "values"),
        ({"values": "- just\n- a list\n"}, "values"),
        ({"repository": 999999}, "repository"),
        ({"repository": foreign.pk}, "repository"),
        ({"repository": helm.pk}, "repository"),  # YAML is not in a Helm chart repository
        ({"name": "Not A Slug"}, "name"),
        ({"package_type": "zip"}, "package_type"),
        ({"icon_url": "file:///etc/passwd"}, "icon_url"),
        ({"sync": "upload", "repository": None, "files": {}}, "files"),
        ({"package_type": "helm", "repository": helm.pk, "chart": ""}, "chart"),
        ({"path": "../../etc"}, "path"),
        ({"path": "/etc/passwd"}, "path"),
        ({"ref": "main; rm -rf /"}, "ref"),
        ({"package_type": "helm", "chart": "web", "chart_version": "1.0 --set x"}, "chart_version"),
    ]
    missing = {}
    for extra, field in cases:
        response = _git_item(api, admin, git, project=a.project.pk, **extra)
        assert response.status_code == 400, (extra, response.content)
        fields = response.json()["error"]["fields"]
        assert field in fields, (extra, fields)
        if extra.get("repository") in (999999, foreign.pk):
            missing[extra["repository"]] = fields["repository"][0].replace(str(extra["repository"]), "N")
    # Another org's repository reads exactly like a missing one.
    assert missing[999999] == missing[foreign.pk] and "does not exist" in missing[999999]
    assert not CatalogApplication.objects.exists()
    # A duplicate name in the same scope.
    assert _git_item(api, admin, git, project=a.project.pk).status_code == 201
    again = _git_item(api, admin, git, project=a.project.pk)
    assert again.status_code == 400 and "name" in again.json()["error"]["fields"]


def test_scopes_who_may_publish_where(world, api):
    a = world.a
    system_repo = _repository(name="public", system_sharing="all")
    org_repo = _repository(org=a.org, name="orgwide")
    # Members of a workspace do not publish; PaaS admins of the project publish only there.
    ro = _git_item(api, a.users["workspace_admin"], system_repo, project=a.project.pk)
    assert ro.status_code == 400 and "project" in ro.json()["error"]["fields"]
    assert _git_item(api, a.users["paas_admin_project"], org_repo, org=a.org.pk).status_code == 400
    # Org admins publish org-wide; the system scope is the operators'.
    org_item = _git_item(api, a.users["org_admin"], org_repo, org=a.org.pk)
    assert org_item.status_code == 201, org_item.content
    assert org_item.json()["scope"] == f"{a.org.name} (organization)"
    refused = _git_item(api, a.users["org_admin"], system_repo, name="sys")
    assert refused.status_code == 403
    system = _git_item(api, world.operator, system_repo, name="sys", published=True)
    assert system.status_code == 201, system.content
    # A system item may not pull from an org's repository.
    bad = _git_item(api, world.operator, org_repo, name="sys2")
    assert bad.status_code == 400 and "repository" in bad.json()["error"]["fields"]

    # Sharing: the org item with the spare project only; the system item with org A only.
    admin = api.as_user(a.users["org_admin"])  # the one client, authenticated as each user in turn
    admin.post(f"{URL}{org_item.json()['id']}/publish/", {}, format="json")
    shared = admin.post(
        f"{URL}{org_item.json()['id']}/share/",
        {"sharing": "selected", "projects": [a.spare_project.pk]},
        format="json",
    )
    assert shared.status_code == 200 and shared.json()["shared_projects"] == [a.spare_project.pk]
    cross = admin.post(
        f"{URL}{org_item.json()['id']}/share/",
        {"sharing": "selected", "projects": [world.b.project.pk]},
        format="json",
    )
    assert cross.status_code == 400
    assert admin.post(
        f"{URL}{system.json()['id']}/share/", {"sharing": "all"}, format="json"
    ).status_code in (
        403,
        404,
    )
    shared = api.as_user(world.operator).post(
        f"{URL}{system.json()['id']}/share/", {"sharing": "selected", "orgs": [a.org.pk]}, format="json"
    )
    assert shared.status_code == 200 and shared.json()["shared_orgs"] == [a.org.pk], shared.content

    def names(user, project):
        response = api.as_user(user).get(f"{URL}?project={project.pk}")
        assert response.status_code == 200, response.content
        return sorted(i["name"] for i in response.json()["results"])

    assert names(a.users["collaborator_ro"], a.project) == ["sys"]
    assert names(a.users["org_admin"], a.spare_project) == ["sys", "web"]
    assert names(world.b.users["collaborator_ro"], world.b.project) == []
    assert api.as_user(world.b.users["org_admin"]).get(f"{URL}{system.json()['id']}/").status_code == 404
