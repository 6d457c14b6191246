"""The audit checkpoint catch-up (paas.tasks.audit_checkpoint) as a django-q2 schedule."""

from django.db import migrations


def forward(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name="audit checkpoint",
        defaults={"func": "paas.tasks.audit_checkpoint", "schedule_type": "I", "minutes": 5, "repeats": -1},
    )


def reverse(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="audit checkpoint").delete()


class Migration(migrations.Migration):
    dependencies = [("paas", "0005_audit_no_truncate")]
    operations = [migrations.RunPython(forward, reverse)]
