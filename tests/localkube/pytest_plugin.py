"""pytest plugin: real local Kubernetes clusters for the test-suite.

Enable it with ``pytest_plugins = ["tests.localkube.pytest_plugin"]`` in ``tests/conftest.py``
(or ``-p tests.localkube.pytest_plugin``).  Fixtures:

``kube_cluster``
    Session-wide cluster with the default GPU inventory and the ``kata`` RuntimeClass.  If
    ``LOCALKUBE_KUBECONFIG`` is set, that already running cluster is used instead (dev loop:
    ``python -m tests.localkube start`` once, then export the printed path).
``operator_crds``
    Installs the KServe and KubeRay CRDs (pinned, from their Go modules: :mod:`tests.localkube.crds`)
    into ``kube_cluster`` once per session; yields their names.
``kube_cluster_factory``
    ``factory(name, nodes=None, kata=False)`` starts an additional cluster (multi-cluster tests);
    all of them are stopped at the end of the session.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import pytest

from .cluster import LocalCluster
from .inventory import NodeSpec

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

KUBECONFIG_ENV = "LOCALKUBE_KUBECONFIG"


class KubeCluster(Protocol):
    """What tests may rely on, whichever way the cluster was obtained."""

    name: str

    @property
    def kubeconfig_path(self) -> str: ...

    @property
    def server(self) -> str: ...

    def api_client(self) -> ApiClient: ...

    def stop(self) -> None: ...

    # The simulated pods' kubelet API, served by KWOK on loopback (logs, exec, port-forward):
    @property
    def pod_log_path(self) -> Path: ...

    @property
    def port_forward_target(self) -> tuple[str, int]: ...

    def append_pod_log(self, *lines: str, stream: str = "stdout") -> None: ...


class ExistingCluster:
    """A cluster someone else runs, described only by its kubeconfig; ``stop()`` leaves it alone."""

    def __init__(self, kubeconfig_path: str) -> None:
        from kubernetes import client, config

        _contexts, current = config.list_kube_config_contexts(config_file=kubeconfig_path)
        configuration = client.Configuration()
        config.load_kube_config(config_file=kubeconfig_path, client_configuration=configuration)
        self.kubeconfig_path = kubeconfig_path
        self.server: str = configuration.host
        self.name: str = current["name"] if current else "existing"

    def api_client(self) -> ApiClient:
        from kubernetes import config

        return config.new_client_from_config(config_file=self.kubeconfig_path)

    def stop(self) -> None:
        """Nothing to do: the cluster belongs to whoever started it."""

    def _local(self) -> LocalCluster:
        """The localkube cluster whose directory holds this kubeconfig (``python -m tests.localkube
        start``), for what only its files tell: the simulated pods' log file and port-forward target."""
        workdir = Path(self.kubeconfig_path).resolve().parent
        try:
            local = LocalCluster.attach(workdir)
        except (OSError, TypeError, ValueError) as error:
            raise RuntimeError(
                f"{self.kubeconfig_path} is not the kubeconfig of a localkube cluster"
            ) from error
        if "pod-port-forward" not in local.state.ports:  # type: ignore[union-attr]
            raise RuntimeError(f"the localkube cluster in {workdir} predates loopback kubelets: restart it")
        return local

    @property
    def pod_log_path(self) -> Path:
        return self._local().pod_log_path

    @property
    def port_forward_target(self) -> tuple[str, int]:
        return self._local().port_forward_target

    def append_pod_log(self, *lines: str, stream: str = "stdout") -> None:
        self._local().append_pod_log(*lines, stream=stream)

    def __repr__(self) -> str:
        return f"ExistingCluster(name={self.name!r}, server={self.server!r})"


ClusterFactory = Callable[..., LocalCluster]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "kube: needs a real local Kubernetes cluster (tests/localkube)")


@pytest.fixture(scope="session")
def kube_cluster() -> Iterator[KubeCluster]:
    """The shared cluster (started once per session unless ``LOCALKUBE_KUBECONFIG`` is set)."""
    existing = os.environ.get(KUBECONFIG_ENV)
    if existing:
        yield ExistingCluster(existing)
        return
    cluster = LocalCluster(name="localkube", kata=True).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def operator_crds(kube_cluster: KubeCluster) -> list[str]:
    """The operators' real CRDs in the shared cluster (installed once; idempotent)."""
    from . import crds

    api = kube_cluster.api_client()
    try:
        return crds.install(api)
    finally:
        api.close()


@pytest.fixture(scope="session")
def kube_cluster_factory() -> Iterator[ClusterFactory]:
    """Start extra clusters on demand; every one of them is stopped at session end."""
    started: list[LocalCluster] = []

    def factory(name: str, nodes: Sequence[NodeSpec] | None = None, kata: bool = False) -> LocalCluster:
        cluster = LocalCluster(name=name, nodes=nodes, kata=kata).start()
        started.append(cluster)
        return cluster

    try:
        yield factory
    finally:
        for cluster in reversed(started):
            cluster.stop()
