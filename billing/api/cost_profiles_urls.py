"""URLs of the billing API: cost_profiles (filled by its part of issue 16)."""

urlpatterns: list = []
