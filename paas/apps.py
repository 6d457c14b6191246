from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class PaasConfig(AppConfig):
    default = True
    default_auto_field = "django.db.models.BigAutoField"
    name = "paas"
    verbose_name = "Platform core"


class StudioAdminConfig(admin_apps.AdminConfig):
    """Installs the branded studio site in place of Django's default admin site."""

    default = False
    default_site = "paas.sites.StudioSite"
