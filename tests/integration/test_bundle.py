"""The air-gapped bundle (deploy/bundle.py): built from the image, the chart and the suite's helm and kubectl;
its checksums hold and a tampered or added file is refused; installed from the unpacked bundle alone (its
install.sh, its helm and kubectl, no registry, no network beyond loopback) onto the local control plane,
where KWOK schedules and runs the pods with the bundle's image digest."""

from __future__ import annotations

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
import yaml
from kubernetes import client as k8s

from deploy import bundle as bundle_mod
from tests.localkube.helpers import unique_name
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


STANDIN_DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: {{ .Release.Name }}-web, labels: {app.kubernetes.io/name: gpu-paas}}
spec:
  replicas: {{ .Values.web.replicas }}
  selector: {matchLabels: {app.kubernetes.io/component: web}}
  template:
    metadata: {labels: {app.kubernetes.io/name: gpu-paas, app.kubernetes.io/component: web}}
    spec:
      securityContext: {runAsNonRoot: true, runAsUser: 10001, seccompProfile: {type: RuntimeDefault}}
      containers:
        - name: web
          image: "{{ .Values.image.repository }}@{{ .Values.image.digest }}"
          securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
"""


def standin_chart(root: Path) -> Path:
    """Only while p19-chart has no chart: the same name and the image values the bundle pins."""
    chart = root / "gpu-paas"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: gpu-paas\nversion: 0.0.1\n")
    (chart / "values.yaml").write_text(
        "# stand-in\nimage:\n  repository: gpu-paas  # where the nodes find it\n"
        '  digest: ""\nweb:\n  replicas: 2\n'
    )
    (chart / "templates" / "web.yaml").write_text(STANDIN_DEPLOYMENT)
    return chart


def _real_image() -> bundle_mod.Image | None:
    try:
        from tests.support.image import built_image  # p19-image
    except ImportError:
        return None
    built = built_image()
    image = bundle_mod.image_from_layout(built.layout, bundle_mod._ref_name_in(built.layout, built.tag))
    assert image.digest == built.digest
    return image


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, helm_binary, kubectl_binary):
    root = tmp_path_factory.mktemp("bundle-inputs")
    image = _real_image()
    if image is None:
        image = tiny_layout(root / "layout")
    chart = bundle_mod.CHART_DIR if (bundle_mod.CHART_DIR / "Chart.yaml").is_file() else standin_chart(root)
    return {"image": image, "chart": chart, "helm": Path(helm_binary), "kubectl": Path(kubectl_binary)}


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
        assert files["install.sh"].mode == files["bin/helm"].mode == 0o755
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


def _bare_env(home: Path) -> dict[str, str]:
    """A PATH of the shell tools only (this machine has a kubectl in /usr/bin: it must not be used), no home
    configuration, and any attempt to reach past loopback over HTTP(S) sent to a dead loopback port."""
    tools = home / ".bare-bin"
    if not tools.is_dir():
        tools.mkdir(parents=True)
        for tool in SHELL_TOOLS:
            (tools / tool).symlink_to(shutil.which(tool))
    env = {
        "PATH": str(tools),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    for tool in ("kubectl", "helm", "skopeo", "crane", "regctl"):
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
    """What an operator gives the chart (external PostgreSQL, the keys); the stand-in chart ignores it."""
    values = {
        "database": {"url": "postgres://paas:secret@postgres.internal:5432/paas"},
        "secretKey": "s" * 60,
        "encryptionKeys": "Wq1t0ZJ0bq0o2aC9oY0pXl3m6Z9kT1u2v3w4x5y6z7A=",
        "auditCheckpointKey": "c" * 40,
        "metricsToken": "m" * 32,
    }
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


@pytest.mark.kube
def test_install_from_the_bundle_alone_runs_the_image_digest(tmp_path, unpacked, inputs, kube_cluster):
    api = kube_cluster.api_client()
    core, apps = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
    namespace = unique_name("bundle")
    # Unpacked somewhere else, run from elsewhere: install.sh finds its files itself.
    here = _hardlinked_copy(unpacked, tmp_path / "dc" / "gpu-paas")
    command = [
        "sh",
        str(here / "install.sh"),
        "--kubeconfig",
        kube_cluster.kubeconfig_path,
        "--namespace",
        namespace,
        "--values",
        str(_values(tmp_path)),
    ]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, env=_bare_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no --registry: the nodes must already hold the image" in result.stderr

    labels = core.read_namespace(namespace).metadata.labels
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    deployments = apps.list_namespaced_deployment(namespace).items
    assert deployments, "the chart created no Deployment"
    digest = inputs["image"].digest

    def running_pods():
        pods = [
            p
            for p in core.list_namespaced_pod(namespace).items
            if not p.metadata.owner_references or p.metadata.owner_references[0].kind != "Job"
        ]
        expected = sum(d.spec.replicas or 0 for d in deployments)
        running = [p for p in pods if p.status.phase == "Running" and p.spec.node_name]
        return running if len(running) >= expected > 0 else None

    pods = wait_for(running_pods, timeout=120, what="the bundle's pods scheduled and running on KWOK nodes")
    for pod in pods:
        for container in pod.spec.containers:
            assert container.image.endswith(f"@{digest}"), container.image
    # The upgrade path is the same command: the release moves to revision 2, pods keep the digest.
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, env=_bare_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    history = subprocess.run(
        [
            str(here / "bin" / "helm"),
            "history",
            "gpu-paas",
            "-n",
            namespace,
            "-o",
            "json",
            "--kubeconfig",
            kube_cluster.kubeconfig_path,
        ],
        capture_output=True,
        text=True,
        env={**_bare_env(tmp_path), "HELM_CONFIG_HOME": str(tmp_path / "h")},
    )
    assert history.returncode == 0, history.stderr
    assert [entry["revision"] for entry in json.loads(history.stdout)] == [1, 2]
    core.delete_namespace(namespace)
