"""Portal pages of billing: a workspace's cost page (``/w/<id>/costs/``), with the same charts, tables
and CSV as the studio dashboard, for the people who may view the workspace's instances. The
workspace's landing page shows a spend card (``landing_spend_section``, an ``instances.landing`` section)."""

from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.urls import reverse

from billing import dashboards
from billing.api import usage_query
from billing.periods import month_start, next_month
from billing.selectors import meters_visible, now_second, spend
from catalog.pricing import price_label
from paas import authz
from paas.errors import NotFound, ValidationFailed
from paas.portal import portal_page
from tenancy.portal import use_workspace

PORTAL_GROUPS = ("user", "profile", "cluster", "gpu_model")


@portal_page
def workspace_costs(request: HttpRequest, project_id: int) -> HttpResponse:
    project = use_workspace(request, project_id)
    if not authz.has_perm(request.user, "view_instances", project):
        raise NotFound()
    params = request.GET.copy()
    params.setdefault("group_by", "user")
    for name in ("org", "cluster", "profile"):
        params.pop(name, None)
    params["project"] = str(project.pk)
    context = {
        "nav": "home",
        "project": project,
        "groups": [(g, dashboards.GROUPS[g]) for g in PORTAL_GROUPS],
        "buckets": dashboards.BUCKETS,
        "values": params,
        "errors": {},
        "form_start": params.get("start", ""),
        "form_end": params.get("end", ""),
    }
    try:
        query = dashboards.parse_query(params)
        if query.group_by not in PORTAL_GROUPS:
            raise ValidationFailed("Invalid", fields={"group_by": f"One of: {', '.join(PORTAL_GROUPS)}."})
    except ValidationFailed as exc:
        context["errors"] = {k: v[0] for k, v in exc.fields.items()}
        return render(request, "billing/workspace_costs.html", context, status=400)
    figures = dashboards.cost_figures(request.user, query)
    csv_url = reverse("billing-costs") + "?" + dashboards.query_string(query, format="csv")
    context |= dashboards.panel(figures, csv_url=csv_url, prefix="ws")
    context |= _instances(request.user, project, params)
    return render(request, "billing/workspace_costs.html", context)


def _instances(user, project, params) -> dict:
    """The workspace's instances in the same period with their price and time (the billing API's rows:
    ``billing.api.usage_query``), the first 100 and a CSV link for them all."""
    wanted = QueryDict(mutable=True)
    wanted["project"] = str(project.pk)
    for name in ("start", "end"):
        if params.get(name):
            wanted[name] = params[name]
    asked = wanted.copy()
    asked["page_size"] = "100"
    try:
        query = usage_query.parse(asked, user=user, now=now_second())
    except ValidationFailed:
        return {}
    rows, more = usage_query.page(query)
    for row in rows:
        row["price_label"] = price_label({**row["price"], "period": row["price"]["unit"]})
        row["running_hours"] = usage_query.hours(row["running_seconds"])
    wanted["format"] = "csv"
    return {
        "usage_rows": rows,
        "usage_more": more is not None,
        "usage_csv": reverse("billing-usage") + "?" + wanted.urlencode(),
    }


def landing_spend_section(request: HttpRequest, project) -> dict | None:
    """The landing page's "Spend this month" card: the spend so far, exact to the second (from the
    intervals), a small chart of the rolled-up days, links to the cost page and the CSV. For those who
    may view the workspace's instances; None for anyone else."""
    user = request.user
    if not authz.has_perm(user, "view_instances", project):
        return None
    now = now_second()
    start, end = month_start(now), next_month(now)
    meters = meters_visible(user).filter(project=project)
    currencies = sorted(set(meters.filter(created_at__lt=end).values_list("currency", flat=True).distinct()))
    query = dashboards.CostQuery(start=start, end=end, group_by="project", bucket="day", project=project.pk)
    figures = dashboards.cost_figures(user, query)
    return {
        "template": "billing/_spend_card.html",
        "month": start,
        "spend": [(c, f"{spend(meters, start=start, end=end, currency=c):,.2f}") for c in currencies],
        "chart": dashboards.chart_data(figures),
        "chart_id": "spend-card-data",
        "rolled_up_until": figures["rolled_up_until"],
        "costs_url": reverse("billing-workspace-costs", args=[project.pk]),
        "csv_url": reverse("billing-costs") + "?" + dashboards.query_string(query, format="csv"),
    }
