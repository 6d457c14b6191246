import multiprocessing
import sys

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps

from paas.heap import freeze_startup_objects


def keep_prepared_statements(sender, connection, **kwargs) -> None:
    """A new (or pooled) PostgreSQL connection keeps ``PAAS_DB_PREPARED_MAX`` prepared statements when
    it prepares any (paas/settings/base.py: ``database_options``)."""
    from django.conf import settings

    raw = connection.connection
    if connection.vendor == "postgresql" and getattr(raw, "prepare_threshold", None) is not None:
        raw.prepared_max = settings.PAAS_DB_PREPARED_MAX


class PaasConfig(AppConfig):
    default = True
    default_auto_field = "django.db.models.BigAutoField"
    name = "paas"
    verbose_name = "Platform core"

    def ready(self) -> None:
        from django.core import checks
        from django.db.backends.signals import connection_created
        from django.db.models.signals import post_migrate

        from paas import authz, checkpoints, metrics, metrics_collectors, metrics_views
        from paas.api import schema  # noqa: F401  (registers the OpenAPI authentication extension)

        post_migrate.connect(authz.clear_caches, dispatch_uid="paas.authz.clear_caches")
        connection_created.connect(keep_prepared_statements, dispatch_uid="paas.keep_prepared_statements")
        checks.register(checkpoints.check_store)
        metrics.register_database_collector("audit_sinks", metrics_collectors.audit_sinks)
        if sys.argv[1:2] == ["qcluster"] and multiprocessing.parent_process() is None:
            metrics_views.start_worker_server()  # PAAS_WORKER_METRICS_PORT, when set
            freeze_startup_objects()  # before django-q forks its workers (paas/heap.py)


class StudioAdminConfig(admin_apps.AdminConfig):
    """Installs the branded studio site in place of Django's default admin site."""

    default = False
    default_site = "paas.sites.StudioSite"
