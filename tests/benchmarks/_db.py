"""A fresh PostgreSQL database for a benchmark run (the suite's server, database gpupaas_bench)."""

import os


def fresh_database(name: str = "gpupaas_bench") -> str:
    """Create ``name`` anew, point Django at it, set Django up and migrate. Returns its URL. (A benchmark
    that may run beside another one on the same server passes a name of its own.)"""
    import psycopg

    from tests.support import postgres

    base = postgres.ensure().rsplit("/", 1)[0]
    url = f"{base}/{name}"
    os.environ.update(DATABASE_URL=url, DJANGO_SETTINGS_MODULE="paas.settings.test")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return url


def existing_database(name: str) -> str | None:
    """Point Django at ``name`` as a previous run left it (set up and migrated, nothing dropped) and
    return its URL; None when there is no such database."""
    import psycopg

    from tests.support import postgres

    base = postgres.ensure().rsplit("/", 1)[0]
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            return None
    url = f"{base}/{name}"
    os.environ.update(DATABASE_URL=url, DJANGO_SETTINGS_MODULE="paas.settings.test")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return url
