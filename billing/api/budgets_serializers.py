"""Budgets in the API: the budget, its status this month (figures as strings with fixed places: money 6
places, the budget's amount 2, percent 2) and the alerts raised this month."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from billing.models import Budget, BudgetAlert


def _six(value) -> str:
    return f"{value:.6f}"


class BudgetAlertSerializer(serializers.ModelSerializer):
    spend = serializers.SerializerMethodField()
    projected = serializers.SerializerMethodField()

    class Meta:
        model = BudgetAlert
        fields = ["threshold", "period", "spend", "projected", "created_at", "emailed_at"]

    def get_spend(self, obj) -> str:
        return _six(obj.spend)

    def get_projected(self, obj) -> str:
        return _six(obj.projected)


class NotCountedSerializer(serializers.Serializer):
    currency = serializers.CharField()
    spend = serializers.CharField()


class BudgetStatusSerializer(serializers.Serializer):
    """``billing.budget_selectors.BudgetStatus``: the month so far, in the budget's currency."""

    period = serializers.DateField(help_text="The month (its first day).")
    as_of = serializers.DateTimeField(help_text="The second the figures are computed at (UTC).")
    spend = serializers.CharField(help_text="Spend so far this month (list price), 6 places.")
    percent = serializers.CharField(help_text="Spend so far as a percent of the budget, 2 places.")
    run_rate_per_hour = serializers.CharField(help_text="What the instances running now cost per hour.")
    projected = serializers.CharField(
        help_text="Projected month-end spend: spend so far + run_rate_per_hour × the hours left in the month."
    )
    thresholds_crossed = serializers.ListField(child=serializers.IntegerField())
    exceeded = serializers.BooleanField(help_text="Spend so far has reached the budget.")
    not_counted = NotCountedSerializer(many=True, help_text="Spend in other currencies, not counted.")
    alerts = BudgetAlertSerializer(many=True, help_text="The alerts raised this month.")


def status_data(status) -> dict:
    return {
        "period": status.period,
        "as_of": status.now,
        "spend": _six(status.spend),
        "percent": f"{status.percent:.2f}",
        "run_rate_per_hour": _six(status.run_rate_per_hour),
        "projected": _six(status.projected),
        "thresholds_crossed": status.thresholds,
        "exceeded": status.exceeded,
        "not_counted": [{"currency": o["currency"], "spend": _six(o["spend"])} for o in status.not_counted],
        "alerts": status.alerts,
    }


class BudgetSerializer(serializers.ModelSerializer):
    org_name = serializers.CharField(source="org.name", read_only=True)
    project_name = serializers.CharField(source="project.name", read_only=True, default=None)
    amount = serializers.SerializerMethodField()
    status = serializers.SerializerMethodField()

    class Meta:
        model = Budget
        fields = [
            "id",
            "org",
            "org_name",
            "project",
            "project_name",
            "amount",
            "currency",
            "hard_stop",
            "status",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_amount(self, obj) -> str:
        return f"{obj.amount:.2f}"

    @extend_schema_field(BudgetStatusSerializer)
    def get_status(self, obj) -> dict:
        from billing import budget_selectors

        statuses = self.context.get("budget_statuses") or {}
        status = statuses.get(obj.pk) or budget_selectors.statuses([obj])[obj.pk]
        return BudgetStatusSerializer(status_data(status)).data


class BudgetWriteSerializer(serializers.Serializer):
    """Set (create, or change when it exists) the budget of an org (``project`` empty) or a workspace.
    The amount, currency and workspace are checked by the service (``billing.budgets.budget_set``)."""

    org = serializers.IntegerField(help_text="The organization's id.")
    project = serializers.IntegerField(
        required=False, allow_null=True, help_text="A workspace of the org (empty: the org-wide budget)."
    )
    amount = serializers.CharField(
        max_length=40, help_text='The monthly amount, more than zero, 2 decimal places: "500.00".'
    )
    currency = serializers.CharField(max_length=40, required=False, default="USD", help_text="ISO 4217.")
    hard_stop = serializers.BooleanField(
        required=False, default=False, help_text="Refuse new launches once the month's spend reaches it."
    )


class BudgetUpdateSerializer(serializers.Serializer):
    amount = serializers.CharField(max_length=40, required=False)
    currency = serializers.CharField(max_length=40, required=False)
    hard_stop = serializers.BooleanField(required=False)
