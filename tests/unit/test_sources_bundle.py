"""YAML bundles and chart archives on their own (catalog/sources/bundle.py, archive.py): parsing, the
upload checks and their limits, cluster-scoped objects refused by name, unsafe archives refused."""

from __future__ import annotations

import base64
import io
import tarfile
from types import SimpleNamespace

import pytest

from catalog import sources
from catalog.sources import archive, bundle
from paas.errors import ValidationFailed

CONFIG_MAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: one\ndata:\n  a: b\n"
DEPLOYMENT = (
    "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n"
    "    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n"
    "    spec:\n      containers: [{name: web, image: nginx}]\n"
)
CLUSTER_ROLE = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: takeover\n"


def _upload(files):
    return SimpleNamespace(package_type="yaml", sync="upload", files=files, repository=None)


def test_render_an_upload_multi_document_with_a_list_and_empty_documents():
    listed = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Secret\n  metadata: {name: s}\n"
    files = {"a.yaml": f"---\n{CONFIG_MAP}---\n---\n{DEPLOYMENT}", "b.yml": listed}
    rendered = sources.render(_upload(files), release="app", namespace="ns")
    assert [(o["kind"], o["metadata"]["name"]) for o in rendered.objects] == [
        ("ConfigMap", "one"),
        ("Deployment", "web"),
        ("Secret", "s"),
    ]
    assert rendered.digest.startswith("sha256:") and rendered.commit == ""
    # the digest depends on the content, not on the order files were given in
    again = sources.render(_upload(dict(reversed(list(files.items())))), release="app", namespace="ns")
    assert again.digest == rendered.digest
    changed = sources.render(_upload({**files, "b.yml": listed + "\n"}), release="app", namespace="ns")
    assert changed.digest != rendered.digest


def test_cluster_scoped_objects_and_other_namespaces_are_refused_by_name():
    files = {"rbac.yaml": CLUSTER_ROLE, "crd.yaml": "apiVersion: apiextensions.k8s.io/v1\n"
             "kind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\n"}  # fmt: skip
    with pytest.raises(sources.PackageRefused) as refused:
        sources.render(_upload(files), release="app", namespace="ns")
    messages = refused.value.errors["files"]
    assert (
        "ClusterRole takeover (rbac.yaml) is cluster-scoped: applications may only create objects in "
        "their namespace" in messages
    )
    assert any(m.startswith("CustomResourceDefinition widgets.example.com (crd.yaml)") for m in messages)

    elsewhere = CONFIG_MAP.replace("name: one", "name: one\n  namespace: kube-system")
    with pytest.raises(sources.PackageRefused) as refused:
        sources.render(_upload({"x.yaml": elsewhere}), release="app", namespace="ns")
    assert "ConfigMap one (x.yaml) is in namespace 'kube-system'" in refused.value.errors["files"][0]
    # the same object in the application's own namespace is fine
    same = CONFIG_MAP.replace("name: one", "name: one\n  namespace: ns")
    assert sources.render(_upload({"x.yaml": same}), release="app", namespace="ns").objects


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({}, "upload at least one file"),
        ({"a.yaml": "a: [\n"}, "a.yaml: YAML error at line 2"),
        ({"a.yaml": "kind: ConfigMap\n"}, "a.yaml: document 1, line 1: apiVersion is required"),
        ({"a.yaml": "- 1\n"}, "a.yaml: document 1, line 1: must be a mapping"),
        ({"a.txt": CONFIG_MAP}, "a.txt: a K8s YAML upload holds .yaml, .yml or .json files"),
        ({"../a.yaml": CONFIG_MAP}, "'../a.yaml': a file name is letters"),
        ({"a.yaml": "a: &x 1\nb: *x\n"}, "YAML aliases (*x) are not allowed"),
        ({"a.yaml": "# nothing\n"}, "the files hold no Kubernetes object"),
        ({"rbac.yaml": CLUSTER_ROLE}, "ClusterRole takeover (rbac.yaml) is cluster-scoped"),
        ({"a.yaml": "x: " + "y" * bundle.MAX_FILE_BYTES}, "a.yaml: the file is larger than 1024 KiB"),
        ({f"f{i}.yaml": CONFIG_MAP for i in range(bundle.MAX_FILES + 1)}, "upload at most 50 files"),
    ],
)
def test_validate_upload_names_the_file_and_the_problem(files, expected):
    with pytest.raises(ValidationFailed) as refused:
        sources.validate_upload("yaml", files)
    assert any(expected in m for m in refused.value.fields["files"]), refused.value.fields


