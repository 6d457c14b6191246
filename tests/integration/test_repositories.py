"""Repository services and selectors (catalog/repositories.py, catalog/integration_selectors.py,
catalog/tasks.py): who may add, see, change, share and delete a repository in each scope, the outbound
policy on URLs, the write-only credential, and the connectivity check routed to the datacenter's agent
and run against real servers."""

from __future__ import annotations

import pytest
from django_q.models import OrmQ

from catalog import repositories, sources, tasks
from catalog.integration_selectors import (
    can_manage_repository,
    repositories_for_project,
    repository_get_for,
    repository_list_for,
)
from catalog.models import CatalogApplication, Repository
from inventory import services as inventory_services
from paas import authz
from paas.audit import AuditEvent
from paas.errors import Forbidden, NotFound, ValidationFailed
from tests.support.integration_servers import (
    CHART_PASSWORD,
    CHART_USER,
    GIT_PASSWORD,
    GIT_USER,
    REGISTRY_PULLER,
    REGISTRY_PULLER_PASSWORD,
)
from tests.support.support import grant_support

pytestmark = pytest.mark.django_db


def _git(actor, *, project=None, org=None, name="app", url="https://git.example.com/app.git", **extra):
    return repositories.repository_create(actor=actor, project=project, org=org, name=name, kind="git",
                                          url=url, **extra)  # fmt: skip


@pytest.fixture
def example_resolves(monkeypatch):
    """git.example.com resolves to a public address (no DNS here); the policy still checks it."""
    import ipaddress

    from paas import outbound

    real = outbound.resolve

    def resolve(host, port):
        if host.endswith("example.com"):
            return [ipaddress.ip_address("93.184.215.14")]
        return real(host, port)

    monkeypatch.setattr(outbound, "resolve", resolve)


@pytest.mark.parametrize(
    ("who", "allowed"),
    [
        ("operator", False),  # not inside an org without a support access
        ("operator_read", False),
        ("operator_admin", True),
        ("org_admin", True),
        ("paas_admin_project", True),
        ("workspace_admin", True),
        ("collaborator_rw", True),
        ("collaborator_ro", False),
        ("outsider", False),
    ],
)
def test_who_may_add_a_workspace_repository(world, example_resolves, who, allowed):
    from tests.support.roles import user_for

    actor = user_for(world, who)
    if not allowed:
        with pytest.raises(Forbidden):
            _git(actor, project=world.a.project)
        assert not Repository.objects.exists()
        return
    repository = _git(actor, project=world.a.project)
    assert repository.org == world.a.org and repository.project == world.a.project
    assert can_manage_repository(actor, repository)
    assert repository_get_for(actor, repository.pk) == repository
    event = AuditEvent.objects.get(action="repository.create")
    support = {"support_access": event.details["support_access"]} if who == "operator_admin" else {}
    assert event.details == {"kind": "git", "url": "https://git.example.com/app.git", "auth": "none",
                             "has_credential": False, **support}  # fmt: skip


