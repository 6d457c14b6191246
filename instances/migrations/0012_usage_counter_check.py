"""The drift check of the usage counters: its record, and its django-q2 schedule (every 10 minutes)."""

from django.db import migrations, models

NAME = "usage counters check"
FUNC = "instances.tasks.usage_counters_check"


def forward(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name=NAME, defaults={"func": FUNC, "schedule_type": "I", "minutes": 10, "repeats": -1}
    )


def reverse(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("instances", "0011_usage_counters"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [
        migrations.CreateModel(
            name="UsageCounterCheck",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("checked_at", models.DateTimeField(auto_now_add=True, verbose_name="checked")),
                (
                    "drift",
                    models.JSONField(
                        blank=True,
                        default=list,
                        help_text="One line per differing row.",
                        verbose_name="drift",
                    ),
                ),
                ("fixed", models.BooleanField(default=False, verbose_name="repaired")),
            ],
            options={
                "verbose_name": "usage counter check",
                "verbose_name_plural": "usage counter checks",
                "ordering": ["-checked_at", "-pk"],
                "indexes": [models.Index(fields=["-checked_at"], name="instances_usagecheck_recent")],
            },
        ),
        migrations.RunPython(forward, reverse),
    ]
