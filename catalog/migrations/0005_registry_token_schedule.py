"""Amazon ECR registry tokens (12 hours) refreshed before they expire, as a django-q2 schedule; the
registry credential's help text says where it goes (pull-only)."""

from django.db import migrations

import paas.fields


def forward(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name="registry tokens",
        defaults={
            "func": "catalog.registry_tasks.registry_tokens_refresh",
            "schedule_type": "I",
            "minutes": 15,
            "repeats": -1,
        },
    )


def reverse(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="registry tokens").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("catalog", "0004_integrations"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]
    operations = [
        migrations.RunPython(forward, reverse),
        migrations.AlterField(
            model_name="containerregistry",
            name="credential",
            field=paas.fields.EncryptedTextField(
                blank=True,
                default="",
                help_text="Write-only: encrypted at rest, never shown again. PULL-ONLY: this credential is delivered as an imagePullSecret into the namespaces of every workspace the registry is shared with, where the workspace's members can read it. Enter a robot account or access token that may only pull images (Amazon ECR: the secret access key of an IAM user allowed only ecr:GetAuthorizationToken and pulls), never an administrator's or a push credential.",
                verbose_name="password or token",
            ),
        ),
    ]