def test_org_and_system_scopes_and_what_each_user_sees(world, example_resolves):
    a, b = world.a, world.b
    with pytest.raises(Forbidden):
        _git(a.users["workspace_admin"], org=a.org, name="org-wide")
    org_repo = _git(a.users["org_admin"], org=a.org, name="org-wide")
    with pytest.raises(Forbidden):
        _git(a.users["org_admin"], name="system")
    system_repo = _git(world.operator, name="system")
    team_repo = _git(a.users["workspace_admin"], project=a.project, name="team")
    b_repo = _git(b.users["org_admin"], project=b.project, name="team")

    # a workspace member sees their workspace's repositories; org and system ones once shared
    member = a.users["collaborator_ro"]
    assert set(repository_list_for(member)) == {team_repo}
    assert set(repositories_for_project(a.project)) == {team_repo}
    repositories.repository_share(actor=a.users["org_admin"], repository=org_repo, sharing="all")
    repositories.repository_share(
        actor=world.operator, repository=system_repo, sharing="selected", orgs=[a.org]
    )
    assert set(repository_list_for(member)) == {team_repo, org_repo, system_repo}
    assert set(repositories_for_project(a.spare_project)) == {org_repo, system_repo}
    assert set(repositories_for_project(b.project)) == {b_repo}
    # the org admin sees every repository of the org; the operator the system's, and an org's only
    # through a support access
    assert set(repository_list_for(a.users["org_admin"])) == {team_repo, org_repo, system_repo}
    assert set(repository_list_for(world.operator)) == {system_repo}
    grant_support(operator=world.operator, org=b.org, level="read")
    authz.forget(world.operator)
    assert set(repository_list_for(world.operator)) == {system_repo, b_repo}
    # another org's member: the repository looks missing, and cannot be changed or checked
    outsider = b.users["org_admin"]
    assert team_repo not in repository_list_for(outsider)
    with pytest.raises(NotFound):
        repository_get_for(outsider, team_repo.pk)
    with pytest.raises(Forbidden):
        repositories.repository_update(actor=outsider, repository=team_repo, description="mine")
    with pytest.raises(Forbidden):
        repositories.repository_delete(actor=outsider, repository=team_repo)
    with pytest.raises(NotFound):
        repositories.repository_check(actor=outsider, repository=team_repo)
    # read-only members and org-scope repositories: seen, not changed
    assert not can_manage_repository(member, team_repo) and not can_manage_repository(member, org_repo)
    with pytest.raises(Forbidden):
        repositories.repository_update(actor=a.users["workspace_admin"], repository=org_repo, description="x")
    # sharing a workspace's repository with other workspaces is for PaaS/org admins
    with pytest.raises(Forbidden):
        repositories.repository_share(actor=a.users["workspace_admin"], repository=team_repo, sharing="all")
    with pytest.raises(ValidationFailed) as refused:
        repositories.repository_share(actor=a.users["org_admin"], repository=team_repo, sharing="selected",
                                      projects=[b.project])  # fmt: skip
    assert refused.value.fields["projects"][0].startswith("Sharing never crosses organizations")
    repositories.repository_share(actor=a.users["org_admin"], repository=team_repo, sharing="selected",
                                  projects=[a.spare_project])  # fmt: skip
    assert team_repo in repositories_for_project(a.spare_project)
    # names are unique per scope, not across scopes
    with pytest.raises(ValidationFailed, match="already exists"):
        _git(a.users["workspace_admin"], project=a.project, name="team")
    assert _git(a.users["org_admin"], project=a.spare_project, name="team").project == a.spare_project


@pytest.mark.parametrize(
    ("kind", "url", "message"),
    [
        ("git", "file:///srv/git/app.git", "local files and paths are never reached"),
        ("git", "/srv/git/app.git", "local files and paths are never reached"),
        ("helm", "./charts", "local files and paths are never reached"),
        ("oci", "file:///var/lib/registry", "local files and paths are never reached"),
        ("git", "http://169.254.169.254/latest/meta-data", "a cloud metadata address"),
        ("helm", "ftp://charts.example.com", "the scheme ftp:// is not allowed"),
        ("git", "https://user:secret@git.example.com/app.git", "never in the URL"),
        ("git", "ssh://git:pw@git.example.com/app.git", "never in the URL"),
        ("helm", "ssh://git.example.com/charts", "the scheme ssh:// is not allowed"),
        ("oci", "https://registry.example.com/charts", "oci://host[:port]/path"),
        ("oci", "oci://registry.example.com", "Name the path in the registry"),
    ],
)
def test_urls_refused(world, example_resolves, settings, kind, url, message):
    settings.PAAS_OUTBOUND_ALLOW_LOOPBACK = False
    with pytest.raises(ValidationFailed) as refused:
        repositories.repository_create(actor=world.operator, name="r", kind=kind, url=url)
    assert message in refused.value.fields["url"][0]
    assert "secret" not in str(refused.value.fields)


def test_loopback_is_refused_in_production(world, settings):
    settings.PAAS_OUTBOUND_ALLOW_LOOPBACK = False
    with pytest.raises(ValidationFailed, match="refused"):
        repositories.repository_create(
            actor=world.operator, name="r", kind="helm", url="http://127.0.0.1:8000"
        )


