"""Applications' sources from Git (catalog/sources/git.py) against a real ``git http-backend``: a branch,
a tag, a commit (recorded), a path; credentials on and off; symlinks never followed; unreachable and
refused addresses."""

from __future__ import annotations

import socket

import pytest

from catalog import sources
from catalog.models import ArtifactSync, CatalogApplication, PackageType, Repository
from catalog.sources import git as git_source
from tests.support.integration_servers import GIT_PASSWORD, GIT_USER

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  v: {value!r}\n"


def _repository(url: str, **extra) -> Repository:
    return Repository(kind="git", url=url, name="r", **extra)


def _source(repository: Repository, **extra) -> CatalogApplication:
    return CatalogApplication(
        package_type=PackageType.YAML, sync=ArtifactSync.REPOSITORY, repository=repository, **extra
    )


def _render(source):
    return sources.render(source, release="app", namespace="ns")


def _names(rendered):
    return sorted((o["kind"], o["metadata"]["name"], o.get("data", {}).get("v")) for o in rendered.objects)


def test_yaml_from_git_at_a_branch_a_tag_and_a_commit(git_server):
    repo = git_server.create_repository("app")
    first = repo.commit(
        {"deploy/a.yaml": CM.format(name="a", value="1"), "deploy/notes.txt": "ignored", "README.md": "x"},
        "first",
    )
    repo.tag("v1", first)
    second = repo.commit({"deploy/a.yaml": CM.format(name="a", value="2"), "deploy/sub/b.yml": CM.format(
        name="b", value="2")}, "second")  # fmt: skip
    repo.commit({"deploy/a.yaml": CM.format(name="a", value="3")}, "other branch", branch="next")
    repository = _repository(repo.url, path="deploy")

    head = _render(_source(repository))  # no ref: the remote HEAD (main)
    assert head.commit == second
    assert _names(head) == [("ConfigMap", "a", "2"), ("ConfigMap", "b", "2")]
    tagged = _render(_source(repository, ref="v1"))
    assert tagged.commit == first and _names(tagged) == [("ConfigMap", "a", "1")]
    assert tagged.digest != head.digest
    branch = _render(_source(repository, ref="next"))
    assert _names(branch)[0] == ("ConfigMap", "a", "3")
    by_commit = _render(_source(repository, ref=first))  # not a tip: the history is fetched
    assert by_commit.commit == first and _names(by_commit) == [("ConfigMap", "a", "1")]
    one_file = _render(_source(repository, ref=second, path="deploy/sub/b.yml"))
    assert _names(one_file) == [("ConfigMap", "b", "2")]
    # the repository's default ref is used when the source gives none
    repository.default_ref = "v1"
    assert _render(_source(repository)).commit == first

    with pytest.raises(sources.FetchFailed, match="the branch or tag 'nope' does not exist"):
        _render(_source(repository, ref="nope"))
    with pytest.raises(sources.PackageRefused, match="missing does not exist at commit"):
        _render(_source(repository, ref="main", path="missing"))
    with pytest.raises(sources.FetchFailed, match="not in the repository"):
        _render(_source(repository, ref="0" * 40))


def test_cluster_scoped_objects_from_git_are_refused_by_name(git_server):
    repo = git_server.create_repository("hostile")
    repo.commit({"rbac.yaml": "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\n"
                 "metadata:\n  name: admin-again\n"}, "c")  # fmt: skip
    with pytest.raises(sources.PackageRefused) as refused:
        _render(_source(_repository(repo.url)))
    assert refused.value.errors["files"] == [
        "ClusterRole admin-again (rbac.yaml) is cluster-scoped: applications may only create objects in "
        "their namespace"
    ]


def test_symlinks_are_never_followed(git_server):
    repo = git_server.create_repository("links")
    repo.commit({"deploy/a.yaml": CM.format(name="a", value="1")}, "first")
    # a link to a file outside the repository, and a link to a directory, committed as links
    (repo.work / "deploy" / "passwd.yaml").symlink_to("/etc/passwd")
    (repo.work / "linked").symlink_to("deploy")
    from tests.support.git_server import git

    git("add", "deploy/passwd.yaml", "linked", cwd=repo.work)
    git("commit", "-qm", "links", cwd=repo.work)
    git("push", "-q", "origin", "main", cwd=repo.work)
    repository = _repository(repo.url)

    rendered = _render(_source(repository, path="deploy"))
    assert _names(rendered) == [("ConfigMap", "a", "1")]
    assert rendered.notes == ["deploy/passwd.yaml is a symbolic link: skipped (links are not followed)"]
    tree = git_source.fetch(repository, path="deploy")
    assert tree.notes == ["deploy/passwd.yaml is a symbolic link: skipped (links are not followed)"]
    with pytest.raises(sources.PackageRefused, match="linked is a symbolic link: links are not followed"):
        _render(_source(repository, path="linked"))
    with pytest.raises(sources.PackageRefused, match=r"'\.\.' is not allowed"):
        _render(_source(repository, path="deploy/../.."))


