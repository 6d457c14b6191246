"""Helm charts as applications' sources (catalog/sources/helm.py, oci.py) with the real helm v4, a real
Helm chart repository and the real distribution registry: an uploaded chart, a chart repository with a
values file and overrides, an OCI chart through the Bearer token flow, credentials on and off, crds/ and
cluster-scoped templates refused by name, the lookup note, dependencies that are not vendored."""

from __future__ import annotations

import base64

import pytest

from catalog import sources
from catalog.models import ArtifactSync, CatalogApplication, PackageType, Repository
from tests.support.helm_charts import write_chart
from tests.support.integration_servers import (
    CHART_PASSWORD,
    CHART_USER,
    REGISTRY_PASSWORD,
    REGISTRY_PULLER,
    REGISTRY_PULLER_PASSWORD,
    REGISTRY_USER,
)

pytestmark = pytest.mark.toolchain

CRD = """apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names: {kind: Widget, plural: widgets}
  scope: Namespaced
  versions: [{name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}]
"""
GREETING = (
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-config\n"
    "data:\n  greeting: {{ .Values.greeting | quote }}\n  size: {{ .Values.size | quote }}\n"
)


@pytest.fixture(autouse=True)
def _helm(helm_binary, settings):
    settings.PAAS_HELM_BINARY = str(helm_binary)


def _source(sync=ArtifactSync.REPOSITORY, **fields) -> CatalogApplication:
    return CatalogApplication(package_type=PackageType.HELM, sync=sync, **fields)


def _render(source, **kwargs):
    return sources.render(source, release="demo", namespace="ns", **kwargs)


def _data(rendered):
    return {o["metadata"]["name"]: o.get("data") for o in rendered.objects}


def test_an_uploaded_chart_with_its_values_file_and_overrides(helm_cli, tmp_path):
    chart = write_chart(tmp_path / "src", "hello", "0.1.0", values={"greeting": "hello", "size": "s"},
                        templates={"cm.yaml": GREETING})  # fmt: skip
    (chart / "values-prod.yaml").write_text("greeting: prod\nsize: m\n")
    archive = helm_cli.package(chart, tmp_path / "pkg").read_bytes()
    files = {"hello-0.1.0.tgz": base64.b64encode(archive).decode()}
    sources.validate_upload("helm", files)

    plain = _render(_source(ArtifactSync.UPLOAD, files=files))
    assert _data(plain) == {"demo-config": {"greeting": "hello", "size": "s"}}
    assert plain.chart_version == "0.1.0" and plain.digest.startswith("sha256:") and plain.notes == []
    layered = _render(
        _source(ArtifactSync.UPLOAD, files=files, values_file="values-prod.yaml", values="size: xl\n")
    )
    assert _data(layered) == {"demo-config": {"greeting": "prod", "size": "xl"}}

    with pytest.raises(sources.PackageRefused, match="no such file in the chart"):
        _render(_source(ArtifactSync.UPLOAD, files=files, values_file="nope.yaml"))
    with pytest.raises(sources.PackageRefused, match="a values file is a path inside the chart"):
        _render(_source(ArtifactSync.UPLOAD, files=files, values_file="../../etc/passwd"))
    with pytest.raises(sources.PackageRefused, match="must be a YAML mapping"):
        _render(_source(ArtifactSync.UPLOAD, files=files, values="- a\n"))


def test_a_chart_repository_latest_and_pinned_versions_with_and_without_credentials(
    helm_cli, chart_repo, chart_repo_auth, tmp_path
):
    for version, greeting in (("0.1.0", "old"), ("0.2.0", "new"), ("0.3.0-rc.1", "pre")):
        chart = write_chart(tmp_path / version, "hello", version, values={"greeting": greeting, "size": "s"},
                            templates={"cm.yaml": GREETING})  # fmt: skip
        chart_repo.publish(helm_cli, chart)
    public = Repository(kind="helm", url=chart_repo.url, name="charts")
    latest = _render(_source(repository=public, chart="hello", values="greeting: mine\n"))
    assert latest.chart_version == "0.2.0" and _data(latest)["demo-config"]["greeting"] == "mine"
    pinned = _render(_source(repository=public, chart="hello", chart_version="0.1.0"))
    assert pinned.chart_version == "0.1.0" and _data(pinned)["demo-config"]["greeting"] == "old"
    assert pinned.digest != latest.digest
    with pytest.raises(sources.FetchFailed, match=r"version 9\.9\.9 does not exist"):
        _render(_source(repository=public, chart="hello", chart_version="9.9.9"))
    with pytest.raises(sources.FetchFailed, match="no chart named 'nope'"):
        _render(_source(repository=public, chart="nope"))

    chart_repo_auth.publish(helm_cli, write_chart(tmp_path / "private", "private", "1.2.3"))
    private = Repository(
        kind="helm",
        url=chart_repo_auth.url,
        name="p",
        auth="basic",
        username=CHART_USER,
        credential=CHART_PASSWORD,
    )
    assert _data(_render(_source(repository=private, chart="private")))["demo-config"] == {
        "greeting": "hello"
    }
    private.credential = "wrong"
    with pytest.raises(sources.FetchFailed) as failed:
        _render(_source(repository=private, chart="private"))
    assert str(failed.value) == (
        f"Helm repository {chart_repo_auth.url} ({chart_repo_auth.url}/index.yaml): "
        "401 Unauthorized: the credential is missing or wrong"
    )
    anonymous = Repository(kind="helm", url=chart_repo_auth.url, name="a")
    with pytest.raises(sources.FetchFailed, match="401 Unauthorized"):
        _render(_source(repository=anonymous, chart="private"))
    chart_repo_auth.set_outage(503)
    with pytest.raises(sources.FetchFailed, match="503: the server failed"):
        _render(_source(repository=private, chart="private"))


