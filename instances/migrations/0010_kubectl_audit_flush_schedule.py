"""The safety net of the kubectl audit: a django-q2 schedule (every minute) chaining the proxied requests
that no web process flushed (it died, or was idle since) into the tenants' trails."""

from django.db import migrations

NAME = "kubectl audit flush"
FUNC = "instances.kubeproxy.auditing.flush_task"


def forward(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name=NAME, defaults={"func": FUNC, "schedule_type": "I", "minutes": 1, "repeats": -1}
    )


def reverse(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("instances", "0009_kubectl_proxy"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]
    operations = [migrations.RunPython(forward, reverse)]
