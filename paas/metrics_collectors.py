"""The core's gauges read at scrape time (paas/metrics.py): the audit stream's lag per sink.

One query for every sink: each enabled sink with its chain's head (``with_head``: an index lookup on
(chain, seq)) and the time of its oldest undelivered event (another lookup on the same index).
"""

from __future__ import annotations

from django.db.models import BigIntegerField, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from paas.audit_stream import with_head
from paas.models import AuditEvent, AuditSink


def audit_sinks():
    chain = Coalesce(OuterRef("org_id"), Value(0), output_field=BigIntegerField())
    oldest = AuditEvent.objects.filter(chain=chain, seq__gt=OuterRef("cursor")).order_by("seq")
    sinks = (
        with_head(AuditSink.objects.filter(enabled=True))
        .annotate(oldest_pending=Subquery(oldest.values("created_at")[:1]))
        .values_list("name", "org__name", "cursor", "head", "oldest_pending", "consecutive_failures")
        .order_by("pk")
    )
    labels = ["sink", "org"]
    events = GaugeMetricFamily(
        "paas_audit_sink_lag_events",
        "Audit events of the sink's chain not yet accepted by it.",
        labels=labels,
    )
    seconds = GaugeMetricFamily(
        "paas_audit_sink_lag_seconds",
        "Age of the oldest audit event the sink has not accepted yet (0: caught up).",
        labels=labels,
    )
    failures = GaugeMetricFamily(
        "paas_audit_sink_consecutive_failures",
        "Failed deliveries since the sink's last success.",
        labels=labels,
    )
    now = timezone.now()
    for name, org, cursor, head, oldest_pending, failed in sinks:
        key = [name, org or ""]  # org "": the platform's own sink (chain 0)
        events.add_metric(key, max(0, head - cursor))
        seconds.add_metric(key, (now - oldest_pending).total_seconds() if oldest_pending else 0.0)
        failures.add_metric(key, failed)
    return [events, seconds, failures]
