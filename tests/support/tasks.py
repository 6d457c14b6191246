"""Tasks used by the suite to observe workers (imported by real worker processes in tests)."""

from pathlib import Path

from django_q.conf import Conf


def record_worker(path: str, tag: str) -> str:
    """Append ``<tag> <the queue of the worker that ran this>`` to ``path``."""
    with Path(path).open("a") as handle:
        handle.write(f"{tag} {Conf.CLUSTER_NAME}\n")
    return Conf.CLUSTER_NAME