def test_validate_upload_accepts_a_good_bundle():
    assert sources.validate_upload("yaml", {"app.yaml": CONFIG_MAP + "---\n" + DEPLOYMENT}) is None


def _tgz(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def _file(name: str, data: bytes = b"x: 1\n") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _link(name: str, target: str, kind=tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


CHART_YAML = b"apiVersion: v2\nname: hello\nversion: 0.1.0\n"


def test_a_chart_archive_unpacks_and_is_checked(tmp_path):
    data = _tgz(
        [_file("hello/Chart.yaml", CHART_YAML), _file("hello/templates/cm.yaml", CONFIG_MAP.encode())]
    )
    archive.check_chart_archive(data)
    assert sorted(archive.unpack(data, tmp_path)) == ["hello/Chart.yaml", "hello/templates/cm.yaml"]
    assert archive.chart_root(tmp_path) == tmp_path / "hello"
    encoded = base64.b64encode(data).decode()
    assert sources.validate_upload("helm", {"hello-0.1.0.tgz": encoded}) is None


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        ([_file("../evil.yaml")], "../evil.yaml: paths leaving the chart ('..') are refused"),
        ([_file("hello/../../evil.yaml")], "paths leaving the chart"),
        ([_file("/etc/passwd")], "/etc/passwd: absolute paths are refused"),
        ([_link("hello/values.yaml", "/etc/passwd")], "hello/values.yaml: links are refused"),
        ([_link("hello/x", "hello/Chart.yaml", tarfile.LNKTYPE)], "hello/x: links are refused"),
        ([(lambda i: (setattr(i, "type", tarfile.FIFOTYPE), (i, None))[1])(tarfile.TarInfo("hello/f"))],
         "only files and directories"),
    ],
)  # fmt: skip
def test_unsafe_archives_are_refused(tmp_path, members, expected):
    data = _tgz([_file("hello/Chart.yaml", CHART_YAML), *members])
    with pytest.raises(sources.PackageRefused) as refused:
        archive.unpack(data, tmp_path)
    assert any(expected in m for m in refused.value.errors["files"]), refused.value.errors
    assert not (tmp_path / "hello").exists()  # nothing written: checked before unpacking
    with pytest.raises(ValidationFailed):
        sources.validate_upload("helm", {"c.tgz": base64.b64encode(data).decode()})


def test_chart_uploads_that_are_not_charts(monkeypatch):
    def refused(files):
        with pytest.raises(ValidationFailed) as caught:
            sources.validate_upload("helm", files)
        return caught.value.fields["files"][0]

    assert "not a Helm chart" in refused({"c.tgz": base64.b64encode(_tgz([_file("x/a.yaml")])).decode()})
    assert "not a valid .tgz archive" in refused({"c.tgz": base64.b64encode(b"not a tarball").decode()})
    assert "base64" in refused({"c.tgz": "%%%"})
    assert "one packaged chart" in refused({"a.yaml": CONFIG_MAP})
    with_crd = _tgz([_file("hello/Chart.yaml", CHART_YAML), _file("hello/crds/widget.yaml", b"kind: x\n")])
    assert refused({"c.tgz": base64.b64encode(with_crd).decode()}) == (
        "c.tgz: crds/widget.yaml: a chart's crds/ define cluster-scoped CustomResourceDefinitions: "
        "applications may only create objects in their namespace"
    )
    corrupt = _tgz([_file("hello/Chart.yaml", CHART_YAML)])
    corrupt = corrupt[:20] + bytes(b ^ 0xFF for b in corrupt[20:40]) + corrupt[40:]
    assert "not a valid .tgz archive" in refused({"c.tgz": base64.b64encode(corrupt).decode()})
    monkeypatch.setattr(archive, "MAX_UNPACKED_BYTES", 1000)
    bomb = _tgz([_file("hello/Chart.yaml", CHART_YAML), _file("hello/big", b"\0" * 100_000)])
    assert len(bomb) < 1000
    assert "unpacks to more than" in refused({"c.tgz": base64.b64encode(bomb).decode()})
