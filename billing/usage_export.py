"""The billing usage as CSV: the whole filtered period streamed, a chunk of meters at a time, with the
columns and figures of the JSON rows (``billing.api.usage_query``).

Cells are neutralised against formula injection: a cell a spreadsheet would read as a formula (starting
with = + - @, a tab or a carriage return) gets a leading apostrophe. Names come from tenants.
"""

import csv

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import StreamingHttpResponse

from billing.api.usage_query import UsageQuery, chunks

COLUMNS = (
    "meter",
    "kind",
    "instance_id",
    "instance",
    "launched_at",
    "deleted_at",
    "org_id",
    "org",
    "project_id",
    "project",
    "owner_id",
    "owner",
    "profile_id",
    "profile",
    "cluster_id",
    "cluster",
    "currency",
    "amount",
    "unit",
    "billing_model",
    "stopped_amount",
    "running_seconds",
    "stopped_seconds",
    "deleting_seconds",
    "existing_seconds",
    "billable_seconds",
    "billable_hours",
    "cost",
)
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe(value) -> str:
    """A cell's text; one a spreadsheet would take for a formula is prefixed with an apostrophe."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def csv_cells(row: dict) -> list[str]:
    """The CSV cells of one JSON row, in ``COLUMNS`` order."""
    instance, price = row["instance"], row["price"]
    values = [
        row["meter"],
        instance["kind"],
        instance["id"],
        instance["name"],
        instance["launched_at"],
        instance["deleted_at"],
        row["org"]["id"],
        row["org"]["name"],
        row["project"]["id"],
        row["project"]["name"],
        row["owner"]["id"],
        row["owner"]["name"],
        row["profile"]["id"],
        row["profile"]["name"],
        row["cluster"]["id"],
        row["cluster"]["name"],
        price["currency"],
        price["amount"],
        price["unit"],
        price["billing_model"],
        price["stopped_amount"],
        row["running_seconds"],
        row["stopped_seconds"],
        row["deleting_seconds"],
        row["existing_seconds"],
        row["billable_seconds"],
        row["billable_hours"],
        row["cost"],
    ]
    return [safe(v) for v in values]


class _Line:
    """A file-like whose write returns the line (csv.writer writes one row at a time)."""

    def write(self, text: str) -> str:
        return text


def stream(query: UsageQuery):
    writer = csv.writer(_Line())
    yield writer.writerow(COLUMNS)
    for rows in chunks(query):
        yield "".join(writer.writerow(csv_cells(row)) for row in rows)


async def astream(query: UsageQuery):
    """:func:`stream` for the ASGI server, which would buffer a synchronous iterator whole: each chunk's
    query runs on the request's thread (``thread_sensitive``), the lines are sent as they come."""
    lines = stream(query)
    step = sync_to_async(lambda: next(lines, None), thread_sensitive=True)
    while (text := await step()) is not None:
        yield text


def csv_response(query: UsageQuery, *, request) -> StreamingHttpResponse:
    """The CSV, streamed: asynchronously under the ASGI server (``make run``, production), synchronously
    under a WSGI handler (the suite's test client)."""
    asynchronous = isinstance(getattr(request, "_request", request), ASGIRequest)  # (DRF wraps it)
    lines = astream(query) if asynchronous else stream(query)
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    name = f"usage-{query.start:%Y%m%dT%H%M%SZ}-{query.end:%Y%m%dT%H%M%SZ}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
