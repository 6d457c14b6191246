"""Studio pages of billing: the chargeback dashboard ("Costs and usage"), for operators (the whole
platform, and the warm pools' standby GPU time, the provider's cost) and org admins (their org).

The page is the change list of usage records in the studio (read-only: nothing is added, changed or
deleted here), drawn from billing/dashboards.py; the studio home gets a spend card linking to it.
"""

from decimal import Decimal

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Sum
from django.template.response import TemplateResponse
from django.urls import reverse

from billing import dashboards
from billing.models import UsageRecord
from billing.periods import month_start
from billing.selectors import meters_billed, now_second
from paas import authz
from paas.errors import ValidationFailed
from tenancy.models import Organization
from tenancy.selectors import administers_any_org

STUDIO_GROUPS = ("org", "project", "user", "profile", "cluster", "gpu_model")


def may_view(user) -> bool:
    return administers_any_org(user)


class ReportAdmin(admin.ModelAdmin):
    """A studio page of figures in place of a model's list, for operators and org admins (what each sees
    is the subclass's ``get_queryset``); read-only, without row pages."""

    def has_module_permission(self, request) -> bool:
        return may_view(request.user)

    def has_view_permission(self, request, obj=None) -> bool:
        return may_view(request.user) and obj is None

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def change_view(self, request, object_id, form_url="", extra_context=None):
        raise PermissionDenied


@admin.register(UsageRecord)
class CostDashboardAdmin(ReportAdmin):
    """The dashboard in place of a list of rows (the figures, not the rows, are what people read)."""

    def get_queryset(self, request):
        return super().get_queryset(request).filter(meter__in=meters_billed(request.user))

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        user = request.user
        params = request.GET.copy()
        params.setdefault("group_by", "project" if not authz.is_operator(user) else "org")
        orgs = Organization.objects.filter(
            pk__in=meters_billed(user).exclude(org=None).values("org_id")
        ).order_by("name")
        clusters = sorted(
            set(
                meters_billed(user).exclude(cluster=None).values_list("cluster_id", "cluster_name").distinct()
            ),
            key=lambda c: c[1],
        )
        context = {
            **self.admin_site.each_context(request),
            "title": "Costs and usage",
            "opts": self.model._meta,
            "groups": [(g, dashboards.GROUPS[g]) for g in STUDIO_GROUPS],
            "buckets": dashboards.BUCKETS,
            "values": params,
            "errors": {},
            "orgs": orgs,
            "clusters": clusters,
            "form_start": params.get("start", ""),
            "form_end": params.get("end", ""),
            "is_operator": authz.is_operator(user),
        }
        status = 200
        try:
            query = dashboards.parse_query(params)
        except ValidationFailed as exc:
            context["errors"] = {k: v[0] for k, v in exc.fields.items()}
            status = 400
        else:
            figures = dashboards.cost_figures(user, query)
            csv_url = reverse("billing-costs") + "?" + dashboards.query_string(query, format="csv")
            context |= dashboards.panel(figures, csv_url=csv_url, prefix="studio")
        return TemplateResponse(request, "admin/billing/costs_dashboard.html", context, status=status)


def spend_card(request) -> dict | None:
    """The studio home's card: this month's spend in the viewer's scope from the rolled-up hours (one
    query, whatever the platform's size), with a link to the dashboard."""
    user = request.user
    if not may_view(user):
        return None
    now = now_second()
    start = month_start(now)
    rows = (
        UsageRecord.objects.filter(meter__in=meters_billed(user).values("pk"), hour__gte=start)
        .order_by()
        .values("currency")
        .annotate(total=Sum("cost"))
        .order_by("currency")
    )
    return {
        "template": "admin/billing/home_spend.html",
        "month": start,
        "spend": [(r["currency"], dashboards.q6(r["total"]).quantize(Decimal("0.01"))) for r in rows],
        "rolled_up_until": dashboards.rolled_up_until(),
        "dashboard_url": reverse("admin:billing_usagerecord_changelist"),
        "scope": "the whole platform" if authz.is_operator(user) else "your organization",
    }


admin.site.add_home_section(30, spend_card)
