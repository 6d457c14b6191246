"""Usage counters (instances.counters): the table, filled from the instances by the same set-based
re-sum ``counters_rebuild`` runs, so that the first release after the upgrade finds what it gives back."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def fill(apps, schema_editor):
    from instances.counters import counters_rebuild

    counters_rebuild()


class Migration(migrations.Migration):
    dependencies = [
        ("instances", "0010_kubectl_audit_flush_schedule"),
        ("tenancy", "0008_instance_limits"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="UsageCounter",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "gpu_model",
                    models.CharField(blank=True, default="", max_length=120, verbose_name="GPU model"),
                ),
                ("gpu_units", models.BigIntegerField(default=0, verbose_name="GPU units (28ths of a GPU)")),
                ("cpu_millis", models.BigIntegerField(default=0, verbose_name="CPU (millicores)")),
                ("memory_gib", models.BigIntegerField(default=0, verbose_name="memory (GiB)")),
                ("storage_gib", models.BigIntegerField(default=0, verbose_name="storage (GiB)")),
                ("instances", models.BigIntegerField(default=0, verbose_name="instances")),
                (
                    "org",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="usage_counters",
                        to="tenancy.organization",
                        verbose_name="organization",
                    ),
                ),
                (
                    "project",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="usage_counters",
                        to="tenancy.project",
                        verbose_name="workspace",
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                        verbose_name="user",
                    ),
                ),
            ],
            options={
                "verbose_name": "usage counter",
                "verbose_name_plural": "usage counters",
                "ordering": ["org_id", "project_id", "user_id", "gpu_model"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("org", "project", "user", "gpu_model"),
                        name="instances_usagecounter_scope_unique",
                        nulls_distinct=False,
                    ),
                    models.CheckConstraint(
                        condition=models.Q(("gpu_units__gte", 0)),
                        name="instances_usagecounter_gpu_units_not_negative",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(("cpu_millis__gte", 0)),
                        name="instances_usagecounter_cpu_millis_not_negative",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(("memory_gib__gte", 0)),
                        name="instances_usagecounter_memory_gib_not_negative",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(("storage_gib__gte", 0)),
                        name="instances_usagecounter_storage_gib_not_negative",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(("instances__gte", 0)),
                        name="instances_usagecounter_instances_not_negative",
                    ),
                ],
            },
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
