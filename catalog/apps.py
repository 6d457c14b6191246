from django.apps import AppConfig


class CatalogConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "catalog"
    verbose_name = "Catalog"

    def ready(self) -> None:
        from catalog import receivers
        from tenancy.signals import project_deleting

        project_deleting.connect(receivers.project_deleting, dispatch_uid="catalog.project_deleting")
