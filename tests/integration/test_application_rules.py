"""The request-side rules of an application's source (``instances.applications.clean_source``), without a
cluster: paths stay inside the repository, refs, charts and versions are plain names (never an option
for a tool), value overrides are a YAML mapping, a repository must be the workspace's and fit the
package type, uploads are checked (``catalog.sources.validate_upload``)."""

import pytest

from catalog.models import Repository
from catalog.sources import spec
from instances import applications
from paas.errors import ValidationFailed


def _repo(world, kind: str, *, tenant=None, name: str = "r") -> Repository:
    tenant = tenant or world.a
    return Repository.objects.create(
        org=tenant.org,
        project=tenant.project,
        name=name,
        display_name=name,
        kind=kind,
        url="http://127.0.0.1:9/x" if kind != "oci" else "oci://127.0.0.1:9/x",
    )


def _refused(world, field: str, **given) -> str:
    with pytest.raises(ValidationFailed) as refused:
        applications.clean_source(project=world.a.project, **({"package_type": "yaml"} | given))
    assert field in refused.value.fields, refused.value.fields
    return " ".join(refused.value.fields[field])


CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"


def test_source_rules(world):
    git, helm = _repo(world, "git"), _repo(world, "helm", name="h")
    theirs = _repo(world, "git", tenant=world.b, name="theirs")
    repo = {"sync": "repository", "repository": git}
    assert _refused(world, "package_type", package_type="zip")
    assert _refused(world, "sync", sync="ftp", files={"a.yaml": CM})
    for path in ("../up", "/etc", "a/../../b", "a\\b"):
        assert "'..'" in _refused(world, "path", path=path, **repo)
    assert _refused(world, "values_file", values_file="../values.yaml", **repo)
    for ref in ("-c", "--upload-pack=x", "a b", "a..b"):
        assert _refused(world, "ref", ref=ref, **repo)
    assert _refused(world, "chart_version", chart_version="--set", package_type="helm", **repo)
    assert _refused(world, "chart", chart="../x", package_type="helm", **repo)
    assert "mapping" in _refused(world, "values", values="- a\n", **repo)
    assert "YAML" in _refused(world, "values", values="a: [\n", **repo)
    assert "KiB" in _refused(world, "values", values="a: " + "x" * 300_000, **repo)
    # Repositories: the workspace's, of a kind that holds the package type; a Helm one names its chart.
    assert _refused(world, "repository", sync="repository", repository=theirs)
    assert _refused(world, "repository", sync="repository", repository=None)
    assert _refused(world, "repository", sync="repository", repository="nope")
    assert "cannot hold" in _refused(world, "repository", sync="repository", repository=helm)
    assert _refused(world, "chart", package_type="helm", sync="repository", repository=helm)
    assert _refused(world, "files", files={"a.yaml": CM}, **repo)
    # Uploads: some files, each a name and its text, checked; never with a repository.
    assert _refused(world, "files", sync="upload", files={})
    assert _refused(world, "files", sync="upload", files={"a.yaml": 3})
    cluster_role = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: x}\n"
    assert "ClusterRole x" in _refused(world, "files", sync="upload", files={"a.yaml": cluster_role})
    assert _refused(world, "repository", sync="upload", files={"a.yaml": CM}, repository=git)

    ok = applications.clean_source(
        project=world.a.project,
        package_type="helm",
        ref="v1.2",
        chart="hello",
        chart_version="0.1.0+b1",
        **repo,
    )
    assert ok["repository"] == git and ok["chart"] == "hello" and ok["ref"] == "v1.2"
    assert applications.clean_source(project=world.a.project, package_type="yaml", files={"a.yaml": CM})[
        "files"
    ]


def test_values_deep_merge():
    base = {"a": 1, "nested": {"x": 1, "y": {"z": 1}}, "list": [1, 2]}
    merged = spec.deep_merge(base, {"nested": {"y": {"w": 2}}, "list": [3], "b": None})
    assert merged == {"a": 1, "nested": {"x": 1, "y": {"z": 1, "w": 2}}, "list": [3], "b": None}
    assert base["nested"]["y"] == {"z": 1}  # the catalog item's defaults untouched
