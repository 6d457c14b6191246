"""The air-gapped bundle (deploy/bundle.py): built from the image, the chart and the suite's helm and kubectl;
its checksums hold and a tampered or added file is refused; installed from the unpacked bundle alone (its
install.sh, its helm and kubectl, no registry, no network beyond loopback) onto the local control plane,
where KWOK schedules and runs the pods with the bundle's image digest; pushed with skopeo to a registry.
The small layouts made here only serve the reproducibility and layout-selection checks."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import requests
import yaml
from kubernetes import client as k8s

from deploy import bundle as bundle_mod
from tests.localkube.helpers import unique_name
from tests.support import skopeo
from tests.support.image import built_image
from tests.support.integration_servers import REGISTRY_PASSWORD, REGISTRY_USER
from tests.support.wait import wait_for

pytestmark = [pytest.mark.toolchain]

EPOCH = 1_700_000_000
VERSION = "0.1.0"


def _blob(layout: Path, data: bytes) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def tiny_layout(layout: Path, *, ref_name: str = VERSION, content: bytes = b"hello\n") -> bundle_mod.Image:
    """A small but valid OCI image layout (one layer holding one file), made here in the test."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        info = tarfile.TarInfo("hello.txt")
        info.size, info.mtime = len(content), EPOCH
        archive.addfile(info, io.BytesIO(content))
    layer_desc = {"mediaType": "application/vnd.oci.image.layer.v1.tar", **_blob(layout, layer.getvalue())}
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"User": "10001:10001"},
        "rootfs": {"type": "layers", "diff_ids": [layer_desc["digest"]]},
    }
    config_desc = {
        "mediaType": "application/vnd.oci.image.config.v1+json",
        **_blob(layout, json.dumps(config, sort_keys=True).encode()),
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_desc,
        "layers": [layer_desc],
    }
    manifest_desc = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        **_blob(layout, json.dumps(manifest, sort_keys=True).encode()),
        "annotations": {bundle_mod.REF_NAME: ref_name},
    }
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [manifest_desc]}))
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return bundle_mod.image_from_layout(layout)


def _real_image() -> bundle_mod.Image:
    built = built_image()
    image = bundle_mod.image_from_layout(built.layout, bundle_mod._ref_name_in(built.layout, built.tag))
    assert image.digest == built.digest
    return image


@pytest.fixture(scope="module")
def inputs(helm_binary, kubectl_binary):
    """The real inputs: the built image (tests/support/image.py), the chart, the suite's helm and kubectl."""
    return {
        "image": _real_image(),
        "chart": bundle_mod.CHART_DIR,
        "helm": Path(helm_binary),
        "kubectl": Path(kubectl_binary),
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory, inputs):
    out = tmp_path_factory.mktemp("bundle-out")
    return bundle_mod.build_bundle(
        out_dir=out,
        image=inputs["image"],
        chart_dir=inputs["chart"],
        helm=inputs["helm"],
        kubectl=inputs["kubectl"],
        version=VERSION,
        epoch=EPOCH,
    )


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory, built):
    target = tmp_path_factory.mktemp("bundle-unpacked")
    with tarfile.open(built.path) as archive:
        archive.extractall(target, filter="data")
    root = target / f"gpu-paas-{VERSION}"
    assert root.is_dir()
    return root


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_archive_holds_what_it_should_with_normalised_entries(built, inputs):
    root = f"gpu-paas-{VERSION}"
    with tarfile.open(built.path) as archive:
        members = archive.getmembers()
        names = [m.name for m in members]
        assert names == sorted(names)
        assert {m.mtime for m in members} == {EPOCH}
        assert {(m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, "", "")}
        files = {m.name[len(root) + 1 :]: m for m in members if m.isfile()}
        assert {
            "install.sh",
            "SHA256SUMS",
            "bin/helm",
            "bin/kubectl",
            f"chart/gpu-paas-{VERSION}.tgz",
        } <= set(files)
        assert {"image/index.json", "image/oci-layout"} <= set(files)
        assert {"backup/backup.sh", "backup/restore.sh"} <= set(files)  # deploy/'s, for the restore inside
        assert files["install.sh"].mode == files["bin/helm"].mode == files["backup/restore.sh"].mode == 0o755
        assert files["SHA256SUMS"].mode == 0o644
        chart_bytes = archive.extractfile(f"{root}/chart/gpu-paas-{VERSION}.tgz").read()
        install = archive.extractfile(f"{root}/install.sh").read().decode()
    # The chart's own values run the image by its digest.
    with tarfile.open(fileobj=io.BytesIO(chart_bytes)) as chart:
        values = yaml.safe_load(chart.extractfile("gpu-paas/values.yaml").read())
        meta = yaml.safe_load(chart.extractfile("gpu-paas/Chart.yaml").read())
    assert values["image"]["digest"] == inputs["image"].digest == built.image_digest
    assert (meta["version"], meta["appVersion"]) == (VERSION, VERSION)
    assert f"IMAGE_DIGEST='{inputs['image'].digest}'" in install
    assert not re.search(r"@[A-Z_]+@", install), "a placeholder of install.sh was left unfilled"


