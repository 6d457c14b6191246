"""Refuse UPDATE and DELETE on the audit table in the database itself (PostgreSQL; SQLite too)."""

from django.db import migrations

PG_FORWARD = """
CREATE OR REPLACE FUNCTION paas_auditevent_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only: % refused on paas_auditevent', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER paas_auditevent_no_update BEFORE UPDATE ON paas_auditevent
    FOR EACH ROW EXECUTE FUNCTION paas_auditevent_append_only();
CREATE TRIGGER paas_auditevent_no_delete BEFORE DELETE ON paas_auditevent
    FOR EACH ROW EXECUTE FUNCTION paas_auditevent_append_only();
"""
PG_REVERSE = """
DROP TRIGGER IF EXISTS paas_auditevent_no_update ON paas_auditevent;
DROP TRIGGER IF EXISTS paas_auditevent_no_delete ON paas_auditevent;
DROP FUNCTION IF EXISTS paas_auditevent_append_only();
"""
SQLITE_FORWARD = [
    "CREATE TRIGGER paas_auditevent_no_update BEFORE UPDATE ON paas_auditevent "
    "BEGIN SELECT RAISE(ABORT, 'audit events are append-only: UPDATE refused on paas_auditevent'); END;",
    "CREATE TRIGGER paas_auditevent_no_delete BEFORE DELETE ON paas_auditevent "
    "BEGIN SELECT RAISE(ABORT, 'audit events are append-only: DELETE refused on paas_auditevent'); END;",
]
SQLITE_REVERSE = [
    "DROP TRIGGER IF EXISTS paas_auditevent_no_update;",
    "DROP TRIGGER IF EXISTS paas_auditevent_no_delete;",
]


def forward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_FORWARD, params=None)
    elif vendor == "sqlite":
        for statement in SQLITE_FORWARD:
            schema_editor.execute(statement)


def reverse(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_REVERSE, params=None)
    elif vendor == "sqlite":
        for statement in SQLITE_REVERSE:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("paas", "0002_initial")]
    operations = [migrations.RunPython(forward, reverse)]
