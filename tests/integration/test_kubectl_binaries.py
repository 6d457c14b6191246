"""The binaries the web shell and the kubectl tests run: kubectl v1.37.2 built from its Go module (the
control plane's release) and Debian's bubblewrap, which can run that kubectl alone in fresh namespaces."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.localkube import build as localkube_build
from tests.support.kubectl import run_kubectl


def _client_version(stdout: str) -> str:
    return json.loads(stdout)["clientVersion"]["gitVersion"]


def test_kubectl_is_the_control_planes_release(kubectl_binary, tmp_path):
    done = subprocess.run(
        [kubectl_binary, "version", "--client", "-o", "json"],
        env={"HOME": str(tmp_path)},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert _client_version(done.stdout) == localkube_build.KUBERNETES_VERSION


def _sandbox(bwrap_binary: str, kubectl_binary: str) -> list[str]:
    """bwrap with every namespace of its own, an empty environment and only kubectl at /kubectl."""
    return [
        bwrap_binary,
        "--unshare-all",
        "--die-with-parent",
        "--clearenv",
        "--ro-bind",
        kubectl_binary,
        "/kubectl",
    ]


def test_bwrap_runs_kubectl_alone_in_its_own_namespaces(kubectl_binary, bwrap_binary):
    version = subprocess.run([bwrap_binary, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("bubblewrap ")
    sandbox = _sandbox(bwrap_binary, kubectl_binary)
    done = subprocess.run(
        [*sandbox, "/kubectl", "version", "--client", "-o", "json"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert _client_version(done.stdout) == localkube_build.KUBERNETES_VERSION
    # Nothing but the binary is in there: no shell to run.
    assert subprocess.run([*sandbox, "/bin/sh", "-c", "true"], capture_output=True).returncode != 0


@pytest.mark.kube
def test_kubectl_reaches_the_cluster_but_not_from_inside_an_empty_network_namespace(
    kube_cluster, kubectl_binary, bwrap_binary
):
    assert run_kubectl(kube_cluster.kubeconfig_path, "get", "--raw", "/readyz").stdout == "ok"
    # The same request from a sandbox with its own (empty) network namespace cannot connect.
    done = subprocess.run(
        [
            *_sandbox(bwrap_binary, kubectl_binary),
            "--ro-bind",
            kube_cluster.kubeconfig_path,
            "/kubeconfig",
            "--tmpfs",
            "/home",
            "--setenv",
            "HOME",
            "/home",
            "/kubectl",
            "--kubeconfig=/kubeconfig",
            "--request-timeout=5s",
            "get",
            "--raw",
            "/readyz",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "connect" in done.stderr.lower(), done.stderr
