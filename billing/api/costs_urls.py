"""URLs of the billing API: costs (filled by its part of issue 16)."""

urlpatterns: list = []
