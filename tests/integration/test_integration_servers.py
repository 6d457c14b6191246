"""The test servers of issue 14 (applications from Git, Helm repositories and OCI registries), each
driven by the real client it stands in front of: git, the real helm v4, and plain HTTP for the
registry's token flow.  Each refusal sits next to a positive control."""

from __future__ import annotations

import subprocess

import pytest
import requests
import yaml

from tests.support.git_server import git, git_environment
from tests.support.helm_charts import write_chart
from tests.support.integration_servers import (
    CHART_PASSWORD,
    CHART_USER,
    GIT_PASSWORD,
    GIT_USER,
    REGISTRY_PASSWORD,
    REGISTRY_PULLER,
    REGISTRY_PULLER_PASSWORD,
    REGISTRY_USER,
)
from tests.support.registry import SERVICE, parse_bearer_challenge


def _directory(path):
    path.mkdir(parents=True)
    return str(path)


def _clone(url: str, target, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["git", "clone", "--quiet", *args, url, str(target)],
        env=git_environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )


# -- Git ------------------------------------------------------------------------------------------
def test_git_clone_anonymous_at_a_branch_and_a_tag(git_server, tmp_path):
    repo = git_server.create_repository("app")
    first = repo.commit({"deploy/app.yaml": "kind: ConfigMap\n", "README.md": "v1\n"}, "first")
    second = repo.commit({"deploy/app.yaml": None, "deploy/other.yaml": "kind: Secret\n"}, "second")
    repo.tag("v1", first)

    clone = _clone(repo.url, tmp_path / "head")
    assert clone.returncode == 0, clone.stderr
    assert git("rev-parse", "HEAD", cwd=tmp_path / "head").stdout.strip() == second
    assert sorted(p.name for p in (tmp_path / "head" / "deploy").iterdir()) == ["other.yaml"]

    tagged = _clone(repo.url, tmp_path / "tag", "--branch", "v1", "--depth", "1")
    assert tagged.returncode == 0, tagged.stderr
    assert git("rev-parse", "HEAD", cwd=tmp_path / "tag").stdout.strip() == first
    assert (tmp_path / "tag" / "deploy" / "app.yaml").read_text() == "kind: ConfigMap\n"

    missing = _clone(f"{git_server.url}/nope.git", tmp_path / "nope")
    assert missing.returncode != 0


def test_git_credentials_required_and_a_wrong_password_refused(git_server_auth, tmp_path):
    repo = git_server_auth.create_repository("private")
    head = repo.commit({"app.yaml": "kind: ConfigMap\n"}, "only")

    anonymous = _clone(repo.url, tmp_path / "anonymous")
    assert anonymous.returncode != 0
    assert "terminal prompts disabled" in anonymous.stderr or "Authentication failed" in anonymous.stderr

    wrong = _clone(git_server_auth.clone_url(repo, GIT_USER, GIT_PASSWORD + "x"), tmp_path / "wrong")
    assert wrong.returncode != 0
    assert "Authentication failed" in wrong.stderr
    assert not (tmp_path / "wrong" / "app.yaml").exists()

    good = _clone(git_server_auth.clone_url(repo, GIT_USER, GIT_PASSWORD), tmp_path / "good")
    assert good.returncode == 0, good.stderr
    assert git("rev-parse", "HEAD", cwd=tmp_path / "good").stdout.strip() == head
    statuses = [(seen.user, seen.status) for seen in git_server_auth.requests_seen]
    assert (None, 401) in statuses and (GIT_USER, 200) in statuses


def test_git_server_is_read_only_and_its_outage_fails_a_clone(git_server_auth, tmp_path):
    repo = git_server_auth.create_repository("app")
    repo.commit({"a.txt": "a\n"}, "first")
    url = git_server_auth.clone_url(repo, GIT_USER, GIT_PASSWORD)
    assert _clone(url, tmp_path / "work").returncode == 0
    (tmp_path / "work" / "b.txt").write_text("b\n")
    git("add", "b.txt", cwd=tmp_path / "work")
    git("commit", "-qm", "push attempt", cwd=tmp_path / "work")
    push = git("push", "origin", "HEAD:main", cwd=tmp_path / "work", check=False)
    assert (
        push.returncode != 0 and "403" in push.stderr
    )  # http.receivepack is off, even for an authenticated user

    git_server_auth.set_outage(503)
    down = _clone(url, tmp_path / "down")
    assert down.returncode != 0 and "503" in down.stderr
    git_server_auth.set_outage(None)
    assert _clone(url, tmp_path / "up").returncode == 0


