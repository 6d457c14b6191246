"""The dashboards' figures as CSV: one line per time bucket and group (the pages' download links point
here). Costs have a column per currency; idle GPU-hours say "not configured" where no utilisation was
measured (never 0). Cells that a spreadsheet would run as a formula are quoted with a leading '."""

import csv
import io

from django.http import HttpResponse
from rest_framework.renderers import BaseRenderer

from billing import dashboards
from billing.usage_export import safe  # the one formula-injection rule of our CSVs


class CsvRenderer(BaseRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data if isinstance(data, (str, bytes)) else ""


def csv_text(figures: dict) -> str:
    currencies = figures["currencies"]
    chargeback = sorted(figures["totals"].chargeback_costs)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [
            "bucket",
            "group_by",
            "key",
            "group",
            *[f"cost_{c}" for c in currencies],
            *[f"chargeback_cost_{c}" for c in chargeback],
            "running_hours",
            "gpu_hours",
            "idle_gpu_hours",
            "measured_gpu_hours",
            "utilisation",
        ]
    )
    group_by = figures["query"].group_by
    for row in dashboards.series_rows(figures):
        writer.writerow(
            safe(v)
            for v in [
                row["bucket"].isoformat().replace("+00:00", "Z"),
                group_by,
                row["key"],
                row["label"],
                *[row["costs"].get(c, "0.000000") for c in currencies],
                *[row["chargeback_costs"].get(c, "0.000000") for c in chargeback],
                dashboards.hours(row["running_seconds"]),
                dashboards.hours(row["gpu_seconds"]),
                "not configured"
                if row["idle_gpu_seconds"] is None
                else dashboards.hours(row["idle_gpu_seconds"]),
                dashboards.hours(row["measured_gpu_seconds"]),
                row["utilisation"],
            ]
        )
    return out.getvalue()


def csv_response(figures: dict) -> HttpResponse:
    query = figures["query"]
    name = f"costs-{query.start:%Y%m%d%H}-{query.end:%Y%m%d%H}-{query.group_by}-{query.bucket}.csv"
    response = HttpResponse(csv_text(figures), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["Cache-Control"] = "no-store"
    return response
