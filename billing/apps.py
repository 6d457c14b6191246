from django.apps import AppConfig


class BillingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        from billing import budget_views, budgets, dashboard_views, metering
        from instances.landing import landing_section_register
        from instances.launch_checks import launch_check_register
        from instances.signals import instance_state_changed

        # Metering joins every state change's transaction (docs/architecture.md, the two hooks).
        instance_state_changed.connect(metering.state_changed, dispatch_uid="billing.metering")
        launch_check_register(budgets.hard_stop_check)  # a spent budget with a hard stop refuses launches
        landing_section_register(budget_views.landing_section)  # budget banners on /w/<id>/
        landing_section_register(dashboard_views.landing_spend_section)  # the spend card on /w/<id>/