# -- Helm chart repository ----------------------------------------------------------------------


@pytest.mark.toolchain
def test_helm_repository_anonymous_add_pull_and_template(helm_cli, chart_repo, tmp_path):
    assert "v4.3.2" in helm_cli.run("version", "--short").stdout
    chart = write_chart(tmp_path / "src", "hello", "0.1.0", values={"greeting": "hello"})
    archive = chart_repo.publish(helm_cli, chart)
    assert archive.name == "hello-0.1.0.tgz"
    entry = chart_repo.index()["entries"]["hello"][0]
    assert entry["version"] == "0.1.0" and entry["urls"] == [f"{chart_repo.url}/hello-0.1.0.tgz"]

    helm_cli.run("repo", "add", "local", chart_repo.url)
    helm_cli.run(
        "pull", "local/hello", "--version", "0.1.0", "--destination", _directory(tmp_path / "pulled")
    )
    pulled = tmp_path / "pulled" / "hello-0.1.0.tgz"
    assert pulled.read_bytes() == archive.read_bytes()

    rendered = helm_cli.run("template", "demo", str(pulled), "--set", "greeting=hi there").stdout
    (config_map,) = [doc for doc in yaml.safe_load_all(rendered) if doc]
    assert config_map["metadata"]["name"] == "demo-config"
    assert config_map["data"]["greeting"] == "hi there"

    missing = helm_cli.run("pull", "local/hello", "--version", "9.9.9", check=False)
    assert missing.returncode != 0


@pytest.mark.toolchain
def test_helm_repository_with_basic_auth(helm_cli, chart_repo_auth, tmp_path):
    chart_repo_auth.publish(helm_cli, write_chart(tmp_path / "src", "private", "1.2.3"))
    url = chart_repo_auth.url

    anonymous = helm_cli.run("repo", "add", "anon", url, check=False)
    assert anonymous.returncode != 0 and "401" in anonymous.stderr
    wrong = helm_cli.run(
        "repo", "add", "wrong", url, "--username", CHART_USER, "--password", "nope", check=False
    )
    assert wrong.returncode != 0 and "401" in wrong.stderr

    helm_cli.run(
        "repo", "add", "priv", url, "--username", CHART_USER, "--password-stdin", input=CHART_PASSWORD
    )
    helm_cli.run("pull", "priv/private", "--version", "1.2.3", "--destination", _directory(tmp_path / "out"))
    assert (tmp_path / "out" / "private-1.2.3.tgz").is_file()
    # the repository-less form a worker uses: credentials on the pull itself
    helm_cli.run(
        "pull", "private", "--repo", url, "--version", "1.2.3", "--username", CHART_USER,
        "--password", CHART_PASSWORD, "--destination", _directory(tmp_path / "direct"),
    )  # fmt: skip
    assert (tmp_path / "direct" / "private-1.2.3.tgz").is_file()
    rendered = helm_cli.run(
        "template", "demo", "private", "--repo", url, "--version", "1.2.3", "--username", CHART_USER,
        "--password", CHART_PASSWORD,
    ).stdout  # fmt: skip
    assert "name: demo-config" in rendered
    assert any(seen.user == CHART_USER and seen.status == 200 for seen in chart_repo_auth.requests_seen)


