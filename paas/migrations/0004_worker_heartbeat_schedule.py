"""The recurring heartbeat that /healthz reads, as a django-q2 schedule visible in the studio."""

from django.db import migrations


def forward(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name="worker heartbeat",
        defaults={"func": "paas.tasks.worker_heartbeat", "schedule_type": "I", "minutes": 1, "repeats": -1},
    )


def reverse(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="worker heartbeat").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("paas", "0003_audit_append_only"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]
    operations = [migrations.RunPython(forward, reverse)]
