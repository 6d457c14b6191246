"""Portal pages of billing."""

from django.urls import include, path

urlpatterns = [
    path("", include("billing.dashboards_urls")),
    path("", include("billing.budgets_urls")),
]
