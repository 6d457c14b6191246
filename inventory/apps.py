from django.apps import AppConfig


class InventoryConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "inventory"
    verbose_name = "Inventory"

    def ready(self) -> None:
        from inventory import metrics as inventory_metrics
        from paas import metrics

        metrics.register_database_collector("clusters", inventory_metrics.clusters)
        metrics.register_database_collector("queues", inventory_metrics.queues)
