"""Portal pages of billing: a workspace's cost page."""

from django.urls import path

from billing import dashboard_views

urlpatterns: list = [
    path("w/<int:project_id>/costs/", dashboard_views.workspace_costs, name="billing-workspace-costs"),
]
