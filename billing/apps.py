from django.apps import AppConfig


class BillingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        from billing import metering
        from instances.signals import instance_state_changed

        # Metering joins every state change's transaction (docs/architecture.md, the two hooks).
        instance_state_changed.connect(metering.state_changed, dispatch_uid="billing.metering")
