"""URLs of the billing API: the dashboards' cost and usage aggregates."""

from django.urls import path

from billing.api.costs import CostsView

urlpatterns: list = [path("costs/", CostsView.as_view(), name="billing-costs")]