@pytest.mark.parametrize("auth", ["token", "htpasswd"])
def test_an_oci_chart_through_the_registry_auth_flow(auth, request, helm_cli, tmp_path):
    registry = request.getfixturevalue(f"registry_{auth}")
    name = f"oci-src-{auth}"
    for version in ("1.0.0", "1.1.0"):
        chart = write_chart(tmp_path / version, name, version, values={"greeting": version})
        archive = helm_cli.package(chart, tmp_path / "pkg")
        helm_cli.run("registry", "login", registry.host, "--plain-http", "--username", REGISTRY_USER,
                     "--password-stdin", input=REGISTRY_PASSWORD)  # fmt: skip
        helm_cli.run("push", str(archive), f"oci://{registry.host}/apps", "--plain-http")
    if auth == "token":  # a pull-only robot
        user, password = REGISTRY_PULLER, REGISTRY_PULLER_PASSWORD
    else:
        user, password = REGISTRY_USER, REGISTRY_PASSWORD
    repository = Repository(
        kind="oci",
        url=f"oci://{registry.host}/apps",
        name="o",
        auth="basic",
        username=user,
        credential=password,
    )
    latest = _render(_source(repository=repository, chart=name))
    assert latest.chart_version == "1.1.0" and _data(latest)["demo-config"] == {"greeting": "1.1.0"}
    assert latest.digest.startswith("sha256:")
    pinned = _render(
        _source(repository=repository, chart=name, chart_version="1.0.0", values="greeting: x\n")
    )
    assert pinned.chart_version == "1.0.0" and _data(pinned)["demo-config"] == {"greeting": "x"}
    # the chart named by the URL itself
    whole = Repository(kind="oci", url=f"oci://{registry.host}/apps/{name}", name="w", auth="basic",
                       username=user, credential=password)  # fmt: skip
    assert _render(_source(repository=whole, chart_version="1.0.0")).chart_version == "1.0.0"

    repository.credential = password + "-wrong"
    with pytest.raises(sources.FetchFailed, match="401 Unauthorized"):
        _render(_source(repository=repository, chart=name))
    anonymous = Repository(kind="oci", url=f"oci://{registry.host}/apps", name="n")
    with pytest.raises(sources.FetchFailed, match="401 Unauthorized"):
        _render(_source(repository=anonymous, chart=name))
    repository.credential = password
    with pytest.raises(sources.FetchFailed, match="404 Not Found"):
        _render(_source(repository=repository, chart="missing-chart"))
    if auth == "token":
        assert any(u == REGISTRY_PULLER for u, _a in registry.token_server.issued)


