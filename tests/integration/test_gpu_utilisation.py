"""GPU utilisation per namespace from a cluster's Prometheus (billing/utilisation.py), against a real
Prometheus (Debian's package, tests/toolchain/prometheus.py) scraping a DCGM exporter the test serves
(tests/support/prometheus.py). Unknown is None, never 0: no URL, nothing listening, not a Prometheus,
an answer too large, an address the outbound policy refuses (checked before any connection)."""

import datetime as dt
import json
import logging
import time

import pytest

from billing.utilisation import gpu_utilisation
from inventory.models import Cluster
from inventory.prometheus import MAX_BODY, PrometheusFailed, clean_prometheus_url, instant_query
from paas.outbound import OutboundRefused
from tests.factories import make_synced_cluster
from tests.support.canary import CANARY
from tests.support.loopback_http import BackgroundHTTPServer, LoopbackHandler
from tests.support.prometheus import METRIC, free_port

pytestmark = pytest.mark.django_db


def _cluster(name: str, url: str) -> Cluster:
    cluster = make_synced_cluster(name=name)
    Cluster.objects.filter(pk=cluster.pk).update(prometheus_url=url)  # as stored (legacy rows too)
    cluster.refresh_from_db()
    return cluster


def _window(seconds: int = 600) -> tuple[dt.datetime, dt.datetime]:
    """[now - seconds, now) in whole seconds, ``now`` rounded up (every sample so far is inside)."""
    end = dt.datetime.fromtimestamp(int(time.time()) + 1, dt.UTC)
    return end - dt.timedelta(seconds=seconds), end


def test_per_namespace_utilisation_is_what_the_exporter_served(prometheus):
    prometheus.exporter.set_gpu(namespace="util-a", pod="a-0", percent=25, gpu=0)
    prometheus.exporter.set_gpu(namespace="util-b", pod="b-0", percent=20, gpu=1)  # one instance,
    prometheus.exporter.set_gpu(namespace="util-b", pod="b-0", percent=60, gpu=2)  # two GPUs
    prometheus.exporter.set_gpu(namespace="util-idle", pod="idle-0", percent=0, gpu=3)
    prometheus.exporter.set_gpu(namespace="util-odd", pod="odd-0", percent=130, gpu=4)  # clamped
    # Scraped with a target label ``namespace``: Prometheus renames the pod's to exported_namespace.
    prometheus.exporter_kube.set_gpu(namespace="util-c", pod="c-0", percent=90, gpu=0)
    for namespace in ("util-a", "util-idle", "util-odd"):
        prometheus.wait_for_samples(namespace, 3)
    prometheus.wait_for_samples("util-b", 6)  # 3 per GPU
    prometheus.wait_for_samples("util-c", 3, label="exported_namespace")
    assert prometheus.query(f'{METRIC}{{exported_namespace="util-c"}}')[0][0]["namespace"] == "gpu-operator"

    cluster = _cluster("prom-a", prometheus.url)
    start, end = _window()
    figures = gpu_utilisation(cluster, start=start, end=end)

    assert figures is not None
    assert figures["util-a"] == pytest.approx(0.25)
    assert figures["util-b"] == pytest.approx(0.40)  # the mean of its GPUs
    assert figures["util-idle"] == 0.0  # known idle: 0, not None
    assert figures["util-odd"] == 1.0
    assert figures["util-c"] == pytest.approx(0.90)
    assert "gpu-operator" not in figures  # the exporter's own namespace is not a tenant's
    assert all(0.0 <= v <= 1.0 for v in figures.values())


def test_a_changing_utilisation_is_the_mean_of_the_samples_in_the_period(prometheus):
    """Averaging over time: the figure equals the mean of the raw samples Prometheus holds for the
    period (read back independently), and a period before the namespace existed knows nothing of it."""
    before = dt.datetime.fromtimestamp(int(time.time()), dt.UTC)
    prometheus.exporter.set_gpu(namespace="util-shift", pod="s-0", percent=10, gpu=5)
    prometheus.wait_for_samples("util-shift", 3)
    prometheus.exporter.set_gpu(namespace="util-shift", pod="s-0", percent=50, gpu=5)
    raw = prometheus.wait_for_samples("util-shift", 6)
    assert raw >= 6

    cluster = _cluster("prom-shift", prometheus.url)
    start, end = _window(900)
    figure = gpu_utilisation(cluster, start=start, end=end)["util-shift"]
    matrix = prometheus.query_raw(f'{METRIC}{{namespace="util-shift"}}[900s]', at=end.timestamp())
    values = [float(v) for _t, v in matrix]
    assert set(values) == {10.0, 50.0}
    assert figure == pytest.approx(sum(values) / len(values) / 100)
    assert 0.10 < figure < 0.50

    earlier = gpu_utilisation(
        cluster, start=before - dt.timedelta(hours=2), end=before - dt.timedelta(hours=1)
    )
    assert earlier is not None and "util-shift" not in earlier  # answered, but nothing known: no key


