"""A real Prometheus for the tests, scraping a DCGM exporter double the test controls.

* :class:`DcgmExporter`: a threaded HTTP server on 127.0.0.1 answering ``/metrics`` in the Prometheus
  text format with ``DCGM_FI_DEV_GPU_UTIL{gpu,UUID,device,modelName,Hostname,container,namespace,pod}``
  gauges, one per GPU and pod, whose values the test sets (:meth:`DcgmExporter.set_gpu`).
* :class:`Prometheus`: Debian's Prometheus binary (tests/toolchain/prometheus.py, cached) on a free
  loopback port, its TSDB in a temporary directory, scraping two exporters every second:
  ``dcgm`` (the pods' ``namespace`` label kept, as a ServiceMonitor with ``honorLabels`` or a static
  target does) and ``dcgm-kube`` (a target label ``namespace="gpu-operator"``, so Prometheus itself
  renames the pods' label to ``exported_namespace``, as in a kube-prometheus setup).
  :meth:`Prometheus.wait_for_samples` polls the query API until samples of a namespace are in.

The session fixture ``prometheus`` (registered by tests/conftest.py) shares one Prometheus: tests use
namespaces of their own (the data of earlier tests stays in it). When a collected test needs it, the
process is launched right after collection (ready in ~0.1 s; its first scrape comes ~5 s later, see
:meth:`Prometheus.wait_scraping`), so that wait overlaps the test database's set-up.
"""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

from tests.support.loopback_http import BackgroundHTTPServer, LoopbackHandler
from tests.support.wait import wait_for

METRIC = "DCGM_FI_DEV_GPU_UTIL"
SCRAPE_SECONDS = 1


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class _MetricsHandler(LoopbackHandler):
    def handle_request(self, user):
        if self.path.split("?", 1)[0] != "/metrics":
            self.reply(404, b"not found\n")
            return
        self.reply(200, self.server.owner.render(), "text/plain; version=0.0.4; charset=utf-8")


