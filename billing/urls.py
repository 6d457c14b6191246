"""Portal pages of billing (budgets show on the workspace landing page: billing/budget_views.py)."""

from django.urls import include, path

urlpatterns = [
    path("", include("billing.dashboards_urls")),
]
