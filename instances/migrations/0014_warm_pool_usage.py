"""The warm-pool quota as a counter (``instances.pool_quota``): one usage row per pool, filled with
what each existing pool's standby instances hold (provisioning, ready, retiring or failed)."""

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import Sum

#: ``instances.selectors.STANDBY_HOLDING`` as of this migration.
HOLDING = ("provisioning", "ready", "retiring", "failed")


def backfill(apps, schema_editor):
    WarmPool = apps.get_model("instances", "WarmPool")
    WarmPoolUsage = apps.get_model("instances", "WarmPoolUsage")
    held = dict(
        apps.get_model("instances", "StandbyInstance")
        .objects.filter(pool__isnull=False, state__in=HOLDING)
        .values("pool_id")
        .annotate(units=Sum("gpu_units"))
        .values_list("pool_id", "units")
    )
    WarmPoolUsage.objects.bulk_create(
        [
            WarmPoolUsage(pool_id=pk, gpu_units=held.get(pk) or 0)
            for pk in WarmPool.objects.values_list("pk", flat=True)
        ],
        ignore_conflicts=True,
    )


class Migration(migrations.Migration):
    dependencies = [
        ("instances", "0013_sealed_secret_indexes"),
    ]

    operations = [
        migrations.CreateModel(
            name="WarmPoolUsage",
            fields=[
                (
                    "pool",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="usage",
                        serialize=False,
                        to="instances.warmpool",
                        verbose_name="warm pool",
                    ),
                ),
                (
                    "gpu_units",
                    models.BigIntegerField(
                        db_default=0, default=0, verbose_name="GPU units (28ths of a GPU)"
                    ),
                ),
                ("updated_at", models.DateTimeField(auto_now=True, verbose_name="updated")),
            ],
            options={
                "verbose_name": "warm pool usage",
                "verbose_name_plural": "warm pool usage",
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("gpu_units__gte", 0)),
                        name="instances_warmpoolusage_gpu_units_not_negative",
                    )
                ],
            },
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
