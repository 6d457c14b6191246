"""The sealers' work list (unsealed events, by chain), built CONCURRENTLY, and the validation of 0013's
CHECK constraint: neither blocks writers of a long audit trail (hence a non-atomic migration)."""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("paas", "0013_audit_sealed_after_commit")]

    operations = [
        migrations.RunSQL(
            "ALTER TABLE paas_auditevent VALIDATE CONSTRAINT paas_auditevent_sealed_whole",
            migrations.RunSQL.noop,
        ),
        AddIndexConcurrently(
            model_name="auditevent",
            index=models.Index(
                condition=models.Q(seq__isnull=True), fields=["chain", "id"], name="paas_audit_unsealed_idx"
            ),
        ),
    ]
