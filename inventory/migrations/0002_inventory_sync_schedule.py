"""The recurring inventory sync, as a django-q2 schedule visible in the studio."""

from django.db import migrations


def forward(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name="inventory sync",
        defaults={
            "func": "inventory.tasks.inventory_sync",
            "schedule_type": "I",
            "minutes": 5,
            "repeats": -1,
        },
    )


def reverse(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="inventory sync").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("inventory", "0001_initial"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]
    operations = [migrations.RunPython(forward, reverse)]
