"""The operators' real CustomResourceDefinitions, at pinned versions, from their published Go modules.

The system catalog's templates create KServe and KubeRay custom resources.  Their controllers cannot
run here (no containers), but their CRDs can be installed, so the API server validates every custom
object against the operators' own OpenAPI schemas — never a hand-written schema that accepts
anything.  The CRD files are taken from the operators' Go modules, fetched the way ``build.py`` takes
Kubernetes: ``go mod download`` through the Go module proxy, into localkube's private module cache.
``go`` verifies each module zip against the checksum database (``GOSUMDB``, reached through the
proxy) and this module additionally compares Go's ``h1:`` sum with the one pinned below, so a moved
tag or a tampered proxy fails loudly.  The extracted CRD files are cached under
``~/.cache/localkube/crds/<digest of the pins>/``; later runs read them without Go or network.

    from tests.localkube import crds
    crds.install(api_client)          # creates (or updates) them and waits until served

Pinned (move a pin: change version and sum together; the sum is the ``h1:`` of ``go mod download
-json``, which also appears in any go.sum requiring that version):

=====================================================  ========  =====================================
module                                                 version   CRDs
=====================================================  ========  =====================================
github.com/kserve/kserve                               v0.17.0   InferenceService
github.com/ray-project/kuberay/ray-operator            v1.5.0    RayCluster, RayService
=====================================================  ========  =====================================

Not in every cluster, only where a test asks for it (``install(api, MONITORING_MODULES)``: the Helm
chart's test, whose ServiceMonitor is rendered only where its CRD is served):

=====================================================  ========  =====================================
github.com/prometheus-operator/prometheus-operator     v0.85.0   ServiceMonitor
=====================================================  ========  =====================================
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from . import build


@dataclass(frozen=True)
class CrdModule:
    """One Go module and the CRD files (paths inside the module) taken from it."""

    path: str
    version: str
    sum: str
    files: tuple[str, ...]


MODULES = (
    CrdModule(
        "github.com/kserve/kserve",
        "v0.17.0",
        "h1:IaynaBFzVQz1Xyrw5n3ncqzd5Y7L1RkO+YWvVwwtMQE=",
        ("config/crd/full/serving.kserve.io_inferenceservices.yaml",),
    ),
    CrdModule(
        "github.com/ray-project/kuberay/ray-operator",
        "v1.5.0",
        "h1:KCjCQ7PSsvs9Ke+90CZbbs498nuaIJ/JkXk4vd54EVg=",
        (
            "config/crd/bases/ray.io_rayclusters.yaml",
            "config/crd/bases/ray.io_rayservices.yaml",
        ),
    ),
)
# The Prometheus Operator's ServiceMonitor (the "full" CRD keeps the descriptions, as the operator's
# bundle.yaml installs it); installed on demand only, so cluster start-up stays as fast as before.
MONITORING_MODULES = (
    CrdModule(
        "github.com/prometheus-operator/prometheus-operator",
        "v0.85.0",
        "h1:M5xLCLEoaW2IJfnuCwFzzpL+jSVQu3KGT84Pye+fW8s=",
        ("example/prometheus-operator-crd-full/monitoring.coreos.com_servicemonitors.yaml",),
    ),
)
VERSION_ANNOTATION = "localkube.gpu-paas.io/source"


class CrdError(RuntimeError):
    """A module could not be fetched or did not match its pinned checksum."""


def _pins_digest(modules: Sequence[CrdModule] = MODULES) -> str:
    text = json.dumps([[m.path, m.version, m.sum, list(m.files)] for m in modules])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _file_name(module: CrdModule, path: str) -> str:
    return f"{Path(module.path).name}-{Path(path).name}"


def cache_dir(modules: Sequence[CrdModule] = MODULES) -> Path:
    return build.cache_root() / "crds" / _pins_digest(modules)


def _download(module: CrdModule) -> Path:
    """``go mod download`` one module (verified against GOSUMDB) and check the pinned sum."""
    env = build.go_environment()
    env["GOFLAGS"] = ""  # outside a module: no -mod flag
    if shutil.which("go", path=env.get("PATH")) is None:
        raise CrdError("localkube needs the Go toolchain ('go' on PATH) to fetch the operators' CRDs")
    result = subprocess.run(
        ["go", "mod", "download", "-json", f"{module.path}@{module.version}"],
        cwd=build.cache_root(),
        env=env,
        capture_output=True,
        text=True,
    )
    info = json.loads(result.stdout or "{}")
    if result.returncode != 0 or info.get("Error"):
        raise CrdError(
            f"go mod download {module.path}@{module.version} failed: {info.get('Error') or result.stderr}"
        )
    if info.get("Sum") != module.sum:
        raise CrdError(
            f"{module.path}@{module.version}: checksum {info.get('Sum')} is not the pinned {module.sum}"
        )
    return Path(info["Dir"])


def ensure(modules: Sequence[CrdModule] = MODULES) -> Path:
    """``crds.json`` in the cache: every CRD object of ``modules`` (fetched and converted on first use)."""
    target = cache_dir(modules)
    if (target / "crds.json").is_file():
        return target / "crds.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".crds.", dir=target.parent))
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        objects: list[dict[str, Any]] = []
        for module in modules:
            source = _download(module)
            for name in module.files:
                shutil.copyfile(source / name, staging / _file_name(module, name))
                for document in yaml.load_all((source / name).read_text(), Loader=loader):
                    if document and document.get("kind") == "CustomResourceDefinition":
                        annotations = document.setdefault("metadata", {}).setdefault("annotations", {})
                        annotations[VERSION_ANNOTATION] = f"{module.path}@{module.version}"
                        objects.append(document)
        (staging / "SOURCES.json").write_text(
            json.dumps([{"module": m.path, "version": m.version, "sum": m.sum} for m in modules], indent=2)
        )
        (staging / "crds.json").write_text(json.dumps(objects))
        staging.chmod(0o755)
        if target.exists():
            shutil.rmtree(target)
        os.rename(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target / "crds.json"


def manifests(modules: Sequence[CrdModule] = MODULES) -> list[dict[str, Any]]:
    """Every CRD object of ``modules``, annotated with the module version it came from."""
    return json.loads(ensure(modules).read_text())


def _read(extensions: Any, name: str) -> dict[str, Any] | None:
    """A CRD as plain JSON (the generated models take seconds to deserialize a 1 MB schema)."""
    from kubernetes.client.exceptions import ApiException

    try:
        response = extensions.read_custom_resource_definition(name, _preload_content=False)
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return json.loads(response.data)


def install(api: Any, modules: Sequence[CrdModule] = MODULES, timeout: float = 90.0) -> list[str]:
    """Create (or replace) the CRDs of ``modules`` in the cluster of ``api`` and wait until each is
    Established and served; returns their names.  Idempotent: a CRD from the same module version is
    left alone."""
    from kubernetes import client

    extensions = client.ApiextensionsV1Api(api)
    names: list[str] = []
    for crd in manifests(modules):
        name = crd["metadata"]["name"]
        names.append(name)
        current = _read(extensions, name)
        if current is None:
            extensions.create_custom_resource_definition(crd, _preload_content=False)
            continue
        source = (current["metadata"].get("annotations") or {}).get(VERSION_ANNOTATION)
        if source != crd["metadata"]["annotations"][VERSION_ANNOTATION]:
            crd["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            extensions.replace_custom_resource_definition(name, crd, _preload_content=False)
    deadline = time.monotonic() + timeout
    pending = set(names)
    while pending:
        for name in sorted(pending):
            current = _read(extensions, name) or {}
            conditions = {
                c["type"]: c["status"] for c in (current.get("status") or {}).get("conditions") or []
            }
            if conditions.get("Established") == "True":
                pending.discard(name)
        if pending and time.monotonic() > deadline:
            raise CrdError(f"CRDs not established after {timeout:.0f}s: {', '.join(sorted(pending))}")
        if pending:
            time.sleep(0.2)
    return names
