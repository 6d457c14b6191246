"""Real django-q2 workers for a benchmark: ``manage.py qcluster`` processes on the benchmark's database."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def start_workers(db_url: str, count: int = 2) -> list[subprocess.Popen]:
    """``count`` qcluster processes of one worker each (the queue's default name), output discarded."""
    env = {**os.environ, "DATABASE_URL": db_url, "PAAS_WORKERS": "1"}
    return [
        subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(count)
    ]


def stop_workers(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        worker.terminate()
    for worker in workers:
        worker.wait(timeout=30)
