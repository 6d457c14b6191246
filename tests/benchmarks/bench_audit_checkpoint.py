"""Benchmark: the cost of the on-commit audit checkpoint per audited transaction.

Run on purpose:  .venv/bin/python -m tests.benchmarks.bench_audit_checkpoint [checkpoint-dir]

Times one-event audited transactions (``transaction.atomic`` + ``audit_log``) with checkpointing off
(no key) and on (the default: a signed file per chain, flock, fsync, os.replace) and prints the
medians. Uses a fresh ``gpupaas_bench_audit`` database.
"""

import os
import statistics
import sys
import tempfile
import time


def _fresh_database() -> None:
    import psycopg

    from tests.support import postgres

    base = postgres.ensure().rsplit("/", 1)[0]
    os.environ.update(DATABASE_URL=f"{base}/gpupaas_bench_audit", DJANGO_SETTINGS_MODULE="paas.settings.test")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS gpupaas_bench_audit")
        conn.execute("CREATE DATABASE gpupaas_bench_audit")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def main() -> int:
    _fresh_database()
    from django.conf import settings
    from django.db import transaction

    from paas.audit import audit_log

    directory = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="bench-audit-")
    settings.PAAS_AUDIT_CHECKPOINT_DIR = directory
    key = settings.PAAS_AUDIT_CHECKPOINT_KEY

    def run(n: int = 300) -> float:
        times = []
        for i in range(n):
            start = time.perf_counter()
            with transaction.atomic():
                audit_log(actor=None, action="bench.write", target_type="bench", target_id=i)
            times.append(time.perf_counter() - start)
        return statistics.median(times) * 1000

    settings.PAAS_AUDIT_CHECKPOINT_KEY = ""
    off = run()
    settings.PAAS_AUDIT_CHECKPOINT_KEY = key
    on = run()
    print(
        f"median per audited transaction {off:.2f} ms without, {on:.2f} ms with checkpoint "
        f"(+{on - off:.2f} ms) in {directory}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
