"""Studio page of budgets (org admins their orgs', operators through a support access): each budget
with its status this month (spend so far, percent, projected month-end spend, alerts raised), add,
change and delete through
``billing.budgets`` (a service's error is shown on the form, the input kept)."""

import copy

from django import forms
from django.contrib import admin
from django.utils.html import format_html

from billing import budget_selectors, budgets
from billing.models import Budget
from paas import authz
from paas.admin import ScopedModelAdmin
from paas.errors import ValidationFailed
from tenancy.models import Project


class BudgetForm(forms.ModelForm):
    amount = forms.CharField(
        label="Monthly amount", max_length=40, help_text="More than zero, at most 2 decimal places: 500.00."
    )
    currency = forms.CharField(
        label="Currency", max_length=40, initial="USD", help_text="ISO 4217, e.g. USD."
    )

    class Meta:
        model = Budget
        fields = ["org", "project", "amount", "currency", "hard_stop"]

    def clean_amount(self):
        try:
            return budgets.clean_amount(self.cleaned_data["amount"])
        except ValidationFailed as exc:
            raise forms.ValidationError(exc.fields["amount"]) from None

    def clean_currency(self):
        try:
            return budgets.clean_currency(self.cleaned_data["currency"])
        except ValidationFailed as exc:
            raise forms.ValidationError(exc.fields["currency"]) from None

    def clean(self):
        data = super().clean()
        org, project = data.get("org"), data.get("project")
        if org is not None and project is not None and project.org_id != org.pk:
            self.add_error("project", "A workspace of this organization.")
        return data

    def validate_unique(self):
        pass  # one budget per org or workspace: setting it again changes it (billing.budgets.budget_set)


@admin.register(Budget)
class BudgetAdmin(ScopedModelAdmin):
    selector = staticmethod(budget_selectors.budget_list_for)
    form = BudgetForm
    list_display = [
        "scope",
        "amount_shown",
        "hard_stop",
        "spend_shown",
        "percent_shown",
        "projected_shown",
        "alerts_shown",
    ]
    list_filter = ["hard_stop", "currency"]
    search_fields = ["org__name", "project__name"]
    ordering = ["org__name", "project__name", "pk"]

    def _manages(self, request) -> bool:
        return budget_selectors.may_manage_budgets(request.user)

    def has_module_permission(self, request) -> bool:
        return self.admin_site.has_permission(request) and self._manages(request)

    def has_view_permission(self, request, obj=None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request) -> bool:
        return self.has_module_permission(request)

    def has_change_permission(self, request, obj=None) -> bool:
        if obj is None:
            return self.has_module_permission(request)
        return authz.has_perm(request.user, "administer_organization", obj.org)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self.has_change_permission(request, obj)

    def get_readonly_fields(self, request, obj=None):
        return ["org", "project", "status_now"] if obj else []

    def get_fields(self, request, obj=None):
        return ["org", "project", "amount", "currency", "hard_stop", *(["status_now"] if obj else [])]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        orgs = budget_selectors.budget_orgs_for(request.user)
        if db_field.name == "org":
            kwargs["queryset"] = orgs.order_by("name")
        elif db_field.name == "project":
            kwargs["queryset"] = (
                Project.objects.filter(org__in=orgs).select_related("org").order_by("org__name", "name")
            )
            kwargs["required"] = False
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    # --- the list: each row's status computed once for the page ----------------------------------------
    def get_changelist_instance(self, request):
        scoped = copy.copy(self)
        changelist = super(BudgetAdmin, scoped).get_changelist_instance(request)
        changelist.result_list = list(changelist.result_list)
        scoped.statuses = budget_selectors.statuses(changelist.result_list)
        return changelist

    def _status(self, obj):
        statuses = getattr(self, "statuses", None) or {}
        return statuses.get(obj.pk) or budget_selectors.statuses([obj])[obj.pk]

    @admin.display(description="budget of", ordering="org__name")
    def scope(self, obj) -> str:
        return f"{obj.org.name} / {obj.project.name}" if obj.project_id else f"{obj.org.name} (org-wide)"

    @admin.display(description="monthly amount", ordering="amount")
    def amount_shown(self, obj) -> str:
        return f"{obj.amount:,.2f} {obj.currency}"

    @admin.display(description="spend so far")
    def spend_shown(self, obj) -> str:
        return f"{self._status(obj).spend:,.2f} {obj.currency}"

    @admin.display(description="used")
    def percent_shown(self, obj):
        status = self._status(obj)
        if status.exceeded:
            return format_html("<strong>{}%</strong>", status.percent)
        return f"{status.percent}%"

    @admin.display(description="projected month-end")
    def projected_shown(self, obj) -> str:
        return f"{self._status(obj).projected:,.2f} {obj.currency}"

    @admin.display(description="alerts this month")
    def alerts_shown(self, obj) -> str:
        alerts = self._status(obj).alerts
        return ", ".join(f"{a.threshold}%" for a in alerts) or "—"

    @admin.display(description="this month")
    def status_now(self, obj):
        s = self._status(obj)
        others = "; ".join(f"{o['spend']:,.2f} {o['currency']}" for o in s.not_counted)
        return format_html(
            "{} — spend so far {} {} of {} {} ({}%)<br>projected month-end {} {} (spend so far + the hourly "
            "rate of what runs now, {} {}/h, until the month ends)<br>alerts: {}<br>{}",
            s.month_label,
            f"{s.spend:,.2f}",
            obj.currency,
            f"{obj.amount:,.2f}",
            obj.currency,
            s.percent,
            f"{s.projected:,.2f}",
            obj.currency,
            f"{s.run_rate_per_hour:,.2f}",
            obj.currency,
            ", ".join(f"{a.threshold}%" for a in s.alerts) or "none",
            f"Not counted (other currencies): {others}" if others else "",
        )

    # --- writes through the services -------------------------------------------------------------------
    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            budget = budgets.budget_update(
                actor=request.user,
                budget=self.fresh(obj),
                amount=data["amount"],
                currency=data["currency"],
                hard_stop=data["hard_stop"],
            )
        else:
            budget = budgets.budget_set(
                actor=request.user,
                org=data["org"],
                project=data.get("project"),
                amount=data["amount"],
                currency=data["currency"],
                hard_stop=data["hard_stop"],
            )
        obj.pk = budget.pk

    def service_delete(self, request, obj):
        budgets.budget_delete(actor=request.user, budget=obj)
