from django.apps import AppConfig


class InstancesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "instances"
    verbose_name = "Instances"

    def ready(self) -> None:
        from instances import access, quota, receivers, services
        from tenancy.signals import (
            access_changed,
            invitation_accepted,
            project_deleting,
            quota_usage_annotations,
        )

        invitation_accepted.connect(
            services.invitation_accepted, dispatch_uid="instances.invitation_accepted"
        )
        quota_usage_annotations.connect(quota.usage_annotations, dispatch_uid="instances.quota_usage")
        access_changed.connect(access.access_changed, dispatch_uid="instances.access_changed")
        project_deleting.connect(receivers.project_deleting, dispatch_uid="instances.project_deleting")

        from catalog.signals import registry_changed
        from instances import capacity
        from instances.signals import instance_state_changed

        # Capacity first: its receiver takes the cluster's reservation row, before any receiver that
        # takes org, workspace or user rows (the launch's lock order: cluster, org, workspace, user).
        instance_state_changed.connect(capacity.instance_state_changed, dispatch_uid="instances.capacity")

        registry_changed.connect(receivers.registry_changed, dispatch_uid="instances.registry_changed")

        from instances import metrics as instance_metrics
        from paas import metrics

        metrics.register_database_collector("warm_pools", instance_metrics.warm_pools)
        metrics.register_database_collector("quotas", instance_metrics.quotas)
        metrics.register_database_collector("usage_counter_drift", instance_metrics.usage_counter_drift)
        instance_state_changed.connect(receivers.instance_ready, dispatch_uid="instances.pull_secrets_ready")
        from instances import counters

        # Usage counters move with every state change, in its transaction (instances.counters).
        instance_state_changed.connect(counters.state_changed, dispatch_uid="instances.usage_counters")
