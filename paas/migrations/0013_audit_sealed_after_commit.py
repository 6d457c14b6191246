"""Audit events sealed after commit (expand): ``seq`` and ``hash`` may be NULL and ``prev_hash`` "" (an
event written but not yet chained); the append-only trigger lets exactly one UPDATE through, the sealing of
an unsealed row (those three columns set, nothing else changed); the ``audit seal`` schedule seals what
a process left unsealed.

Every statement is cheap on a long trail: dropping NOT NULL is a catalog change, the CHECK constraint is
added NOT VALID (no scan under the table lock; 0014 validates it without blocking writers). The previous
release keeps working beside this schema (it writes sealed rows under the same per-chain advisory lock
the sealers take), except that its head read (``ORDER BY seq DESC``) would meet a not-yet-sealed row
first: upgrade in one rolling update, not with old and new writers side by side for long.
"""

from django.db import migrations, models

SEALED_WHOLE = (
    "(seq IS NULL AND prev_hash = '' AND hash IS NULL) "
    "OR (seq IS NOT NULL AND hash IS NOT NULL AND NOT (prev_hash = ''))"
)

TRIGGER_FORWARD = """
CREATE OR REPLACE FUNCTION paas_auditevent_append_only() RETURNS trigger AS $$
BEGIN
    -- Sealing: an unsealed event gets its place in its chain, once; nothing else of it may change.
    IF TG_OP = 'UPDATE' AND OLD.seq IS NULL AND OLD.prev_hash = '' AND OLD.hash IS NULL
        AND NEW.seq IS NOT NULL AND NEW.prev_hash <> '' AND NEW.hash IS NOT NULL
        AND (to_jsonb(NEW) - 'seq' - 'prev_hash' - 'hash') = (to_jsonb(OLD) - 'seq' - 'prev_hash' - 'hash')
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit events are append-only: % refused on paas_auditevent', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""
TRIGGER_REVERSE = """
CREATE OR REPLACE FUNCTION paas_auditevent_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only: % refused on paas_auditevent', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""


def schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name="audit seal",
        defaults={"func": "paas.tasks.audit_seal", "schedule_type": "I", "minutes": 1, "repeats": -1},
    )


def unschedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="audit seal").delete()


class Migration(migrations.Migration):
    dependencies = [("paas", "0012_brand")]

    operations = [
        migrations.AlterField(
            model_name="auditevent",
            name="hash",
            field=models.CharField(blank=True, max_length=64, null=True, unique=True, verbose_name="hash"),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="prev_hash",
            field=models.CharField(blank=True, max_length=64, verbose_name="previous hash"),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="seq",
            field=models.BigIntegerField(blank=True, null=True, verbose_name="sequence"),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddConstraint(
                    model_name="auditevent",
                    constraint=models.CheckConstraint(
                        condition=models.Q(seq__isnull=True, prev_hash="", hash__isnull=True)
                        | (models.Q(seq__isnull=False, hash__isnull=False) & ~models.Q(prev_hash="")),
                        name="paas_auditevent_sealed_whole",
                    ),
                )
            ],
            database_operations=[
                migrations.RunSQL(
                    f"ALTER TABLE paas_auditevent ADD CONSTRAINT paas_auditevent_sealed_whole "
                    f"CHECK ({SEALED_WHOLE}) NOT VALID",
                    "ALTER TABLE paas_auditevent DROP CONSTRAINT IF EXISTS paas_auditevent_sealed_whole",
                )
            ],
        ),
        migrations.RunSQL(TRIGGER_FORWARD, TRIGGER_REVERSE),
        migrations.RunPython(schedule, unschedule),
    ]
