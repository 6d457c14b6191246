"""Refuse TRUNCATE on the audit table (PostgreSQL), beside the row triggers refusing UPDATE and DELETE.

A statement-level ``BEFORE TRUNCATE`` trigger: TRUNCATE does not fire row triggers, so without it one
statement would empty the trail. Like every ordinary trigger it does not fire while the session runs
with ``session_replication_role = replica``, a setting only a superuser may change: that is how the
test suite's own flush (TRUNCATE of every table between transactional tests) still resets the
database, while the application's role cannot.
"""

from django.db import migrations

PG_FORWARD = """
CREATE TRIGGER paas_auditevent_no_truncate BEFORE TRUNCATE ON paas_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION paas_auditevent_append_only();
"""
PG_REVERSE = "DROP TRIGGER IF EXISTS paas_auditevent_no_truncate ON paas_auditevent;"


class Migration(migrations.Migration):
    dependencies = [("paas", "0004_worker_heartbeat_schedule")]
    operations = [migrations.RunSQL(PG_FORWARD, PG_REVERSE)]
