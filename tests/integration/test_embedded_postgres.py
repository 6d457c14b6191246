"""The dev profile's database: the project's own PostgreSQL server (paas/embedded_postgres.py), found
when it runs and started (cluster created once) when it does not; ``manage.py`` run by hand, the web
server and the worker all land on the same database."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from paas import embedded_postgres

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "from django.db import connection; connection.ensure_connection(); "
    "print(connection.settings_dict['NAME'], connection.settings_dict['PORT'], connection.vendor)"
)


def _dev_manage(var_dir: Path) -> list[str]:
    """Name, port and vendor of the database ``manage.py`` finds with the dev settings."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", PROBE],
        cwd=ROOT,
        env={**env, "PAAS_VAR_DIR": str(var_dir), "DJANGO_SETTINGS_MODULE": "paas.settings.dev"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1].split()


def test_dev_settings_find_the_running_server(db, tmp_path):
    """With the project's server running (here: the suite's own, linked in as var/postgres), manage.py
    with the dev settings connects to it: no second server, database ``paas`` created on it."""
    with connection.cursor() as cursor:
        cursor.execute("SHOW data_directory")
        data_dir = Path(cursor.fetchone()[0])
    suite_port = connection.settings_dict["PORT"]
    if embedded_postgres.running_port(data_dir) != int(suite_port):
        pytest.skip("the suite's server was not started by paas/embedded_postgres.py (DATABASE_URL given)")
    (tmp_path / "postgres").symlink_to(data_dir)
    try:
        name, port, vendor = _dev_manage(tmp_path)
        assert (name, port, vendor) == ("paas", str(suite_port), "postgresql")
    finally:
        with psycopg.connect(
            host="127.0.0.1", port=suite_port, user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            conn.execute("DROP DATABASE IF EXISTS paas WITH (FORCE)")


def test_dev_settings_start_the_server_once_and_reuse_it(tmp_path):
    """No server yet: the first manage.py creates the cluster under var/postgres (password
    authentication, the password in var/postgres.password, 0600) and starts it; the second reuses it."""
    var_dir = tmp_path / "var"
    data_dir = var_dir / "postgres"
    try:
        name, port, vendor = _dev_manage(var_dir)
        assert (name, vendor) == ("paas", "postgresql")
        assert embedded_postgres.running_port(data_dir) == int(port)
        password_file = var_dir / "postgres.password"
        assert password_file.stat().st_mode & 0o777 == 0o600
        with pytest.raises(psycopg.OperationalError):  # loopback is not trusted: the password is needed
            psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="paas", password="wrong")

        server_pid = (data_dir / "postmaster.pid").read_text().split()[0]

        name2, port2, _ = _dev_manage(var_dir)
        assert (name2, port2) == ("paas", port)
        assert (data_dir / "postmaster.pid").read_text().split()[0] == server_pid  # the same server
    finally:
        embedded_postgres.stop(data_dir)
        if data_dir.is_symlink():  # a tmp_path closed to the postgres user: the data lived in its home
            shutil.rmtree(data_dir.resolve(), ignore_errors=True)
