"""Portal pages of billing: budgets (filled by its part of issue 16)."""

urlpatterns: list = []
