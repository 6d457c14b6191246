"""The simulated nodes' kubelet API on loopback: the real kubectl (v1.37.2, built from its Go module) with
the cluster admin's kubeconfig runs ``logs``, ``logs -f``, ``exec`` and ``port-forward`` against a
KWOK-simulated pod end to end (kubectl -> kube-apiserver -> KWOK on 127.0.0.1 -> a log file / a local
process / a loopback server), and nothing dials a node's or pod's simulated address.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from tests.localkube.cluster import NODE_IP, POD_CIDR
from tests.localkube.helpers import create_namespace, pod_port_server, unique_name
from tests.support.kubectl import (
    get_through_forward,
    output_lines,
    popen_kubectl,
    run_kubectl,
    stop_kubectl,
    wait_line,
)
from tests.support.wait import wait_for

pytestmark = pytest.mark.kube


@pytest.fixture(scope="module")
def pod(kube_cluster: Any) -> Iterator[tuple[str, str]]:
    """A Running simulated pod (namespace, name), deleted with its namespace afterwards."""
    api = kube_cluster.api_client()
    core = client.CoreV1Api(api)
    namespace, name = unique_name("loopback"), "web"
    create_namespace(api, namespace)
    core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": name},
            "spec": {
                "containers": [
                    {"name": "app", "image": "example.invalid/app:1", "ports": [{"containerPort": 8080}]}
                ]
            },
        },
    )
    wait_for(
        lambda: core.read_namespaced_pod(name, namespace).status.phase == "Running",
        what=f"pod {namespace}/{name} Running",
    )
    yield namespace, name
    core.delete_namespace(namespace)
    api.close()


def _kubectl(kube_cluster: Any, *args: str, **kwargs: Any):
    done = run_kubectl(kube_cluster.kubeconfig_path, *args, **kwargs)
    assert done.returncode == 0, f"kubectl {' '.join(args)}: exit {done.returncode}\n{done.stderr}"
    return done


def test_nodes_and_pods_point_the_api_server_at_kwok_on_loopback(kube_cluster, pod):
    api = kube_cluster.api_client()
    try:
        core = client.CoreV1Api(api)
        for node in core.list_node().items:
            assert {a.type: a.address for a in node.status.addresses}.get("InternalIP") == NODE_IP
            assert node.status.daemon_endpoints.kubelet_endpoint.port > 0
        status = core.read_namespaced_pod(pod[1], pod[0]).status
    finally:
        api.close()
    assert status.host_ip == NODE_IP
    # The pod's own address stays simulated: it is never dialled (port-forward goes through the kubelet).
    assert status.pod_ip.startswith(POD_CIDR.split(".0.0/")[0] + ".")


def test_logs_and_logs_follow(kube_cluster, pod):
    namespace, name = pod
    done = _kubectl(kube_cluster, "logs", "-n", namespace, name)
    assert "localkube: simulated container started" in done.stdout

    process = popen_kubectl(kube_cluster.kubeconfig_path, "logs", "-f", "-n", namespace, f"pod/{name}")
    try:
        lines = output_lines(process)
        wait_line(lines, "simulated container started", "the log so far")
        marker = unique_name("followed")
        kube_cluster.append_pod_log(f"{marker} arrived")
        wait_line(lines, rf"^{marker} arrived$", "a line appended while following")
        assert process.poll() is None  # still following
    finally:
        stop_kubectl(process)


def test_exec_runs_in_the_constrained_local_sandbox(kube_cluster, pod):
    namespace, name = pod
    done = _kubectl(kube_cluster, "exec", "-n", namespace, name, "--", "sh", "-c", "id -u; pwd; env")
    uid, cwd, *environment = done.stdout.splitlines()
    if os.geteuid() == 0:
        assert uid == "65534"  # nobody, not the test's root
    assert cwd.endswith("/exec")
    names = {line.split("=", 1)[0] for line in environment}
    assert "LOCALKUBE_SIMULATED_POD" in names
    # Only KWOK's cleared environment: nothing of the test process (its database URL, its settings).
    assert names <= {"PATH", "HOME", "LANG", "LOCALKUBE_SIMULATED_POD", "PWD", "SHLVL", "_"}, names

    # stdin reaches the command (KWOK v0.8.0 never closes it: a command reading to EOF would not end).
    echoed = _kubectl(
        kube_cluster,
        "exec",
        "-i",
        "-n",
        namespace,
        name,
        "--",
        "sh",
        "-c",
        'read line; echo "got $line"',
        input="over stdin\n",
    )
    assert echoed.stdout == "got over stdin\n"

    failed = run_kubectl(
        kube_cluster.kubeconfig_path, "exec", "-n", namespace, name, "--", "sh", "-c", "exit 3"
    )
    # KWOK v0.8.0 reports a failed command as an error naming its status, so kubectl exits 1, not 3.
    assert failed.returncode != 0
    assert "exit status 3" in failed.stderr


def test_port_forward_reaches_the_loopback_server_the_test_started(kube_cluster, pod):
    namespace, name = pod
    body = unique_name("served").encode()
    with pod_port_server(kube_cluster, body) as server:
        process = popen_kubectl(
            kube_cluster.kubeconfig_path, "port-forward", "-n", namespace, f"pod/{name}", ":8080"
        )
        try:
            local = wait_line(
                output_lines(process), r"Forwarding from 127\.0\.0\.1:(\d+) -> 8080", "forwarding"
            )
            get_through_forward(int(local.group(1)), body)  # two connections over the same forward
        finally:
            stop_kubectl(process)
    assert server.requests == 2
