from django.db import migrations, models


class Migration(migrations.Migration):
    """API token scopes; every existing token becomes read-write (what it could do before)."""

    dependencies = [
        ("paas", "0006_audit_checkpoint_schedule"),
    ]

    operations = [
        migrations.AddField(
            model_name="apitoken",
            name="scope",
            field=models.CharField(
                choices=[("read-write", "Read and write"), ("read-only", "Read only")],
                default="read-write",
                max_length=32,
                verbose_name="scope",
            ),
        ),
    ]