def test_crds_and_cluster_scoped_templates_are_refused_by_name(helm_cli, tmp_path):
    def upload(chart):
        data = helm_cli.package(chart, tmp_path / "pkg" / chart.name).read_bytes()
        return _source(ArtifactSync.UPLOAD, files={f"{chart.name}.tgz": base64.b64encode(data).decode()})

    with_crd = write_chart(tmp_path / "a", "widgets", "0.1.0", crds={"widget.yaml": CRD})
    with pytest.raises(sources.PackageRefused) as refused:
        _render(upload(with_crd))
    assert refused.value.errors["chart"] == [
        "CustomResourceDefinition widgets.example.com (crds/widget.yaml) is cluster-scoped: applications may "
        "only create objects in their namespace"
    ]
    cluster_role = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\n"
    cluster_role += "metadata:\n  name: {{ .Release.Name }}-all\n"
    rbac = write_chart(tmp_path / "b", "rbac", "0.1.0", templates={"role.yaml": cluster_role})
    with pytest.raises(sources.PackageRefused) as refused:
        _render(upload(rbac))
    assert refused.value.errors["chart"][0].startswith(
        "ClusterRole demo-all (templates/role.yaml) is cluster-scoped"
    )
    elsewhere = write_chart(tmp_path / "c", "elsewhere", "0.1.0", templates={"cm.yaml": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: kube-system\n")})  # fmt: skip
    with pytest.raises(sources.PackageRefused, match=r"ConfigMap x \(templates/cm.yaml\) is in namespace"):
        _render(upload(elsewhere))


def test_lookup_note_kube_version_and_dependencies(helm_cli, tmp_path):
    looks = (
        '{{- $s := lookup "v1" "Secret" .Release.Namespace "existing" }}\n'
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: found\n"
        'data:\n  found: {{ if $s }}"yes"{{ else }}"no"{{ end }}\n'
        "  kube: {{ .Capabilities.KubeVersion.Version | quote }}\n"
    )
    chart = write_chart(tmp_path / "a", "looks", "0.1.0", templates={"cm.yaml": looks})
    data = helm_cli.package(chart, tmp_path / "pkg").read_bytes()
    source = _source(ArtifactSync.UPLOAD, files={"looks.tgz": base64.b64encode(data).decode()})
    rendered = _render(source, kube_version="v1.33.0")
    assert rendered.objects[0]["data"] == {"found": "no", "kube": "v1.33.0"}
    assert rendered.notes == [
        "templates/cm.yaml calls lookup: lookup returns nothing here (charts are rendered with helm "
        "template, without access to the cluster)"
    ]

    parent = write_chart(tmp_path / "b", "parent", "0.1.0")
    chart_yaml = parent / "Chart.yaml"
    chart_yaml.write_text(chart_yaml.read_text() + "dependencies:\n- name: sub\n  version: 0.1.0\n"
                          "  repository: https://charts.example.com\n")  # fmt: skip
    (parent / "charts").mkdir()
    data = _tgz_of(parent)  # helm package itself refuses it: a hand-made archive
    source = _source(ArtifactSync.UPLOAD, files={"parent.tgz": base64.b64encode(data).decode()})
    with pytest.raises(sources.PackageRefused, match="the dependency sub is not vendored in charts/"):
        _render(source)
    # vendored: the subchart's objects are rendered too
    write_chart(parent / "charts", "sub", "0.1.0", templates={"s.yaml": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-sub\n")})  # fmt: skip
    data = helm_cli.package(parent, tmp_path / "pkg3").read_bytes()
    source = _source(ArtifactSync.UPLOAD, files={"parent.tgz": base64.b64encode(data).decode()})
    assert sorted(o["metadata"]["name"] for o in _render(source).objects) == ["demo-config", "from-sub"]


def _tgz_of(directory) -> bytes:
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(directory, arcname=directory.name)
    return buffer.getvalue()


def test_a_chart_from_git_records_the_commit(git_server, tmp_path):
    repo = git_server.create_repository("charts")
    chart = write_chart(tmp_path / "src", "gitchart", "0.4.0", values={"greeting": "from git"})
    files = {
        f"charts/gitchart/{p.relative_to(chart)}": p.read_text() for p in chart.rglob("*") if p.is_file()
    }
    head = repo.commit(files, "chart")
    repository = Repository(kind="git", url=repo.url, name="g", path="charts/gitchart")
    rendered = _render(_source(repository=repository))
    assert rendered.commit == head and rendered.chart_version == "0.4.0"
    assert _data(rendered)["demo-config"] == {"greeting": "from git"}
    with pytest.raises(sources.PackageRefused, match=r"no Chart\.yaml at charts of commit"):
        _render(_source(repository=repository, path="charts"))


def test_no_helm_binary_is_a_clear_refusal(settings, tmp_path):
    settings.PAAS_HELM_BINARY = str(tmp_path / "missing-helm")
    chart = tmp_path / "c.tgz"
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        meta = b"apiVersion: v2\nname: c\nversion: 0.1.0\n"
        info = tarfile.TarInfo("c/Chart.yaml")
        info.size = len(meta)
        tar.addfile(info, io.BytesIO(meta))
    chart.write_bytes(buffer.getvalue())
    source = _source(ArtifactSync.UPLOAD, files={"c.tgz": base64.b64encode(chart.read_bytes()).decode()})
    with pytest.raises(sources.PackageRefused, match="Helm charts cannot be rendered: no helm binary here"):
        _render(source)
