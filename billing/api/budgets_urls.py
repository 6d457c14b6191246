"""URLs of the billing API: budgets (filled by its part of issue 16)."""

urlpatterns: list = []