def test_checksums_cover_every_file_and_match(tmp_path, unpacked, inputs):
    sums = {}
    for line in (unpacked / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ", 1)
        sums[name] = digest
    on_disk = {
        p.relative_to(unpacked).as_posix()
        for p in unpacked.rglob("*")
        if p.is_file() and p.name != "SHA256SUMS"
    }
    assert set(sums) == on_disk
    for name, digest in sums.items():
        assert _sha256(unpacked / name) == digest, name
    assert sums["bin/helm"] == _sha256(inputs["helm"])
    assert sums["bin/kubectl"] == _sha256(inputs["kubectl"])
    # The layout is the image's: its manifest blob is the digest pods run.
    manifest = json.loads((unpacked / "image" / "index.json").read_text())["manifests"][0]
    assert manifest["digest"] == inputs["image"].digest
    result = subprocess.run(
        ["sh", "install.sh", "--verify-only"],
        cwd=unpacked,
        capture_output=True,
        text=True,
        env=_bare_env(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert "every file matches SHA256SUMS" in result.stderr


def test_the_same_inputs_give_the_same_bytes(tmp_path, inputs):
    image = tiny_layout(tmp_path / "layout")
    builds = [
        bundle_mod.build_bundle(
            out_dir=tmp_path / f"out{i}",
            image=image,
            chart_dir=inputs["chart"],
            helm=inputs["helm"],
            kubectl=inputs["kubectl"],
            version=VERSION,
            epoch=EPOCH,
        )
        for i in range(2)
    ]
    assert builds[0].path.read_bytes() == builds[1].path.read_bytes()
    other = tiny_layout(tmp_path / "layout2", content=b"changed\n")  # a changed input changes the bytes
    changed = bundle_mod.build_bundle(
        out_dir=tmp_path / "out3",
        image=other,
        chart_dir=inputs["chart"],
        helm=inputs["helm"],
        kubectl=inputs["kubectl"],
        version=VERSION,
        epoch=EPOCH,
    )
    assert changed.sha256 != builds[0].sha256


# What install.sh needs besides the bundle: a POSIX shell and a few core utilities, nothing else.
SHELL_TOOLS = ("sh", "sha256sum", "cut", "sort", "comm", "find", "mktemp", "rm", "sed", "dirname", "cat")


def test_only_the_chosen_image_of_a_shared_layout_goes_in(tmp_path, inputs):
    layout = tmp_path / "layout"
    other = tiny_layout(layout, ref_name="old", content=b"an older build\n")
    old_index = json.loads((layout / "index.json").read_text())
    chosen = tiny_layout(layout, ref_name=VERSION)
    index = json.loads((layout / "index.json").read_text())
    index["manifests"] = old_index["manifests"] + index["manifests"]
    (layout / "index.json").write_text(json.dumps(index))
    with pytest.raises(bundle_mod.BundleError, match="expected one image"):
        bundle_mod.image_from_layout(layout)
    image = bundle_mod.image_from_layout(layout, VERSION)
    assert image.digest == chosen.digest != other.digest
    names = {name: source for name, source, _mode in bundle_mod.layout_files(image)}
    assert json.loads(names["image/index.json"])["manifests"] == [index["manifests"][1]]
    blobs = {name.rsplit("/", 1)[1] for name in names if name.startswith("image/blobs/")}
    assert len(blobs) == 3 and chosen.digest.split(":")[1] in blobs  # manifest, config, layer
    assert other.digest.split(":")[1] not in blobs
    assert len(list((layout / "blobs" / "sha256").iterdir())) == 6  # both images: manifest, config, layer


def _bare_env(home: Path, *, extra: dict[str, str] | None = None) -> dict[str, str]:
    """A PATH of the shell tools only (this machine has a kubectl in /usr/bin: it must not be used), no home
    configuration, and any attempt to reach past loopback over HTTP(S) sent to a dead loopback port."""
    tools = home / (".bare-bin" if not extra else ".bare-bin-" + "-".join(sorted(extra)))
    if not tools.is_dir():
        tools.mkdir(parents=True)
        for tool in SHELL_TOOLS:
            (tools / tool).symlink_to(shutil.which(tool))
        for tool, path in (extra or {}).items():
            (tools / tool).symlink_to(path)
    env = {
        "PATH": str(tools),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    for tool in {"kubectl", "helm", "skopeo", "crane", "regctl"} - set(extra or {}):
        assert shutil.which(tool, path=env["PATH"]) is None, f"{tool} is on {env['PATH']}"
    return env


def _hardlinked_copy(unpacked: Path, target: Path) -> Path:
    shutil.copytree(unpacked, target, copy_function=os.link)
    return target


@pytest.mark.kube
def test_a_tampered_or_added_file_is_refused_before_anything(tmp_path, unpacked, kube_cluster):
    core = k8s.CoreV1Api(kube_cluster.api_client())
    tampered = _hardlinked_copy(unpacked, tmp_path / "tampered")
    chart = next((tampered / "chart").iterdir())
    data = chart.read_bytes()
    chart.unlink()  # a new file: the hard link to the good one stays intact
    chart.write_bytes(data + b"\0")
    namespace = unique_name("bundle-tamper")
    env = _bare_env(tmp_path)
    command = ["sh", "install.sh", "--kubeconfig", kube_cluster.kubeconfig_path, "--namespace", namespace]
    result = subprocess.run(command, cwd=tampered, capture_output=True, text=True, env=env)
    assert result.returncode != 0
    assert chart.name in result.stderr and "refusing to install" in result.stderr

    added = _hardlinked_copy(unpacked, tmp_path / "added")
    (added / "bin" / "kubectl-plugin").write_text("#!/bin/sh\n")
    result = subprocess.run(command, cwd=added, capture_output=True, text=True, env=env)
    assert result.returncode != 0
    assert "files not in SHA256SUMS: bin/kubectl-plugin" in result.stderr
    # Nothing was done on the cluster.
    names = {ns.metadata.name for ns in core.list_namespace().items}
    assert namespace not in names


def _values(tmp_path: Path) -> Path:
    """What an operator gives the chart: external PostgreSQL, the keys; the checkpoints on an emptyDir (the
    local control plane has no storage provisioner for a ReadWriteMany claim)."""
    values = {
        "auditCheckpoints": {"persistence": {"enabled": False}},
        "workers": {"agents": ["agent-dc1"]},
        "database": {"url": "postgres://paas:secret@postgres.internal:5432/paas"},
        "secretKey": "s" * 60,
        "encryptionKeys": "Wq1t0ZJ0bq0o2aC9oY0pXl3m6Z9kT1u2v3w4x5y6z7A=",
        "auditCheckpointKey": "c" * 40,
        "metricsToken": "m" * 32,
    }
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def _pods_running(core, namespace: str, deployments) -> list | None:
    """Every replica of ``deployments`` Running on a (KWOK) node, or None yet."""
    pods = [p for p in core.list_namespaced_pod(namespace).items if p.metadata.deletion_timestamp is None]
    running = [p for p in pods if p.status.phase == "Running" and p.spec.node_name]
    wanted = {d.metadata.name: d.spec.replicas for d in deployments}
    by_owner: dict[str, int] = {}
    for pod in running:
        owner = (pod.metadata.owner_references or [None])[0]
        if owner is not None and owner.kind == "ReplicaSet":
            deployment = owner.name.rsplit("-", 1)[0]
            by_owner[deployment] = by_owner.get(deployment, 0) + 1
    return running if all(by_owner.get(name, 0) == count for name, count in wanted.items()) else None


@pytest.mark.kube
def test_install_from_the_bundle_alone_runs_the_image_digest(tmp_path, unpacked, inputs, kube_cluster):
    api = kube_cluster.api_client()
    core, apps = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
    namespace = unique_name("bundle")
    repository = "registry.dc1.internal/platform/gpu-paas"
    expected_image = f"{repository}@{inputs['image'].digest}"
    # Unpacked somewhere else, run from elsewhere: install.sh finds its files itself.
    here = _hardlinked_copy(unpacked, tmp_path / "dc" / "gpu-paas")
    env = _bare_env(tmp_path)
    command = [
        "sh", str(here / "install.sh"),
        "--kubeconfig", kube_cluster.kubeconfig_path,
        "--namespace", namespace,
        "--image-repository", repository,
        "--values", str(_values(tmp_path)),
    ]  # fmt: skip
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no --registry: the nodes must already hold the image" in result.stderr

    labels = core.read_namespace(namespace).metadata.labels
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    deployments = apps.list_namespaced_deployment(namespace).items
    names = {d.metadata.name for d in deployments}
    assert names == {
        "gpu-paas-web",
        "gpu-paas-worker-default",
        "gpu-paas-worker-agent-dc1",
        "gpu-paas-audit-stream",
    }
    pods = wait_for(
        lambda: _pods_running(core, namespace, apps.list_namespaced_deployment(namespace).items),
        timeout=120,
        what="every replica scheduled and running on KWOK nodes",
    )
    assert pods
    # Every pod (the migrations hook's too, if still there) was admitted ("restricted") and runs the digest.
    for pod in core.list_namespaced_pod(namespace).items:
        for container in [*pod.spec.containers, *(pod.spec.init_containers or [])]:
            assert container.image == expected_image, (pod.metadata.name, container.image)

    # Upgrade and scale with the same command: revision 2, three web replicas, still the digest.
    scale = ["--set", "web.autoscaling.enabled=false", "--set", "web.replicas=3"]
    result = subprocess.run([*command, *scale], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert apps.read_namespaced_deployment("gpu-paas-web", namespace).spec.replicas == 3
    pods = wait_for(
        lambda: _pods_running(core, namespace, apps.list_namespaced_deployment(namespace).items),
        timeout=120,
        what="three web replicas running",
    )
    web = [p for p in pods if (p.metadata.labels or {}).get("app.kubernetes.io/component") == "web"]
    assert len(web) == 3
    assert {c.image for p in pods for c in p.spec.containers} == {expected_image}
    history = subprocess.run(
        [str(here / "bin" / "helm"), "history", "gpu-paas", "-n", namespace, "-o", "json",
         "--kubeconfig", kube_cluster.kubeconfig_path],
        capture_output=True, text=True, env={**env, "HELM_CONFIG_HOME": str(tmp_path / "h")},
    )  # fmt: skip
    assert history.returncode == 0, history.stderr
    assert [entry["revision"] for entry in json.loads(history.stdout)] == [1, 2]
    core.delete_namespace(namespace)


@pytest.mark.kube
def test_install_pushes_the_image_to_the_providers_registry_digest_unchanged(
    tmp_path, unpacked, inputs, kube_cluster, registry_htpasswd
):
    """--registry: skopeo (Debian's, the one of skopeo/crane/regctl packaged there) pushes the layout to the
    registry (basic auth, plain HTTP on loopback) with the bundle's digest, and the release runs it there."""
    apps = k8s.AppsV1Api(kube_cluster.api_client())
    namespace = unique_name("bundle-push")
    repository = f"{registry_htpasswd.host}/platform/gpu-paas"
    auth = base64.b64encode(f"{REGISTRY_USER}:{REGISTRY_PASSWORD}".encode()).decode()
    authfile = tmp_path / "auth.json"
    authfile.write_text(json.dumps({"auths": {registry_htpasswd.host: {"auth": auth}}}))
    env = _bare_env(tmp_path, extra={"skopeo": skopeo.ensure()})
    command = [
        "sh", str(unpacked / "install.sh"),
        "--kubeconfig", kube_cluster.kubeconfig_path,
        "--namespace", namespace,
        "--registry", repository, "--registry-authfile", str(authfile), "--registry-insecure",
        "--values", str(_values(tmp_path)),
        "--no-wait",
    ]  # fmt: skip
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    digest = inputs["image"].digest
    assert f"pushed the image to {repository}:{VERSION} ({digest})" in result.stderr

    manifest = requests.get(
        f"{registry_htpasswd.url}/v2/platform/gpu-paas/manifests/{VERSION}",
        auth=(REGISTRY_USER, REGISTRY_PASSWORD),
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        timeout=10,
    )
    assert manifest.status_code == 200, manifest.text
    assert manifest.headers["Docker-Content-Digest"] == digest
    assert "sha256:" + hashlib.sha256(manifest.content).hexdigest() == digest
    web = apps.read_namespaced_deployment("gpu-paas-web", namespace)
    assert {c.image for c in web.spec.template.spec.containers} == {f"{repository}@{digest}"}
    k8s.CoreV1Api(kube_cluster.api_client()).delete_namespace(namespace)
