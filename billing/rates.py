"""Chargeback rates in force: a cluster's cost profile at a moment.

A change of a cluster's rates adds a new :class:`~billing.models.CostProfile` (history is kept); the
rates in force at a moment are those of the row with the latest ``effective_from`` at or before it. The
roll-up charges each hour at the rates in force at the hour's start.
"""

import datetime as dt

from billing.models import CostProfile


def rates_at(cluster_ids, moment: dt.datetime) -> dict[int, CostProfile]:
    """Per cluster id of ``cluster_ids``: its cost profile in force at ``moment`` (clusters without one
    are left out). One query whatever the number of clusters."""
    ids = sorted({int(i) for i in cluster_ids if i is not None})
    if not ids:
        return {}
    rows = (
        CostProfile.objects.filter(cluster_id__in=ids, effective_from__lte=moment)
        .order_by("cluster_id", "-effective_from")
        .distinct("cluster_id")
    )
    return {row.cluster_id: row for row in rows}