def test_the_credential_is_write_only(world, example_resolves):
    admin = world.a.users["workspace_admin"]
    with pytest.raises(ValidationFailed) as refused:
        _git(admin, project=world.a.project, auth="basic", username="bot")
    assert refused.value.fields == {"credential": ["Give the password or token."]}
    with pytest.raises(ValidationFailed) as refused:
        _git(admin, project=world.a.project, auth="ssh_key", credential="-----BEGIN OPENSSH PRIVATE KEY-----")
    assert refused.value.fields == {
        "auth": ["An SSH key goes with a Git ssh://… address, and an ssh://… address with an SSH key."]
    }
    secret = "s3cret-token-value"
    repository = _git(admin, project=world.a.project, auth="basic", username="bot", credential=secret)
    assert Repository.objects.get(pk=repository.pk).credential.reveal() == secret
    # kept when an update leaves it empty; replaced; cleared
    repositories.repository_update(actor=admin, repository=repository, credential="", description="d")
    assert Repository.objects.get(pk=repository.pk).credential.reveal() == secret
    repositories.repository_update(actor=admin, repository=repository, credential="new-token-value")
    assert Repository.objects.get(pk=repository.pk).credential.reveal() == "new-token-value"
    with pytest.raises(ValidationFailed, match="password or token"):
        repositories.repository_update(actor=admin, repository=repository, clear_credential=True)
    repositories.repository_update(actor=admin, repository=repository, clear_credential=True, auth="none")
    assert Repository.objects.get(pk=repository.pk).credential.reveal() == ""
    events = list(
        AuditEvent.objects.filter(action__startswith="repository.")
        .order_by("pk")
        .values_list("details", flat=True)
    )
    assert [e.get("credential") for e in events if "changed" in e] == [None, "replaced", "cleared"]
    assert secret not in str(events) and "new-token-value" not in str(events)
    repositories.repository_delete(actor=admin, repository=repository)
    assert not Repository.objects.filter(pk=repository.pk).exists()
    assert AuditEvent.objects.filter(action="repository.delete").exists()


def test_the_check_is_routed_to_the_agent_of_the_chosen_datacenter(
    world, example_resolves, django_capture_on_commit_callbacks
):
    op = world.operator
    dc = inventory_services.datacenter_create(actor=op, name="dc-a", kind="data_center",
                                              infrastructure_type="bare_metal")  # fmt: skip
    agent = inventory_services.agent_create(actor=op, name="dc-a", datacenter=dc)
    inventory_services.datacenter_agent_set(actor=op, datacenter=dc, agent=agent)
    repository = _git(world.a.users["workspace_admin"], project=world.a.project)
    OrmQ.objects.all().delete()
    with django_capture_on_commit_callbacks(execute=True):
        repositories.repository_check(
            actor=world.a.users["collaborator_ro"], repository=repository, datacenter=dc
        )
    (queued,) = OrmQ.objects.all()
    assert queued.key == "agent-dc-a"
    assert queued.task["func"] == "catalog.tasks.repository_check" and tuple(queued.task["args"]) == (
        repository.pk,
    )
    assert AuditEvent.objects.filter(action="repository.check_requested").exists()


def test_checks_against_real_servers(world, git_server_auth, chart_repo_auth, helm_cli, tmp_path, settings):
    settings.PAAS_HELM_BINARY = str(helm_cli.binary)
    from tests.support.helm_charts import write_chart

    admin = world.a.users["workspace_admin"]
    repo = git_server_auth.create_repository("app")
    head = repo.commit({"a.yaml": "x: 1\n"}, "c")
    git_repo = repositories.repository_create(actor=admin, project=world.a.project, name="git", kind="git",
                                              url=repo.url, auth="basic", username=GIT_USER,
                                              credential=GIT_PASSWORD)  # fmt: skip
    tasks.repository_check(git_repo.pk)
    git_repo.refresh_from_db()
    assert git_repo.check_ok is True and git_repo.checked_at is not None
    # what a deploy does with the stored (encrypted) credential
    source = CatalogApplication(
        package_type="yaml", sync="repository", repository=Repository.objects.get(pk=git_repo.pk)
    )
    with pytest.raises(sources.PackageRefused, match=r"a\.yaml: document 1, line 1: apiVersion is required"):
        sources.render(source, release="r", namespace="ns")
    assert (GIT_USER, 200) in [(seen.user, seen.status) for seen in git_server_auth.requests_seen]
    assert git_repo.check_message == f"reached: 1 branches, 0 tags; HEAD is at {head[:12]}"
    event = AuditEvent.objects.filter(action="repository.checked").latest("pk")
    assert event.details == {"ok": True, "message": git_repo.check_message}

    repositories.repository_update(actor=admin, repository=git_repo, credential=GIT_PASSWORD + "-wrong")
    git_repo.refresh_from_db()
    assert git_repo.check_ok is None  # a changed credential: the last check no longer says anything
    tasks.repository_check(git_repo.pk)
    git_repo.refresh_from_db()
    assert git_repo.check_ok is False
    assert (
        git_repo.check_message
        == f"Git repository {repo.url}: 401 Unauthorized: the credential is missing or wrong"
    )
    repositories.repository_update(
        actor=admin, repository=git_repo, default_ref="nope", credential=GIT_PASSWORD
    )
    tasks.repository_check(git_repo.pk)
    git_repo.refresh_from_db()
    assert git_repo.check_ok is False and "the branch or tag 'nope' does not exist" in git_repo.check_message

    chart_repo_auth.publish(helm_cli, write_chart(tmp_path, "hello", "0.1.0"))
    helm_repo = repositories.repository_create(actor=admin, project=world.a.project, name="helm", kind="helm",
                                               url=chart_repo_auth.url, auth="basic", username=CHART_USER,
                                               credential=CHART_PASSWORD)  # fmt: skip
    tasks.repository_check(helm_repo.pk)
    helm_repo.refresh_from_db()
    assert (helm_repo.check_ok, helm_repo.check_message) == (True, "reached: index.yaml lists 1 chart")
    stored = Repository.objects.get(pk=helm_repo.pk)
    rendered = sources.render(
        CatalogApplication(package_type="helm", sync="repository", repository=stored, chart="hello"),
        release="r",
        namespace="ns",
    )
    assert rendered.chart_version == "0.1.0" and rendered.objects[0]["metadata"]["name"] == "r-config"

    tasks.repository_check(10**9)  # deleted meanwhile: nothing happens