class DcgmExporter(BackgroundHTTPServer):
    """The DCGM exporter's ``/metrics``: GPU utilisation (percent) per GPU and pod, set by the test."""

    handler = _MetricsHandler
    ready_path = "/metrics"

    def __init__(self, hostname: str = "gpu-node-1"):
        super().__init__()
        self.hostname = hostname
        self._series: dict[tuple, float] = {}
        self._series_lock = threading.Lock()

    def record(self, seen) -> None:
        pass  # scraped every second for the whole session: keep no log

    def set_gpu(
        self,
        *,
        namespace: str,
        pod: str,
        percent: float,
        gpu: int = 0,
        container: str = "main",
        model: str = "NVIDIA A100-SXM4-40GB",
    ) -> None:
        """Serve ``percent`` for GPU ``gpu`` of this node, held by ``namespace``/``pod``."""
        labels = (
            ("gpu", str(gpu)),
            ("UUID", f"GPU-{self.hostname}-{gpu:04d}-0000-0000-000000000000"),
            ("device", f"nvidia{gpu}"),
            ("modelName", model),
            ("Hostname", self.hostname),
            ("container", container),
            ("namespace", namespace),
            ("pod", pod),
        )
        with self._series_lock:
            for key in [k for k in self._series if dict(k)["gpu"] == str(gpu)]:
                del self._series[key]  # one pod per GPU at a time, as on a real node
            self._series[labels] = percent

    def clear(self, namespace: str) -> None:
        with self._series_lock:
            for key in [k for k in self._series if dict(k)["namespace"] == namespace]:
                del self._series[key]

    def render(self) -> bytes:
        lines = [f"# HELP {METRIC} GPU utilization (in %).", f"# TYPE {METRIC} gauge"]
        with self._series_lock:
            for labels, value in self._series.items():
                text = ",".join(f'{name}="{_escape(v)}"' for name, v in labels)
                lines.append(f"{METRIC}{{{text}}} {value:g}")
        return ("\n".join(lines) + "\n").encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Prometheus:
    """The Prometheus process and the exporters it scrapes."""

    def __init__(self, binary: str, workdir: Path):
        self.binary = binary
        self.workdir = workdir
        self.exporter = DcgmExporter("gpu-node-1")
        self.exporter_kube = DcgmExporter("gpu-node-2")
        self.process: subprocess.Popen | None = None
        self.port = 0
        self.startup_seconds = 0.0
        self.launched_at = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def _config(self) -> str:
        return json.dumps(  # JSON is YAML
            {
                "global": {"scrape_interval": f"{SCRAPE_SECONDS}s", "scrape_timeout": f"{SCRAPE_SECONDS}s"},
                "scrape_configs": [
                    {
                        "job_name": "dcgm",
                        "static_configs": [{"targets": [f"127.0.0.1:{self.exporter.port}"]}],
                    },
                    {
                        "job_name": "dcgm-kube",
                        "static_configs": [
                            {
                                "targets": [f"127.0.0.1:{self.exporter_kube.port}"],
                                "labels": {"namespace": "gpu-operator"},
                            }
                        ],
                    },
                ],
            },
            indent=2,
        )

    def start(self) -> Prometheus:
        return self.launch().wait_scraping()

    def launch(self) -> Prometheus:
        """Start the exporters and the process; return once Prometheus answers (~0.1 s)."""
        self.launched_at = time.monotonic()
        self.exporter.start()
        self.exporter_kube.start()
        config = self.workdir / "prometheus.yml"
        config.write_text(self._config())
        self.log_path = self.workdir / "prometheus.log"
        for _attempt in range(3):  # the free port may be taken between the probe and the bind
            self.port = free_port()
            with open(self.log_path, "w") as log:
                self.process = subprocess.Popen(
                    [
                        self.binary,
                        f"--config.file={config}",
                        f"--storage.tsdb.path={self.workdir / 'data'}",
                        f"--web.listen-address=127.0.0.1:{self.port}",
                        "--storage.tsdb.retention.time=1d",
                        "--log.level=warn",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            try:
                wait_for(self._ready, timeout=30, interval=0.05, what="Prometheus ready", check=self._alive)
                return self
            except RuntimeError:
                continue
        raise RuntimeError(f"Prometheus did not start:\n{self.log_path.read_text()[-2000:]}")

    def wait_scraping(self) -> Prometheus:
        """Poll until both exporters were scraped (``up`` is 1 for each job). Prometheus 2.42 applies
        new targets on a fixed 5 s tick of its discovery and scrape managers (no flag changes it), so
        the first scrape comes ~5 s after the launch: the plugin launches it when the tests are
        collected, and that wait passes while the test database is being set up."""
        wait_for(
            lambda: len([v for _labels, v in self.query("up") if v == 1.0]) == 2,
            timeout=30,
            interval=0.1,
            what="Prometheus scraping both exporters",
            check=self._alive,
        )
        self.startup_seconds = time.monotonic() - self.launched_at
        return self

    def _alive(self) -> None:
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"Prometheus exited:\n{self.log_path.read_text()[-2000:]}")

    def _get(self, path: str) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def _ready(self) -> bool:
        try:
            return self._get("/-/ready")[0] == 200
        except OSError:
            return False

    def _api(self, promql: str, at: float | None) -> dict:
        params = {"query": promql} | ({"time": f"{at:.3f}"} if at is not None else {})
        status, body = self._get(f"/api/v1/query?{urllib.parse.urlencode(params)}")
        assert status == 200, body[:500]
        return json.loads(body)["data"]

    def stop(self) -> None:
        self.exporter.stop()
        self.exporter_kube.stop()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.workdir.name.startswith("paas-prometheus-"):  # launched early: our own temporary directory
            shutil.rmtree(self.workdir, ignore_errors=True)

    def query(self, promql: str, at: float | None = None) -> list[tuple[dict, float]]:
        """The test's own look at the data (straight HTTP, not the platform's client)."""
        return [(item["metric"], float(item["value"][1])) for item in self._api(promql, at)["result"]]

    def query_raw(self, selector: str, at: float) -> list[list]:
        """The raw samples ``[[time, "value"], ...]`` of a range selector (one series) at ``at``."""
        data = self._api(selector, at)
        assert data["resultType"] == "matrix" and len(data["result"]) == 1, data
        return data["result"][0]["values"]

    def samples(self, namespace: str, label: str = "namespace") -> int:
        """How many samples of ``namespace`` Prometheus holds from the last 10 minutes."""
        found = self.query(f'count_over_time({METRIC}{{{label}="{namespace}"}}[10m])')
        return int(sum(value for _labels, value in found))

    def wait_for_samples(self, namespace: str, count: int = 2, *, label: str = "namespace") -> int:
        """Poll until ``count`` samples of ``namespace`` are in (``label``: exported_namespace for the
        ``dcgm-kube`` exporter); returns how many there are."""
        return wait_for(
            lambda: (n := self.samples(namespace, label)) >= count and n,
            timeout=30,
            interval=0.2,
            what=f"{count} samples of {namespace} in Prometheus",
            check=self._alive,
        )


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    from tests.toolchain import prometheus as toolchain_prometheus

    try:
        return toolchain_prometheus.ensure()
    except toolchain_prometheus.PrometheusUnavailable as exc:
        pytest.fail(str(exc))


_launched_early: Prometheus | None = None


def pytest_collection_modifyitems(session, config, items):
    """Launch Prometheus as soon as the tests are collected when one of them needs it, so that its
    first scrape (~5 s after the launch) overlaps the test database's set-up; the fixture takes it."""
    global _launched_early
    if _launched_early is not None or not any("prometheus" in getattr(i, "fixturenames", ()) for i in items):
        return
    from tests.toolchain import prometheus as toolchain_prometheus

    try:
        binary = toolchain_prometheus.ensure()
        _launched_early = Prometheus(binary, Path(tempfile.mkdtemp(prefix="paas-prometheus-"))).launch()
    except (toolchain_prometheus.PrometheusUnavailable, RuntimeError, OSError):
        _launched_early = None  # the fixture launches it again and reports what fails


def pytest_sessionfinish(session, exitstatus):
    if _launched_early is not None:  # never handed to the fixture (its tests were deselected)
        _launched_early.stop()


@pytest.fixture(scope="session")
def prometheus(prometheus_binary, tmp_path_factory):
    global _launched_early
    server, _launched_early = _launched_early, None
    server = server or Prometheus(prometheus_binary, tmp_path_factory.mktemp("prometheus")).launch()
    try:
        yield server.wait_scraping()
    finally:
        server.stop()
