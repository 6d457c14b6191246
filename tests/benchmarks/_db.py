"""A fresh PostgreSQL database for a benchmark run (the suite's server, database gpupaas_bench)."""

import os


def fresh_database() -> str:
    """Create ``gpupaas_bench`` anew, point Django at it, set Django up and migrate. Returns its URL."""
    import psycopg

    from tests.support import postgres

    base = postgres.ensure().rsplit("/", 1)[0]
    url = f"{base}/gpupaas_bench"
    os.environ.update(DATABASE_URL=url, DJANGO_SETTINGS_MODULE="paas.settings.test")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS gpupaas_bench")
        conn.execute("CREATE DATABASE gpupaas_bench")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return url