@pytest.mark.toolchain
def test_oci_check_through_the_token_flow(world, registry_token):
    admin = world.a.users["workspace_admin"]
    repository = repositories.repository_create(
        actor=admin, project=world.a.project, name="oci", kind="oci", url=f"oci://{registry_token.host}/empty",
        auth="basic", username=REGISTRY_PULLER, credential=REGISTRY_PULLER_PASSWORD,
    )  # fmt: skip
    tasks.repository_check(repository.pk)
    repository.refresh_from_db()
    assert repository.check_ok is True
    assert "answers; empty holds no chart itself" in repository.check_message
    repositories.repository_update(actor=admin, repository=repository, credential="wrong")
    tasks.repository_check(repository.pk)
    repository.refresh_from_db()
    assert repository.check_ok is False and "401 Unauthorized" in repository.check_message


def test_unreachable_check(world):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    repository = repositories.repository_create(
        actor=world.operator, name="down", kind="helm", url=f"http://127.0.0.1:{port}/charts"
    )
    tasks.repository_check(repository.pk)
    repository.refresh_from_db()
    assert repository.check_ok is False
    assert repository.check_message == (
        f"Helm repository http://127.0.0.1:{port}/charts (http://127.0.0.1:{port}/charts/index.yaml): "
        "the connection was refused (nothing listens there)"
    )


def test_git_over_ssh_repositories_and_their_check(world, git_server):
    from tests.support.ssh_git_server import SshGitServer

    admin = world.a.users["workspace_admin"]
    repo = git_server.create_repository("ssh-app")
    head = repo.commit({"a.yaml": "x: 1\n"}, "c")
    with SshGitServer(git_server.root) as ssh:
        fields = {
            "actor": admin,
            "project": world.a.project,
            "name": "ssh",
            "kind": "git",
            "url": ssh.url("ssh-app"),
        }
        with pytest.raises(ValidationFailed) as refused:
            repositories.repository_create(**fields, auth="ssh_key", credential=ssh.client_key_text)
        assert "ssh_known_hosts" in refused.value.fields
        with pytest.raises(ValidationFailed) as refused:
            repositories.repository_create(**fields, auth="ssh_key", credential=ssh.client_key_text,
                                           ssh_known_hosts="not a key line")  # fmt: skip
        assert refused.value.fields["ssh_known_hosts"][0].startswith("Known hosts: not a known_hosts line")
        with pytest.raises(ValidationFailed) as refused:
            repositories.repository_create(**fields, auth="ssh_key", credential="hunter2",
                                           ssh_known_hosts=ssh.known_hosts_line)  # fmt: skip
        assert refused.value.fields["credential"][0].startswith("Not an SSH private key")
        with pytest.raises(ValidationFailed) as refused:
            repositories.repository_create(**fields, auth="basic", username="u", credential="p")
        assert "url" in refused.value.fields
        repository = repositories.repository_create(
            **fields, auth="ssh_key", credential=ssh.client_key_text, ssh_known_hosts=ssh.known_hosts_line
        )
        assert AuditEvent.objects.get(action="repository.create").details["auth"] == "ssh_key"
        assert "PRIVATE KEY" not in str(list(AuditEvent.objects.values_list("details", flat=True)))
        tasks.repository_check(repository.pk)
        repository.refresh_from_db()
        assert (repository.check_ok, repository.check_message) == (
            True, f"reached: 1 branches, 0 tags; HEAD is at {head[:12]}"
        )  # fmt: skip
        assert ssh.auth_attempts[-1] == ("git", True)