def test_credentials_on_and_off(git_server_auth, caplog):
    repo = git_server_auth.create_repository("private")
    head = repo.commit({"a.yaml": CM.format(name="a", value="1")}, "only")
    good = _repository(repo.url, auth="basic", username=GIT_USER, credential=GIT_PASSWORD)
    assert _render(_source(good)).commit == head
    assert (GIT_USER, 200) in [(seen.user, seen.status) for seen in git_server_auth.requests_seen]

    wrong = _repository(repo.url, auth="basic", username=GIT_USER, credential=GIT_PASSWORD + "x")
    with pytest.raises(sources.FetchFailed) as failed:
        _render(_source(wrong))
    assert str(failed.value) == (
        f"Git repository {repo.url}: 401 Unauthorized: the credential is missing or wrong"
    )
    with pytest.raises(sources.FetchFailed, match="401 Unauthorized"):
        _render(_source(_repository(repo.url)))  # anonymous


def test_unreachable_refused_and_unsupported_addresses(git_server, settings):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(sources.FetchFailed) as failed:
        _render(_source(_repository(f"http://127.0.0.1:{port}/app.git")))
    assert "connection was refused" in str(failed.value)
    with pytest.raises(sources.FetchFailed, match="404 Not Found"):
        _render(_source(_repository(f"{git_server.url}/nope.git")))
    with pytest.raises(sources.FetchFailed, match="does not resolve"):
        _render(_source(_repository("https://no-such-host.invalid/app.git")))

    settings.PAAS_OUTBOUND_ALLOW_LOOPBACK = False  # production: the platform's own host is refused
    with pytest.raises(sources.FetchFailed, match=r"outbound-address policy: 127\.0\.0\.1 is a"):
        _render(_source(_repository(f"{git_server.url}/app.git")))

    for url in ("file:///etc", "/srv/git/app.git", "ssh://git@example.com/app.git"):
        with pytest.raises(sources.PackageRefused):
            _render(_source(_repository(url)))


def test_git_over_ssh_with_a_key_and_known_hosts(git_server, settings):
    from tests.support.ssh_git_server import SshGitServer

    repo = git_server.create_repository("over-ssh")
    first = repo.commit({"deploy/a.yaml": CM.format(name="a", value="1")}, "first")
    repo.tag("v1", first)
    head = repo.commit({"deploy/a.yaml": CM.format(name="a", value="2")}, "second")
    with SshGitServer(git_server.root) as ssh:
        repository = _repository(ssh.url("over-ssh"), auth="ssh_key", credential=ssh.client_key_text,
                                 ssh_known_hosts=ssh.known_hosts_line, path="deploy")  # fmt: skip
        rendered = _render(_source(repository))
        assert rendered.commit == head and _names(rendered) == [("ConfigMap", "a", "2")]
        assert _render(_source(repository, ref="v1")).commit == first
        assert _render(_source(repository, ref=first)).commit == first
        assert ssh.auth_attempts[-1] == ("git", True)
        assert ssh.commands[-1] == "git-upload-pack '/over-ssh.git'"

        other_key = SshGitServer(git_server.root)  # another host key and client key, never started
        impostor = f"[127.0.0.1]:{ssh.port} {other_key.host_key.get_name()} {other_key.host_key.get_base64()}"
        stranger = _repository(repository.url, auth="ssh_key", credential=ssh.client_key_text,
                               ssh_known_hosts=impostor)  # fmt: skip
        with pytest.raises(sources.FetchFailed, match="is not the one in the repository's known hosts"):
            _render(_source(stranger))
        unknown = _repository(repository.url, auth="ssh_key", credential=ssh.client_key_text)
        with pytest.raises(sources.FetchFailed, match=r"no host key for 127\.0\.0\.1"):
            _render(_source(unknown))
        wrong_key = _repository(repository.url, auth="ssh_key", credential=other_key.client_key_text,
                                ssh_known_hosts=ssh.known_hosts_line)  # fmt: skip
        with pytest.raises(sources.FetchFailed, match="the SSH key was refused"):
            _render(_source(wrong_key))
        assert ("git", False) in ssh.auth_attempts
        not_a_key = _repository(repository.url, auth="ssh_key", credential="hunter2",
                                ssh_known_hosts=ssh.known_hosts_line)  # fmt: skip
        with pytest.raises(sources.PackageRefused, match="not an SSH private key"):
            _render(_source(not_a_key))
        settings.PAAS_OUTBOUND_ALLOW_LOOPBACK = False
        with pytest.raises(sources.FetchFailed, match="refused by the outbound-address policy"):
            _render(_source(repository))
