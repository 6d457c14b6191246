"""Refuse UPDATE and DELETE on the audit table in the database itself (PostgreSQL)."""

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


class Migration(migrations.Migration):
    dependencies = [("paas", "0002_initial")]
    operations = [migrations.RunSQL(PG_FORWARD, PG_REVERSE)]
