"""GPU utilisation from a cluster's Prometheus (the DCGM exporter's per-pod GPU utilisation).

``gpu_utilisation(cluster, start=, end=)`` returns the mean utilisation (0..1) per namespace over
[start, end), or None when the cluster has no Prometheus URL or it did not answer (the figures are then
unknown, never zero). Written by its part of issue 16; until then every cluster is "not configured".
"""

import datetime as dt


def gpu_utilisation(cluster, *, start: dt.datetime, end: dt.datetime) -> dict[str, float] | None:
    if not getattr(cluster, "prometheus_url", ""):
        return None
    return None
