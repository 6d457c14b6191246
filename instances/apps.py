from django.apps import AppConfig


class InstancesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "instances"
    verbose_name = "Instances"
