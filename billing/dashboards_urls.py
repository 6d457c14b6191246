"""Portal pages of billing: dashboards (filled by its part of issue 16)."""

urlpatterns: list = []
