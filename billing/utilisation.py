"""GPU utilisation from a cluster's Prometheus (the DCGM exporter's per-pod GPU utilisation).

``gpu_utilisation(cluster, start=, end=)`` returns the mean utilisation (0..1) per namespace over
[start, end), or None when the cluster has no Prometheus URL or its Prometheus did not answer (the
figures are then unknown, never zero). The roll-up (billing/rollup.py) stores it on each usage record
and derives the idle-but-allocated GPU-seconds from it.

The query, evaluated at ``end`` through the cluster's Prometheus HTTP API (inventory/prometheus.py:
the outbound-address policy, short timeouts, a bounded answer)::

    avg by (namespace) (
      label_replace(avg_over_time(DCGM_FI_DEV_GPU_UTIL[<end - start>s]),
                    "namespace", "$1", "exported_namespace", "(.+)"))

* ``avg_over_time`` over the period, per series (one series per GPU and pod: the DCGM exporter with
  its Kubernetes pod mapping labels each GPU's samples with the pod's ``namespace``, ``pod`` and
  ``container``). A pod that ran part of the period is averaged over the samples it has: the figure is
  its utilisation while it held the GPU, which is what idle-but-allocated time is measured against.
* ``label_replace``: where Prometheus scraped the exporter with a target label ``namespace`` of its
  own (a ServiceMonitor without ``honorLabels``), the pod's namespace is in ``exported_namespace``.
* ``avg by (namespace)``: the mean over a namespace's GPUs (an instance with several GPUs).

DCGM reports percent: divided by 100 and clamped to 0..1. Series without a namespace (a GPU no pod
holds) are left out.
"""

import datetime as dt
import logging
import math

from inventory.prometheus import UTILISATION_METRIC, PrometheusFailed, instant_query

log = logging.getLogger(__name__)


def utilisation_query(seconds: int) -> str:
    return (
        f"avg by (namespace) (label_replace(avg_over_time({UTILISATION_METRIC}[{seconds}s]), "
        '"namespace", "$1", "exported_namespace", "(.+)"))'
    )


def gpu_utilisation(cluster, *, start: dt.datetime, end: dt.datetime) -> dict[str, float] | None:
    """``{namespace: 0..1}`` over [start, end) from ``cluster``'s Prometheus; None when unknown."""
    url = getattr(cluster, "prometheus_url", "") or ""
    if not url:
        return None
    seconds = int((end - start).total_seconds())
    if seconds <= 0:
        return None
    try:
        samples = instant_query(url, utilisation_query(seconds), at=end)
    except PrometheusFailed as exc:
        log.warning("GPU utilisation of cluster %s is unknown for %s..%s: %s", cluster.name, start, end, exc)
        return None
    figures: dict[str, float] = {}
    for labels, percent in samples:
        namespace = labels.get("namespace")
        if not isinstance(namespace, str) or not namespace or not math.isfinite(percent):
            continue
        figures[namespace] = min(1.0, max(0.0, percent / 100.0))
    return figures