# -- the distribution registry ------------------------------------------------------------------
@pytest.mark.toolchain
def test_registry_htpasswd_basic_auth(registry_htpasswd):
    base = f"{registry_htpasswd.url}/v2/"
    anonymous = requests.get(base, timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Basic realm=")
    assert requests.get(base, auth=(REGISTRY_USER, "wrong"), timeout=10).status_code == 401
    ok = requests.get(base, auth=(REGISTRY_USER, REGISTRY_PASSWORD), timeout=10)
    assert ok.status_code == 200
    assert ok.headers["Docker-Distribution-API-Version"] == "registry/2.0"


@pytest.mark.toolchain
def test_registry_token_flow(registry_token):
    token_server = registry_token.token_server
    base = f"{registry_token.url}/v2/"
    challenged = requests.get(base, timeout=10)
    assert challenged.status_code == 401
    challenge = parse_bearer_challenge(challenged.headers["WWW-Authenticate"])
    assert challenge == {"realm": token_server.realm_url, "service": SERVICE}

    refused = requests.get(
        challenge["realm"], params={"service": SERVICE}, auth=(REGISTRY_USER, "x"), timeout=10
    )
    assert refused.status_code == 401
    issued = requests.get(
        challenge["realm"], params={"service": SERVICE}, auth=(REGISTRY_USER, REGISTRY_PASSWORD), timeout=10
    )
    assert issued.status_code == 200, issued.text
    token = issued.json()["token"]
    assert requests.get(base, headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code == 200

    head, payload, signature = token.split(".")
    tampered = f"{head}.{payload}.{signature[:-4]}AAAA"
    assert requests.get(base, headers={"Authorization": f"Bearer {tampered}"}, timeout=10).status_code == 401

    # a repository asks for its scope; a token granting nothing there is refused
    tags = f"{registry_token.url}/v2/charts/nothing/tags/list"
    scoped = requests.get(tags, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert scoped.status_code == 401
    assert parse_bearer_challenge(scoped.headers["WWW-Authenticate"])["scope"] == (
        "repository:charts/nothing:pull"
    )
    pull_token = requests.get(
        challenge["realm"],
        params={"service": SERVICE, "scope": "repository:charts/nothing:pull"},
        auth=(REGISTRY_PULLER, REGISTRY_PULLER_PASSWORD),
        timeout=10,
    ).json()["token"]
    unknown = requests.get(tags, headers={"Authorization": f"Bearer {pull_token}"}, timeout=10)
    assert unknown.status_code == 404  # authorised now: the repository does not exist
    assert unknown.json()["errors"][0]["code"] == "NAME_UNKNOWN"


@pytest.mark.toolchain
@pytest.mark.parametrize("auth", ["htpasswd", "token"])
def test_helm_push_and_pull_an_oci_chart(auth, request, helm_cli, tmp_path):
    registry = request.getfixturevalue(f"registry_{auth}")
    archive = helm_cli.package(write_chart(tmp_path / "src", f"oci-{auth}", "0.2.0"), tmp_path / "pkg")
    target = f"oci://{registry.host}/charts"

    refused = helm_cli.run("push", str(archive), target, "--plain-http", check=False)
    assert refused.returncode != 0
    assert "401" in refused.stderr or "basic credential not found" in refused.stderr, refused.stderr

    helm_cli.run(
        "registry", "login", registry.host, "--plain-http", "--username", REGISTRY_USER,
        "--password-stdin", input=REGISTRY_PASSWORD,
    )  # fmt: skip
    pushed = helm_cli.run("push", str(archive), target, "--plain-http")
    assert "Digest: sha256:" in pushed.stdout + pushed.stderr
    helm_cli.run("registry", "logout", registry.host)

    if auth == "token":  # a pull-only robot can pull but not push
        user, password = REGISTRY_PULLER, REGISTRY_PULLER_PASSWORD
    else:
        user, password = REGISTRY_USER, REGISTRY_PASSWORD
    out = tmp_path / "pulled"
    helm_cli.run(
        "pull", f"{target}/oci-{auth}", "--version", "0.2.0", "--plain-http", "--username", user,
        "--password", password, "--destination", _directory(out),
    )  # fmt: skip
    assert (out / f"oci-{auth}-0.2.0.tgz").read_bytes() == archive.read_bytes()
    # what a worker does: render straight from the registry, credentials on the command
    rendered = helm_cli.run(
        "template", "demo", f"{target}/oci-{auth}", "--version", "0.2.0", "--plain-http",
        "--username", user, "--password", password, "--set", "greeting=from-oci",
    ).stdout  # fmt: skip
    assert 'greeting: "from-oci"' in rendered
    if auth == "token":
        helm_cli.run(
            "registry", "login", registry.host, "--plain-http", "--username", user, "--password", password
        )
        denied = helm_cli.run(
            "push", str(archive), f"oci://{registry.host}/robot", "--plain-http", check=False
        )
        assert denied.returncode != 0 and "401" in denied.stderr, denied.stderr
        assert any(u == REGISTRY_PULLER and a for u, a in registry.token_server.issued)
