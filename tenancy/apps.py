from django.apps import AppConfig


class TenancyConfig(AppConfig):
    """Tenancy connects no receivers of its own: it only sends ``tenancy.signals``, which the higher
    layers (catalog, instances) connect to in their ``ready``."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "tenancy"
    verbose_name = "Tenancy"