def test_no_or_a_broken_prometheus_url_gives_none(db):
    start, end = _window()
    assert gpu_utilisation(_cluster("prom-none", ""), start=start, end=end) is None
    assert gpu_utilisation(None, start=start, end=end) is None
    for n, stored in enumerate(("http://[::1/", "http://127.0.0.1:99999/", "gopher://127.0.0.1/")):
        assert gpu_utilisation(_cluster(f"prom-broken-{n}", stored), start=start, end=end) is None


class _Answers(LoopbackHandler):
    def handle_request(self, user):
        status, body = self.server.owner.answer
        self.reply(status, body, "application/json")


class FakeUpstream(BackgroundHTTPServer):
    """Something at the configured address that is not a working Prometheus."""

    handler = _Answers
    answer = (200, b"{}")


FAILURES = [
    ("not-prometheus", (404, b"<html>not found</html>"), "not the Prometheus HTTP API"),
    ("prometheus-error", (422, b'{"status":"error","error":"bad_data: parse error"}'), "HTTP 422"),
    ("a-matrix", (200, b'{"status":"success","data":{"resultType":"matrix","result":[]}}'), "not a vector"),
    ("too-large", (200, b'{"status":"success","data":' + b" " * (MAX_BODY + 10) + b"{}}"), "more than 4 MiB"),
]


@pytest.mark.parametrize(("case", "answer", "expected"), FAILURES, ids=[f[0] for f in FAILURES])
def test_a_failing_prometheus_gives_none_and_says_why(db, caplog, case, answer, expected):
    with FakeUpstream() as upstream:
        upstream.answer = answer
        cluster = _cluster(f"prom-{case}", upstream.url + "/")
        start, end = _window()
        with caplog.at_level(logging.WARNING, logger="billing.utilisation"):
            assert gpu_utilisation(cluster, start=start, end=end) is None
    assert expected in caplog.text and f"prom-{case}" in caplog.text


def test_an_unreachable_prometheus_gives_none(db, caplog):
    cluster = _cluster("prom-down", f"http://127.0.0.1:{free_port()}/")  # nothing listens there
    start, end = _window()
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="billing.utilisation"):
        assert gpu_utilisation(cluster, start=start, end=end) is None
    assert "refused the connection" in caplog.text
    assert time.monotonic() - started < 5


def test_the_outbound_policy_refuses_other_addresses_before_connecting(db, prometheus, settings, caplog):
    # Given: refused as a field error (metadata, link-local, a name that resolves to loopback when
    # loopback is not allowed) and never stored.
    for url in ("http://169.254.169.254/", "http://[fe80::1]:9090/", "http://[::ffff:169.254.169.254]/"):
        with pytest.raises(OutboundRefused) as refused:
            clean_prometheus_url(url)
        assert "prometheus_url" in refused.value.fields, url
    # Stored anyway (a row from before the rule, a setting changed since): checked again when
    # connecting, refused without a connection attempt, and the figure is unknown.
    cluster = _cluster("prom-metadata", "http://169.254.169.254:9090/")
    start, end = _window()
    with caplog.at_level(logging.WARNING, logger="billing.utilisation"):
        assert gpu_utilisation(cluster, start=start, end=end) is None
    assert "refused by the outbound-address policy" in caplog.text and "metadata" in caplog.text

    settings.PAAS_OUTBOUND_ALLOW_LOOPBACK = False  # the production default
    with pytest.raises(OutboundRefused, match="loopback"):
        clean_prometheus_url(prometheus.url)
    with pytest.raises(OutboundRefused, match=r"localhost resolves to 127\.0\.0\.1"):
        clean_prometheus_url(f"http://localhost:{prometheus.port}/")
    real = _cluster("prom-loopback", prometheus.url)
    assert gpu_utilisation(real, start=start, end=end) is None
    with pytest.raises(PrometheusFailed, match="loopback"):
        instant_query(prometheus.url, "up", at=end)


def test_a_url_with_credentials_is_refused_and_never_used_or_logged(db, prometheus, caplog):
    url = f"http://reader:{CANARY}@127.0.0.1:{prometheus.port}/"
    with pytest.raises(OutboundRefused) as refused:
        clean_prometheus_url(url)
    assert "user name or password" in refused.value.fields["prometheus_url"][0]
    assert CANARY not in json.dumps(refused.value.fields)
    cluster = _cluster("prom-creds", url)
    start, end = _window()
    with caplog.at_level(logging.WARNING, logger="billing.utilisation"):
        assert gpu_utilisation(cluster, start=start, end=end) is None
    assert "user name or password" in caplog.text  # (the canary fixture fails the test if it is logged)
