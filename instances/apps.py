from django.apps import AppConfig


class InstancesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "instances"
    verbose_name = "Instances"

    def ready(self) -> None:
        from instances import receivers, services
        from tenancy.signals import invitation_accepted, project_deleting

        invitation_accepted.connect(
            services.invitation_accepted, dispatch_uid="instances.invitation_accepted"
        )
        project_deleting.connect(receivers.project_deleting, dispatch_uid="instances.project_deleting")
