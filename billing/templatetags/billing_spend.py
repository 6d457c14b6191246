"""``{% workspace_spend_card project %}``: the spend card of a workspace's landing page (the landing page
is the instances app's, which cannot import billing: the template loads this tag instead)."""

from django import template
from django.urls import reverse

from billing import dashboards
from billing.periods import month_start, next_month
from billing.selectors import meters_visible, now_second, spend
from paas import authz

register = template.Library()


@register.inclusion_tag("billing/_spend_card.html", takes_context=True)
def workspace_spend_card(context, project) -> dict:
    user = context["request"].user
    if not authz.has_perm(user, "view_instances", project):
        return {"show": False}
    now = now_second()
    start, end = month_start(now), next_month(now)
    meters = meters_visible(user).filter(project=project)
    currencies = sorted(set(meters.filter(created_at__lt=end).values_list("currency", flat=True).distinct()))
    query = dashboards.CostQuery(start=start, end=end, group_by="project", bucket="day", project=project.pk)
    figures = dashboards.cost_figures(user, query)
    return {
        "show": True,
        "project": project,
        "month": start,
        # exact to the second, from the intervals; the chart is the rolled-up hours
        "spend": [(c, f"{spend(meters, start=start, end=end, currency=c):,.2f}") for c in currencies],
        "chart": dashboards.chart_data(figures),
        "rolled_up_until": figures["rolled_up_until"],
        "chart_id": "spend-card-data",
        "costs_url": reverse("billing-workspace-costs", args=[project.pk]),
        "csv_url": reverse("billing-costs") + "?" + dashboards.query_string(query, format="csv"),
    }
