import multiprocessing
import sys

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps

from paas.heap import freeze_startup_objects


class PaasConfig(AppConfig):
    default = True
    default_auto_field = "django.db.models.BigAutoField"
    name = "paas"
    verbose_name = "Platform core"

    def ready(self) -> None:
        from django.core import checks
        from django.db.models.signals import post_migrate

        from paas import authz, checkpoints, metrics, metrics_collectors, metrics_views
        from paas.api import schema  # noqa: F401  (registers the OpenAPI authentication extension)

        post_migrate.connect(authz.clear_caches, dispatch_uid="paas.authz.clear_caches")
        checks.register(checkpoints.check_store)
        metrics.register_database_collector("audit_sinks", metrics_collectors.audit_sinks)
        if sys.argv[1:2] == ["qcluster"] and multiprocessing.parent_process() is None:
            metrics_views.start_worker_server()  # PAAS_WORKER_METRICS_PORT, when set
            freeze_startup_objects()  # before django-q forks its workers (paas/heap.py)


class StudioAdminConfig(admin_apps.AdminConfig):
    """Installs the branded studio site in place of Django's default admin site."""

    default = False
    default_site = "paas.sites.StudioSite"
