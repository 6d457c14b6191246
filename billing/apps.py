from django.apps import AppConfig


class BillingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        from django.db.models.signals import post_save

        from billing import budget_views, budgets, dashboard_views, metering
        from instances.landing import landing_section_register
        from instances.launch_checks import launch_check_register
        from instances.models import ComputeInstance, ServiceInstance
        from instances.signals import instance_state_changed

        # Metering joins every state change's transaction (docs/architecture.md, the two hooks).
        instance_state_changed.connect(metering.state_changed, dispatch_uid="billing.metering")
        for model in (ComputeInstance, ServiceInstance):  # a meter from the launch on
            post_save.connect(
                metering.instance_saved, sender=model, dispatch_uid=f"billing.meter_{model.__name__}"
            )
        launch_check_register(budgets.hard_stop_check)  # a spent budget with a hard stop refuses launches
        landing_section_register(budget_views.landing_section)  # budget banners on /w/<id>/
        landing_section_register(dashboard_views.landing_spend_section)  # the spend card on /w/<id>/
