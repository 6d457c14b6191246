"""The billing API under /api/v1/billing/ (``api_area = "billing"``: what billing-read tokens reach)."""

from django.urls import include, path

urlpatterns = [
    path("billing/", include("billing.api.usage_urls")),
    path("billing/", include("billing.api.costs_urls")),
    path("billing/", include("billing.api.budgets_urls")),
    path("billing/", include("billing.api.cost_profiles_urls")),
]
