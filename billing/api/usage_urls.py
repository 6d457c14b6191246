"""URLs of the billing API: usage (filled by its part of issue 16)."""

urlpatterns: list = []
