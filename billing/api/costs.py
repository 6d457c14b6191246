"""``GET /api/v1/billing/costs/``: the dashboards' aggregates (billing/dashboards.py) as data or CSV.

``?start=&end=`` (a date or a time on the hour, UTC; default this month), ``group_by=`` (org, project,
user, profile, cluster, gpu_model), ``bucket=`` (hour, day, month), filters ``org=``, ``project=``,
``cluster=``, ``profile=`` (ids), ``format=csv``. The caller sees what ``billing.selectors.meters_visible``
gives them; operators also get the warm pools' standby GPU time (the provider's cost) apart.
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from billing import dashboards
from billing.api.costs_csv import CsvRenderer, csv_response

PARAMETERS = [
    OpenApiParameter(
        "start",
        str,
        description="Period start: a date (2026-11-01) or a UTC time on the hour.",
    ),
    OpenApiParameter("end", str, description="Period end: a date (inclusive) or a UTC time on the hour."),
    OpenApiParameter(
        "group_by",
        str,
        enum=list(dashboards.GROUPS),
        description="Group by (default project).",
    ),
    OpenApiParameter("bucket", str, enum=list(dashboards.BUCKETS), description="Time bucket (default day)."),
    OpenApiParameter("org", int, description="Only this organization's figures."),
    OpenApiParameter("project", int, description="Only this workspace's figures."),
    OpenApiParameter("cluster", int, description="Only this cluster's figures."),
    OpenApiParameter("profile", int, description="Only this profile's figures."),
    OpenApiParameter("format", str, enum=["json", "csv"], description="csv: one line per bucket and group."),
]


def _iso(moment) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def as_data(figures: dict) -> dict:
    query = figures["query"]
    standby = figures["standby"]
    return {
        "start": _iso(query.start),
        "end": _iso(query.end),
        "group_by": query.group_by,
        "bucket": query.bucket,
        "rolled_up_until": _iso(figures["rolled_up_until"]),
        "currencies": figures["currencies"],
        "totals": figures["totals"].as_dict(),
        "groups": dashboards.group_rows(figures),
        "series": [row | {"bucket": _iso(row["bucket"])} for row in dashboards.series_rows(figures)],
        "utilisation_notes": figures["utilisation_notes"],
        "standby": None
        if standby is None
        else {
            "note": standby["note"],
            "gpu_seconds": standby["gpu_seconds"],
            "series": [row | {"bucket": _iso(row["bucket"])} for row in standby["rows"]],
        },
    }


class CostsView(APIView):
    api_area = "billing"
    renderer_classes = [JSONRenderer, CsvRenderer]

    @extend_schema(
        parameters=PARAMETERS,
        responses={(200, "application/json"): OpenApiTypes.OBJECT, (200, "text/csv"): OpenApiTypes.STR},
        summary="Cost and usage aggregates (chargeback dashboards)",
        description=__doc__,
    )
    def get(self, request):
        query = dashboards.parse_query(request.query_params)
        figures = dashboards.cost_figures(request.user, query)
        if getattr(request.accepted_renderer, "format", "") == "csv":
            return csv_response(figures)
        return Response(as_data(figures))

    def handle_exception(self, exc):
        # Errors are JSON whatever was asked for (a CSV renderer has no error shape).
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = JSONRenderer.media_type
        return super().handle_exception(exc)
