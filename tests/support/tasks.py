"""Tasks used by the suite to observe workers (imported by real worker processes in tests)."""

from pathlib import Path

from django_q.conf import Conf


def record_worker(path: str, tag: str) -> str:
    """Append ``<tag> <the queue of the worker that ran this>`` to ``path``."""
    with Path(path).open("a") as handle:
        handle.write(f"{tag} {Conf.CLUSTER_NAME}\n")
    return Conf.CLUSTER_NAME


def record_slowly(path: str, tag: str, seconds: float) -> str:
    """Append ``start <tag> <pid>``, work for ``seconds``, append ``end <tag> <pid>`` (a task in flight
    for a stop signal to meet)."""
    import os
    import time

    with Path(path).open("a") as handle:
        handle.write(f"start {tag} {os.getpid()}\n")
    time.sleep(seconds)  # the task's "work"
    with Path(path).open("a") as handle:
        handle.write(f"end {tag} {os.getpid()}\n")
    return tag


def record_run(path: str, tag: str, intended: str = "") -> None:
    """A scheduled task: append ``<tag> <the run's intended time>`` (django-q2 passes it as
    ``intended`` when the schedule's ``intended_date_kwarg`` says so)."""
    with Path(path).open("a") as handle:
        handle.write(f"{tag} {intended}\n")
