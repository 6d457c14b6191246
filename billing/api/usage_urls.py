"""URLs of the billing API: usage (the billing API for providers' billing systems)."""

from django.urls import path

from billing.api.usage_views import UsageView

urlpatterns: list = [
    path("usage/", UsageView.as_view(), name="billing-usage"),
]
