"""Studio page of billing: *Instance usage*, the billing API's figures as a page (org admins: their org).
For a period and the same filters as ``/api/v1/billing/usage/`` (the same query
parser and figures, ``billing.api.usage_query``), every compute and service instance with its launch
price and its time ("2.50 USD per hour and 720 hours") (operators: the orgs a support access opens to
them; every org's totals are on the costs dashboard), the period's totals, pages of 100 following the
meter ids, and the CSV of the whole period through the API.
"""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import QueryDict
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html_join
from django.utils.safestring import mark_safe

from billing.admin_dashboards import ReportAdmin
from billing.api import usage_query
from billing.models import Meter
from billing.selectors import meters_visible, now_second
from catalog.pricing import price_label
from paas import authz
from paas.errors import ValidationFailed
from tenancy.selectors import org_list_for

FILTERS = ("start", "end", "org", "project", "profile", "cluster", "kind", "billing_model")


@admin.register(Meter)
class InstanceUsageAdmin(ReportAdmin):
    """The per-instance billing figures in place of a list of meters (read-only)."""

    def get_queryset(self, request):
        return meters_visible(request.user)

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        user = request.user
        params = QueryDict(mutable=True)
        for name in (*FILTERS, "after", "as_of"):
            if request.GET.get(name):
                params[name] = request.GET[name]
        context = {
            **self.admin_site.each_context(request),
            "title": "Instance usage",
            "opts": self.model._meta,
            "values": params,
            "errors": {},
            "is_operator": authz.is_operator(user),
            "kinds": Meter.Kind.choices,
            "billing_models": usage_query.BILLING_MODELS,
        }
        status = 200
        try:
            query = usage_query.parse(params, user=user, now=now_second())
        except ValidationFailed as exc:
            context["errors"] = {k: v[0] for k, v in exc.fields.items()}
            status = 400
        else:
            rows, after = usage_query.page(query)
            for row in rows:
                row["price_label"] = price_label({**row["price"], "period": row["price"]["unit"]})
                row["running_hours"] = usage_query.hours(row["running_seconds"])
                row["storage_hours"] = usage_query.hours(row["stopped_seconds"] + row["deleting_seconds"])
            shown = QueryDict(mutable=True)
            for name in FILTERS:
                if params.get(name):
                    shown[name] = params[name]
            following = None
            if after is not None:
                following = shown.copy()
                following["after"] = str(after)
                following["as_of"] = query.as_of.isoformat()
            csv = shown.copy()
            csv["format"] = "csv"
            context |= {
                "rows": rows,
                "period": usage_query.period_of(query),
                "totals": usage_query.totals(query) if query.after is None else None,
                "next_url": f"?{following.urlencode()}" if following else "",
                "first_url": f"?{shown.urlencode()}" if query.after is not None else "",
                "csv_url": reverse("billing-usage") + "?" + csv.urlencode(),
                "org_options": _org_options(user, params.get("org", "")) if authz.is_operator(user) else None,
            }
        return TemplateResponse(request, "admin/billing/instance_usage.html", context, status=status)


def _org_options(user, chosen: str) -> str:
    """The organization filter's ``<option>``s for an operator, written at once: with a thousand orgs,
    the template's loop over model objects took most of the page's time."""
    rows = org_list_for(user).order_by("name").values_list("pk", "display_name", "name")
    selected = mark_safe(" selected")
    return format_html_join(
        "",
        '<option value="{}"{}>{}</option>',
        ((pk, selected if str(pk) == chosen else "", display or name) for pk, display, name in rows),
    )
