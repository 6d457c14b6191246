"""GET /api/v1/billing/usage/: the billing API for the provider's billing system (and org admins)."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param
from rest_framework.views import APIView

from billing import usage_export
from billing.api import usage_query
from billing.api.usage_serializers import UsagePageSerializer
from billing.selectors import now_second


class CsvRenderer(BaseRenderer):
    """Lets ``?format=csv`` and ``Accept: text/csv`` through content negotiation; the view answers
    those with a streamed CSV itself (``billing.usage_export``), errors are JSON."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return JSONRenderer().render(data)


_PARAMETERS = [
    OpenApiParameter(
        "start",
        OpenApiTypes.STR,
        description="The period's start: a date (2026-11-01, midnight UTC) or a date and time with its "
        "offset. Default: the first day of end's month (or of the current month).",
    ),
    OpenApiParameter(
        "end",
        OpenApiTypes.STR,
        description="The period's end (exclusive as a date and time; a date includes that whole day). "
        "Default: the first day of the month after start. At most 400 days.",
    ),
    OpenApiParameter("org", OpenApiTypes.INT, description="An organization's id (operators: any)."),
    OpenApiParameter("project", OpenApiTypes.INT, description="A workspace's id."),
    OpenApiParameter("profile", OpenApiTypes.STR, description="A profile's name, as at launch."),
    OpenApiParameter(
        "profile_id",
        OpenApiTypes.INT,
        description="A profile's id (compute and service profiles number apart: add kind).",
    ),
    OpenApiParameter("cluster", OpenApiTypes.STR, description="A cluster's name."),
    OpenApiParameter("kind", OpenApiTypes.STR, enum=["compute", "service"]),
    OpenApiParameter("billing_model", OpenApiTypes.STR, enum=["on_demand", "reserved"]),
    OpenApiParameter(
        "page_size", OpenApiTypes.INT, description=f"1 to {usage_query.MAX_PAGE_SIZE} (default 100)."
    ),
    OpenApiParameter(
        "after",
        OpenApiTypes.INT,
        description="Continue after this meter id (follow `next`): keyset pagination, stable while "
        "instances come and go.",
    ),
    OpenApiParameter(
        "as_of",
        OpenApiTypes.DATETIME,
        description="Count up to this instant (not in the future): `next` carries the first page's, so a "
        "walk through a period still running is one snapshot.",
    ),
    OpenApiParameter(
        "format",
        OpenApiTypes.STR,
        enum=["json", "csv"],
        description="csv: the whole filtered period as one streamed CSV (or send Accept: text/csv).",
    ),
]


class UsageView(APIView):
    """For a period (default: this month so far) every compute and service instance you may see that
    existed in it, with its price ("$1/hr") and its time ("720 hours"): running, stopped, deleting,
    existing and billable seconds, billable hours and cost; plus the whole period's totals per
    currency, on demand and reserved apart. Operators see every org, org admins theirs, workspace
    members with instance access their workspaces'. A period that has ended never changes."""

    api_area = "billing"
    renderer_classes = [JSONRenderer, CsvRenderer]

    @extend_schema(
        operation_id="billing_usage",
        parameters=_PARAMETERS,
        responses={
            (200, "application/json"): UsagePageSerializer,
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR, description="The whole period, one row each."
            ),
        },
    )
    def get(self, request):
        query = usage_query.parse(request.query_params, user=request.user, now=now_second())
        if request.accepted_renderer.format == "csv":
            return usage_export.csv_response(query, request=request)
        rows, after = usage_query.page(query)
        next_url = None
        if after is not None:
            next_url = replace_query_param(request.build_absolute_uri(), "after", after)
            if not query.closed:  # the walk stays one snapshot (usage_query)
                next_url = replace_query_param(next_url, "as_of", usage_query.iso(query.as_of))
        return Response(
            {
                "period": usage_query.period_of(query),
                "filters": query.filters,
                "totals": usage_query.totals(query) if query.after is None else None,
                "next": next_url,
                "results": rows,
            }
        )

    def finalize_response(self, request, response, *args, **kwargs):
        if isinstance(response, Response) and response.status_code >= 400:
            request.accepted_renderer, request.accepted_media_type = JSONRenderer(), JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)
