"""Start and stop a real, local Kubernetes control plane with KWOK-simulated nodes.

A cluster is six processes on free 127.0.0.1 ports, all state in one directory::

    etcd -> kube-apiserver -> kube-controller-manager, kube-scheduler, kwok, volume-provisioner

The last one (:mod:`tests.localkube.provisioner`) serves the default StorageClass, so claims bind.

The API server runs with client-certificate authentication (a throw-away CA), RBAC + Node
authorization, service-account token signing (TokenRequest) and the default admission plugins
plus PodSecurity, ValidatingAdmissionPolicy and MutatingAdmissionPolicy
(``admissionregistration.k8s.io/v1``).  KWOK plays the kubelet of every node created
from the inventory (:mod:`tests.localkube.inventory`).

The cluster's directory holds ``state.json`` (pids, ports, server URL), so a cluster started
detached by the CLI can be inspected and stopped later by another process
(:meth:`LocalCluster.attach`).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import datetime
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import build, crds, pki, provisioner
from .inventory import KWOK_NODE_ANNOTATION, KWOK_NODE_ANNOTATION_VALUE, NodeSpec, default_inventory

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

STAGES_FILE = Path(__file__).resolve().parent / "kwok-stages.yaml"
SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/16"
POD_CIDR = "10.244.0.0/16"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
COMPONENTS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "volume-provisioner",
)
STATE_FILE = "state.json"
# The simulated nodes' address: every node's InternalIP (and so every pod's hostIP) is loopback, and KWOK
# serves their kubelet API (logs, exec, port-forward) there, on the port each node's status advertises.
NODE_IP = "127.0.0.1"
DEBUGGING_FILE = "kwok-debugging.yaml"  # KWOK's ClusterLogs / ClusterExec / ClusterPortForward
POD_LOG_FILE = "pod.log"  # every simulated container's log (CRI format), what `kubectl logs` reads
EXEC_DIR = "exec"  # the working directory (and HOME) of `kubectl exec` commands, empty
NOBODY_UID = 65534  # `kubectl exec` runs as nobody when the cluster runs as root
_PR_SET_PDEATHSIG = 1
_START_ATTEMPTS = 2


class ClusterError(RuntimeError):
    """A cluster failed to start, or a component died."""


@dataclass
class ClusterState:
    """What is persisted in ``state.json`` so that another process can manage the cluster."""

    name: str
    workdir: str
    server: str
    kubeconfig_path: str
    bin_dir: str
    ports: dict[str, int]
    pids: dict[str, int] = field(default_factory=dict)
    owns_workdir: bool = True
    started_at: float = 0.0
    ready_seconds: float = 0.0
    milestones: dict[str, float] = field(default_factory=dict)

    def save(self) -> None:
        path = Path(self.workdir) / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, workdir: Path) -> ClusterState:
        return cls(**json.loads((workdir / STATE_FILE).read_text()))


def free_port() -> int:
    """A currently unused TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    """Poll ``predicate`` until it returns true; raise :class:`ClusterError` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}")


def _die_with_parent() -> None:
    """preexec_fn: have the kernel SIGKILL the child if the test process dies abruptly.

    (Strictly: when the *thread* that spawned it exits, so start clusters from a long-lived thread.)
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _pid_is_ours(pid: int, workdir: str) -> bool:
    """True if ``pid`` is alive and its command line mentions our directory (pid reuse guard)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    zombie = stat.rsplit(")", 1)[-1].split()[0] == "Z"
    return not zombie and workdir in cmdline


def _remove_cluster_files(workdir: Path, keep_logs: bool) -> None:
    """Remove what a cluster writes into a directory it does not own."""
    for sub in ("pki", "etcd", "volumes") if keep_logs else ("pki", "etcd", "volumes", "logs"):
        shutil.rmtree(workdir / sub, ignore_errors=True)
    shutil.rmtree(workdir / EXEC_DIR, ignore_errors=True)
    for path in (*workdir.glob("*.kubeconfig"), workdir / "kubeconfig", workdir / STATE_FILE):
        path.unlink(missing_ok=True)
    for path in (workdir / DEBUGGING_FILE, workdir / POD_LOG_FILE):
        path.unlink(missing_ok=True)


def append_cri_log(path: Path, lines: Sequence[str], stream: str = "stdout") -> None:
    """Append ``lines`` to a container log file in the CRI format KWOK reads (``<RFC 3339 time> <stream>
    F <text>``, the kubelet's own), one write so that a follower never sees half a line."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    text = "".join(f"{now} {stream} F {line}\n" for line in lines)
    with open(path, "a") as handle:
        handle.write(text)


def rss_mib(pid: int) -> float:
    """Resident set size of a process in MiB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class LocalCluster:
    """One local cluster.  ``start()`` it, use ``kubeconfig_path``/``api_client()``, ``stop()`` it.

    ``nodes`` defaults to :func:`default_inventory`; ``kata=True`` adds a ``kata`` RuntimeClass;
    ``operator_crds=True`` installs the KServe and KubeRay CRDs (:mod:`tests.localkube.crds`).
    Every cluster has the default StorageClass served by :mod:`tests.localkube.provisioner`.
    ``workdir`` defaults to a fresh temporary directory (removed again by ``stop()``).
    ``detach=True`` starts the processes in their own sessions without tying their lifetime to
    this Python process (used by the CLI); otherwise they are killed if this process dies.
    """

    def __init__(
        self,
        name: str = "localkube",
        nodes: Sequence[NodeSpec] | None = None,
        kata: bool = False,
        workdir: str | Path | None = None,
        bin_dir: str | Path | None = None,
        detach: bool = False,
        operator_crds: bool = False,
    ) -> None:
        self.name = name
        self.nodes: list[NodeSpec] = list(default_inventory() if nodes is None else nodes)
        self.kata = kata
        self.operator_crds = operator_crds
        self.detach = detach
        self._requested_workdir = Path(workdir) if workdir else None
        self._bin_dir = Path(bin_dir) if bin_dir else None
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self.state: ClusterState | None = None

    # ----------------------------------------------------------------------------- public API
    @property
    def kubeconfig_path(self) -> str:
        return self._require_state().kubeconfig_path

    @property
    def server(self) -> str:
        return self._require_state().server

    @property
    def workdir(self) -> Path:
        return Path(self._require_state().workdir)

    @property
    def pod_log_path(self) -> Path:
        """The file KWOK serves as every simulated container's log (``kubectl logs``); CRI log format."""
        return self.workdir / POD_LOG_FILE

    @property
    def exec_dir(self) -> Path:
        """The empty working directory (and ``HOME``) of the commands ``kubectl exec`` runs here."""
        return self.workdir / EXEC_DIR

    @property
    def port_forward_target(self) -> tuple[str, int]:
        """Where KWOK forwards every port of every simulated pod (``kubectl port-forward``): a loopback
        address a test listens on while it port-forwards (nothing listens there otherwise)."""
        return (NODE_IP, self._require_state().ports["pod-port-forward"])

    def append_pod_log(self, *lines: str, stream: str = "stdout") -> None:
        """Append ``lines`` to every simulated container's log (what ``kubectl logs -f`` then shows)."""
        append_cri_log(self.pod_log_path, lines, stream)

    def api_client(self) -> ApiClient:
        """A new ``kubernetes.client.ApiClient`` authenticated as cluster admin (close it after use)."""
        from kubernetes import config

        return config.new_client_from_config(config_file=self.kubeconfig_path)

    @classmethod
    def attach(cls, workdir: str | Path) -> LocalCluster:
        """Manage a cluster started by another process (reads ``state.json`` in ``workdir``)."""
        state = ClusterState.load(Path(workdir))
        cluster = cls(name=state.name, nodes=[], workdir=workdir, bin_dir=state.bin_dir, detach=True)
        cluster.state = state
        return cluster

    def start(self, timeout: float = 120.0) -> LocalCluster:
        """Start every component, create the inventory, and wait until the cluster is usable.

        ``timeout`` bounds the start-up proper; building the binaries (first use only) comes on
        top.  On failure everything is stopped and the logs are kept in the cluster directory.
        """
        if self.state is not None:
            raise ClusterError(f"cluster {self.name} already started")
        bin_dir = self._bin_dir or build.ensure_binaries()
        for attempt in range(1, _START_ATTEMPTS + 1):
            try:
                return self._start_once(bin_dir, timeout)
            except ClusterError as error:
                # A port picked as free may have been taken meanwhile: retry on fresh ports.
                if attempt == _START_ATTEMPTS or "address already in use" not in str(error):
                    raise
        raise AssertionError("unreachable")

    def _start_once(self, bin_dir: Path, timeout: float) -> LocalCluster:
        started = time.monotonic()
        self.state = self._prepare_workdir(bin_dir)
        if not self.detach:
            atexit.register(self.stop)
        try:
            self._boot(deadline=started + timeout)
        except BaseException as error:
            workdir = self.state.workdir
            self.stop(remove_workdir=False)
            if isinstance(error, ClusterError):
                raise ClusterError(f"{error}\n(cluster {self.name}: logs kept in {workdir}/logs)") from error
            raise
        self.state.ready_seconds = round(time.monotonic() - started, 2)
        self.state.save()
        return self

    def stop(self, remove_workdir: bool = True, grace: float = 10.0) -> None:
        """Terminate the components one by one, clients first and etcd last, then clean up.

        Each gets SIGTERM and, if still alive after ``grace`` seconds, SIGKILL.  (Stopping them
        in order matters: an API server whose etcd is already gone takes long to shut down.)
        With ``remove_workdir`` the directory is removed if this cluster created it, otherwise
        only the files it put there; without, just ``state.json`` goes and the logs stay.
        """
        state = self.state
        if state is None:
            return
        for component in reversed(COMPONENTS):
            pid = state.pids.pop(component, None)
            if pid is not None:
                self._terminate(component, pid, state.workdir, grace)
        self._processes.clear()
        workdir = Path(state.workdir)
        if remove_workdir and state.owns_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        elif remove_workdir:
            _remove_cluster_files(workdir, keep_logs=False)
        else:
            (workdir / STATE_FILE).unlink(missing_ok=True)
        self.state = None
        atexit.unregister(self.stop)

    def _terminate(self, component: str, pid: int, workdir: str, grace: float) -> None:
        if not _pid_is_ours(pid, workdir):
            return
        self._signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while self._alive(pid, workdir) and time.monotonic() < deadline:
            time.sleep(0.02)
        if self._alive(pid, workdir):
            self._signal(pid, signal.SIGKILL)
        process = self._processes.get(component)
        if process is not None:
            process.wait()

    def status(self) -> dict[str, Any]:
        """Liveness and memory of each component plus API server readiness."""
        state = self._require_state()
        components = {
            name: {"pid": pid, "alive": _pid_is_ours(pid, state.workdir), "rss_mib": round(rss_mib(pid), 1)}
            for name, pid in state.pids.items()
        }
        return {
            "name": state.name,
            "server": state.server,
            "kubeconfig": state.kubeconfig_path,
            "workdir": state.workdir,
            "ready": self._https_ok(state.ports["kube-apiserver"], "/readyz"),
            "ready_seconds": state.ready_seconds,
            "milestones": state.milestones,
            "components": components,
            "total_rss_mib": round(sum(c["rss_mib"] for c in components.values()), 1),
        }

    def __enter__(self) -> LocalCluster:
        return self.start() if self.state is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        server = self.state.server if self.state else "stopped"
        return f"LocalCluster(name={self.name!r}, server={server!r})"

    # ------------------------------------------------------------------------- preparation
    def _require_state(self) -> ClusterState:
        if self.state is None:
            raise ClusterError(f"cluster {self.name} is not running")
        return self.state

    def _prepare_workdir(self, bin_dir: Path) -> ClusterState:
        """Create the directory, PKI and kubeconfigs; choose the ports."""
        if self._requested_workdir is None:
            workdir = Path(tempfile.mkdtemp(prefix=f"localkube-{self.name}-"))
            owns = True
        else:
            workdir = self._requested_workdir.resolve()
            owns = not workdir.exists()
            if (workdir / STATE_FILE).exists():
                raise ClusterError(f"{workdir} already holds a cluster; stop it first")
            workdir.mkdir(parents=True, exist_ok=True)
            _remove_cluster_files(workdir, keep_logs=True)  # leftovers of a failed start
        for sub in ("pki", "logs", "etcd", "volumes"):
            (workdir / sub).mkdir(mode=0o700, exist_ok=True)
        # `kubectl exec` runs in the empty exec/ directory as nobody when we are root (see _debugging):
        # the cluster directory must be traversable (its secrets stay in 0700 directories / 0600 files).
        (workdir / EXEC_DIR).mkdir(mode=0o755, exist_ok=True)
        (workdir / EXEC_DIR).chmod(0o755)
        if os.geteuid() == 0:
            workdir.chmod(0o711)
        append_cri_log(workdir / POD_LOG_FILE, ("localkube: simulated container started",), "stdout")
        ports = {
            name: free_port()
            for name in (
                "etcd-client",
                "etcd-peer",
                "kube-apiserver",
                "kube-controller-manager",
                "kube-scheduler",
                "kwok-kubelet",  # KWOK's kubelet API for every node (logs, exec, port-forward)
                "pod-port-forward",  # what a pod's forwarded port reaches (``port_forward_target``)
            )
        }
        server = f"https://127.0.0.1:{ports['kube-apiserver']}"
        state = ClusterState(
            name=self.name,
            workdir=str(workdir),
            server=server,
            kubeconfig_path=str(workdir / "kubeconfig"),
            bin_dir=str(bin_dir),
            ports=ports,
            owns_workdir=owns,
            started_at=time.time(),
        )
        self._write_pki(state)
        self._write_debugging_config(state)
        state.save()
        return state

    @staticmethod
    def _write_debugging_config(state: ClusterState) -> None:
        """KWOK's answers to the kubelet API's logs, exec and port-forward for every simulated pod.

        Cluster-wide rules from a file only (no KWOK CRDs): nothing a tenant can create in the cluster
        changes what they run or where they connect.  ``exec`` runs the requested command as a local
        process of this machine, so it is constrained: the working directory and ``HOME`` are the empty
        ``exec/`` directory, the environment is KWOK's own (cleared down to ``PATH``, ``HOME``, ``LANG``
        in :meth:`_spawn`) plus ``LOCALKUBE_SIMULATED_POD=1``, and when the cluster runs as root the
        command runs as ``nobody``.  Every forwarded port reaches ``port_forward_target`` on loopback.
        """
        workdir = Path(state.workdir)
        exec_target: dict[str, Any] = {
            "workDir": str(workdir / EXEC_DIR),
            "envs": [{"name": "LOCALKUBE_SIMULATED_POD", "value": "1"}],
        }
        if os.geteuid() == 0:
            exec_target["securityContext"] = {"runAsUser": NOBODY_UID, "runAsGroup": NOBODY_UID}
        documents = [
            {"kind": "ClusterLogs", "spec": {"logs": [{"logsFile": str(workdir / POD_LOG_FILE)}]}},
            {"kind": "ClusterExec", "spec": {"execs": [{"local": exec_target}]}},
            {
                "kind": "ClusterPortForward",
                "spec": {
                    "forwards": [
                        {"target": {"address": NODE_IP, "port": state.ports["pod-port-forward"]}},
                    ]
                },
            },
        ]
        text = "".join(
            "---\n"
            + json.dumps(
                {
                    "apiVersion": "kwok.x-k8s.io/v1alpha1",
                    "kind": document["kind"],
                    "metadata": {"name": f"localkube-{document['kind'].lower()}"},
                    "spec": document["spec"],
                },
                indent=2,
            )
            + "\n"
            for document in documents
        )
        (workdir / DEBUGGING_FILE).write_text(text)

    def _write_pki(self, state: ClusterState) -> None:
        workdir, pki_dir = Path(state.workdir), Path(state.workdir) / "pki"
        ca = pki.CertificateAuthority(pki_dir, f"localkube-{self.name}-ca")
        loopback = {"dns_names": ("localhost",), "ip_addresses": ("127.0.0.1",)}
        ca.issue(
            "kube-apiserver",
            "kube-apiserver",
            dns_names=(
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            ip_addresses=("127.0.0.1", "10.96.0.1"),
        )
        ca.issue("kube-controller-manager-serving", "kube-controller-manager", **loopback)
        ca.issue("kube-scheduler-serving", "kube-scheduler", **loopback)
        # KWOK serves the nodes' kubelet API on NODE_IP with a certificate of the cluster's CA, which the
        # API server verifies (--kubelet-certificate-authority); it presents the usual kubelet client
        # certificate (KWOK does not check it: see the README).
        ca.issue("kwok-kubelet-serving", "kwok-kubelet", dns_names=("localhost",), ip_addresses=(NODE_IP,))
        ca.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client")  # no group: no rights here
        pki.write_service_account_keys(pki_dir)
        # Front-proxy (request-header) CA, as kubeadm sets it up: lets KCM/scheduler delegated
        # authentication and any aggregated API server trust the API server's proxied requests.
        front_proxy = pki.CertificateAuthority(
            pki_dir, f"localkube-{self.name}-front-proxy-ca", "front-proxy-ca"
        )
        front_proxy.issue("front-proxy-client", "front-proxy-client")
        clients = {
            "kubeconfig": ca.issue("admin", "localkube-admin", organizations=("system:masters",)),
            "kube-controller-manager.kubeconfig": ca.issue(
                "kube-controller-manager", "system:kube-controller-manager"
            ),
            "kube-scheduler.kubeconfig": ca.issue("kube-scheduler", "system:kube-scheduler"),
            # KWOK impersonates every kubelet, so it gets admin rights rather than one node identity;
            # its user name is a kubelet's (system:node:...) as admission policies see it (the final
            # deletion of a pod is the kubelet's), outside the system:nodes group that NodeRestriction
            # and the Node authorizer would confine to one node.
            "kwok.kubeconfig": ca.issue(
                "kwok", "system:node:kwok-controller", organizations=("system:masters",)
            ),
        }
        for filename, client in clients.items():
            pki.write_kubeconfig(workdir / filename, self.name, state.server, ca.pair, client)

    # ------------------------------------------------------------------------------ commands
    def _commands(self, state: ClusterState) -> dict[str, list[str]]:
        """Command line of every component."""
        w, p, ports, b = Path(state.workdir), Path(state.workdir) / "pki", state.ports, Path(state.bin_dir)
        etcd_url = f"http://127.0.0.1:{ports['etcd-client']}"
        peer_url = f"http://127.0.0.1:{ports['etcd-peer']}"
        return {
            "etcd": [
                str(b / "etcd"),
                f"--name={self.name}",
                f"--data-dir={w / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster={self.name}={peer_url}",
                "--unsafe-no-fsync",
                "--quota-backend-bytes=2147483648",
                "--log-level=warn",
            ],
            "kube-apiserver": [
                str(b / "kube-apiserver"),
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={ports['kube-apiserver']}",
                f"--tls-cert-file={p / 'kube-apiserver.crt'}",
                f"--tls-private-key-file={p / 'kube-apiserver.key'}",
                f"--client-ca-file={p / 'ca.crt'}",
                f"--requestheader-client-ca-file={p / 'front-proxy-ca.crt'}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--proxy-client-cert-file={p / 'front-proxy-client.crt'}",
                f"--proxy-client-key-file={p / 'front-proxy-client.key'}",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins="
                "NodeRestriction,PodSecurity,ValidatingAdmissionPolicy,MutatingAdmissionPolicy",
                f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                f"--service-account-key-file={p / 'sa.pub'}",
                f"--service-account-signing-key-file={p / 'sa.key'}",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                "--allow-privileged=true",  # so that Pod Security Admission is what rejects privileged pods
                "--endpoint-reconciler-type=none",  # 127.0.0.1 is not a valid Endpoints address
                # logs / exec / port-forward: dial the node's InternalIP (loopback, KWOK) only, never its
                # Hostname (a DNS lookup), on the port the node advertises (daemonEndpoints), over TLS.
                "--kubelet-preferred-address-types=InternalIP",
                f"--kubelet-certificate-authority={p / 'ca.crt'}",
                f"--kubelet-client-certificate={p / 'apiserver-kubelet-client.crt'}",
                f"--kubelet-client-key={p / 'apiserver-kubelet-client.key'}",
                "--profiling=false",
                "--v=1",
            ],
            "kube-controller-manager": [
                str(b / "kube-controller-manager"),
                *self._component_serving_flags(state, "kube-controller-manager"),
                f"--service-account-private-key-file={p / 'sa.key'}",
                f"--root-ca-file={p / 'ca.crt'}",
                f"--cluster-signing-cert-file={p / 'ca.crt'}",
                f"--cluster-signing-key-file={p / 'ca.key'}",
                "--use-service-account-credentials=true",
                "--controllers=*",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                "--kube-api-qps=100",
                "--kube-api-burst=200",
                "--v=1",
            ],
            "kube-scheduler": [
                str(b / "kube-scheduler"),
                *self._component_serving_flags(state, "kube-scheduler"),
                "--kube-api-qps=100",
                "--kube-api-burst=200",
                "--v=1",
            ],
            "kwok": [
                str(b / "kwok"),
                f"--kubeconfig={w / 'kwok.kubeconfig'}",
                f"--config={STAGES_FILE}",
                f"--config={w / DEBUGGING_FILE}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}={KWOK_NODE_ANNOTATION_VALUE}",
                "--node-lease-duration-seconds=40",
                f"--cidr={POD_CIDR}",
                f"--node-ip={NODE_IP}",
                f"--node-port={ports['kwok-kubelet']}",  # each node's daemonEndpoints.kubeletEndpoint
                f"--server-address={NODE_IP}:{ports['kwok-kubelet']}",
                f"--tls-cert-file={p / 'kwok-kubelet-serving.crt'}",
                f"--tls-private-key-file={p / 'kwok-kubelet-serving.key'}",
            ],
            "volume-provisioner": [
                sys.executable,
                str(Path(provisioner.__file__).resolve()),
                f"--kubeconfig={w / 'kubeconfig'}",
                f"--volumes-dir={w / 'volumes'}",
            ],
        }

    @staticmethod
    def _component_serving_flags(state: ClusterState, component: str) -> list[str]:
        """Kubeconfig, delegated auth and loopback health endpoint of KCM / the scheduler."""
        kubeconfig = Path(state.workdir) / f"{component}.kubeconfig"
        p = Path(state.workdir) / "pki"
        return [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={state.ports[component]}",
            f"--tls-cert-file={p / f'{component}-serving.crt'}",
            f"--tls-private-key-file={p / f'{component}-serving.key'}",
        ]

    # ---------------------------------------------------------------------------- processes
    def _spawn(self, state: ClusterState, component: str, command: list[str]) -> None:
        env = None  # inherited
        if component == "kwok":
            # What `kubectl exec` commands inherit (KWOK passes its environment on): nothing of ours.
            # HOME also keeps KWOK from reading a ~/.kwok/kwok.yaml of whoever runs the tests.
            env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(Path(state.workdir) / EXEC_DIR)}
            env["LANG"] = "C.UTF-8"
        with open(Path(state.workdir) / "logs" / f"{component}.log", "ab") as log:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=state.workdir,
                start_new_session=True,
                preexec_fn=None if self.detach else _die_with_parent,
            )
        self._processes[component] = process
        state.pids[component] = process.pid
        state.save()

    def _check_alive(self, state: ClusterState) -> None:
        for component, pid in state.pids.items():
            if not self._alive(pid, state.workdir):
                raise ClusterError(f"{component} exited during start-up:\n{self._log_tail(state, component)}")

    def _alive(self, pid: int, workdir: str) -> bool:
        for process in self._processes.values():
            if process.pid == pid:
                return process.poll() is None
        return _pid_is_ours(pid, workdir)

    @staticmethod
    def _signal(pid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)  # each component leads its own session/process group

    @staticmethod
    def _log_tail(state: ClusterState, component: str, lines: int = 25) -> str:
        path = Path(state.workdir) / "logs" / f"{component}.log"
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # ------------------------------------------------------------------------------ booting
    def _boot(self, deadline: float) -> None:
        state = self._require_state()
        commands = self._commands(state)
        self._spawn(state, "etcd", commands["etcd"])
        self._wait(
            state, deadline, "etcd health", lambda: self._http_ok(state.ports["etcd-client"], "/health")
        )
        self._spawn(state, "kube-apiserver", commands["kube-apiserver"])
        self._wait(
            state,
            deadline,
            "kube-apiserver /readyz",
            lambda: self._https_ok(state.ports["kube-apiserver"], "/readyz"),
        )
        for component in ("kube-controller-manager", "kube-scheduler", "kwok", "volume-provisioner"):
            self._spawn(state, component, commands[component])
        api = self.api_client()
        try:
            self._create_objects(api)
            self._wait_for_components(state, deadline, api)
        finally:
            api.close()

    def _wait(self, state: ClusterState, deadline: float, what: str, predicate: Callable[[], bool]) -> None:
        def check() -> bool:
            self._check_alive(state)
            return predicate()

        wait_until(check, max(deadline - time.monotonic(), 0.0), what)
        state.milestones[what] = round(time.time() - state.started_at, 2)

    def _create_objects(self, api: Any) -> None:
        from kubernetes import client

        core = client.CoreV1Api(api)
        for node in self.nodes:
            core.create_node(node.manifest())
        client.StorageV1Api(api).create_storage_class(provisioner.storage_class_manifest())
        if self.kata:
            client.NodeV1Api(api).create_runtime_class(
                {
                    "apiVersion": "node.k8s.io/v1",
                    "kind": "RuntimeClass",
                    "metadata": {"name": "kata"},
                    "handler": "kata",
                }
            )
        if self.operator_crds:
            crds.install(api)

    def _wait_for_components(self, state: ClusterState, deadline: float, api: Any) -> None:
        from kubernetes import client

        core = client.CoreV1Api(api)
        ports = state.ports
        self._wait(state, deadline, "nodes Ready (kwok)", lambda: self._nodes_ready(core))
        self._wait(
            state,
            deadline,
            "kube-scheduler /healthz",
            lambda: self._https_ok(ports["kube-scheduler"], "/healthz"),
        )
        self._wait(
            state,
            deadline,
            "kube-controller-manager /healthz",
            lambda: self._https_ok(ports["kube-controller-manager"], "/healthz"),
        )
        self._wait(
            state,
            deadline,
            "default service account (controller manager)",
            lambda: bool(core.list_namespaced_service_account("default").items),
        )

    def _nodes_ready(self, core: Any) -> bool:
        """All inventory nodes report Ready and carry no lifecycle (not-ready/unreachable) taint."""
        by_name = {node.metadata.name: node for node in core.list_node().items}
        for spec in self.nodes:
            node = by_name.get(spec.name)
            if node is None or not node.status.conditions:
                return False
            ready = any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)
            tainted = any(t.key.startswith("node.kubernetes.io/") for t in node.spec.taints or [])
            if not ready or tainted:
                return False
        return True

    # ------------------------------------------------------------------------------- probes
    @staticmethod
    def _get_ok(port: int, path: str, context: ssl.SSLContext | None = None) -> bool:
        """True if ``GET path`` on 127.0.0.1:``port`` answers 200 (HTTPS when given a context)."""
        if context is None:
            connection: http.client.HTTPConnection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        else:
            connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=2, context=context)
        try:
            connection.request("GET", path)
            return connection.getresponse().status == 200
        except OSError:
            return False
        finally:
            connection.close()

    def _http_ok(self, port: int, path: str) -> bool:
        return self._get_ok(port, path)

    def _https_ok(self, port: int, path: str) -> bool:
        """GET with the admin client certificate, verifying the server against the cluster CA."""
        pki_dir = Path(self._require_state().workdir) / "pki"
        context = ssl.create_default_context(cafile=str(pki_dir / "ca.crt"))
        context.load_cert_chain(str(pki_dir / "admin.crt"), str(pki_dir / "admin.key"))
        return self._get_ok(port, path, context)
