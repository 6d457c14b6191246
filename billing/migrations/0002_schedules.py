"""The hourly usage roll-up and the budget alerts, as django-q2 schedules (every 5 minutes)."""

from django.db import migrations

SCHEDULES = {
    "billing usage roll-up": "billing.tasks.usage_rollup",
    "billing budget alerts": "billing.tasks.budgets_check",
}


def forward(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    for name, func in SCHEDULES.items():
        Schedule.objects.update_or_create(
            name=name, defaults={"func": func, "schedule_type": "I", "minutes": 5, "repeats": -1}
        )


def reverse(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name__in=list(SCHEDULES)).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0001_initial"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]
    operations = [migrations.RunPython(forward, reverse)]
