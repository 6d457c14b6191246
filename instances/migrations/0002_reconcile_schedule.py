"""The periodic reconcile that re-drives runs whose worker died, as a django-q2 schedule."""

from django.db import migrations


def forward(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name="instances reconcile",
        defaults={"func": "instances.tasks.reconcile", "schedule_type": "I", "minutes": 1, "repeats": -1},
    )


def reverse(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="instances reconcile").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("instances", "0001_initial"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]
    operations = [migrations.RunPython(forward, reverse)]
