"""Server-side binding and prepared statements (paas/settings/base.py ``database_options``, paas/apps.py):
a connection prepares a query it has run ``PAAS_DB_PREPARE_THRESHOLD`` times and keeps
``PAAS_DB_PREPARED_MAX`` of them; ``0`` turns both off."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db import connection

from paas.settings.base import database_options
from tenancy.models import Organization

pytestmark = pytest.mark.django_db


def _prepared_org_queries() -> list[str]:
    """The texts of this connection's prepared statements on the org table that bind a parameter."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        texts = [row[0] for row in cursor.fetchall()]
    return [text for text in texts if "tenancy_organization" in text and "$1" in text]


def test_a_query_run_twice_is_prepared_on_the_connection():
    connection.ensure_connection()
    raw = connection.connection
    assert raw.prepare_threshold == 2
    assert raw.prepared_max == settings.PAAS_DB_PREPARED_MAX == 500

    marker = "prepared-statement-probe"

    def probe() -> None:  # a query shape no other test runs, so this connection has not counted it yet
        rows = Organization.objects.filter(name=marker, display_name__contains=marker)
        list(rows.values_list("pk", flat=True))

    probe()
    assert not _prepared_org_queries()
    probe()
    probe()
    prepared = _prepared_org_queries()
    assert prepared, "the query run three times was not prepared"
    assert all(marker not in text for text in prepared), "the value was interpolated, not bound"


def test_threshold_zero_binds_nothing_on_the_server(monkeypatch):
    monkeypatch.setenv("PAAS_DB_PREPARE_THRESHOLD", "0")
    options = database_options({}, pool=False)["OPTIONS"]
    assert "server_side_binding" not in options and "prepare_threshold" not in options

    monkeypatch.setenv("PAAS_DB_PREPARE_THRESHOLD", "5")
    options = database_options({}, pool=False)["OPTIONS"]
    assert options["server_side_binding"] is True and options["prepare_threshold"] == 5
