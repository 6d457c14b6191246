"""The multi-process directory of prometheus-client, set up by the settings (paas/settings/base.py) before
any app is loaded: prometheus-client decides between its in-process and multi-process values when it is
first imported, and django-q2 imports it while the apps load. This module imports nothing of it."""

import glob
import os
import sys
import tempfile

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Set by ``manage.py serve`` for the worker and streamer it starts: the directory is cleaned already
#: and shared with the web processes (a child must not clean it again).
PREPARED_ENV = "PAAS_METRICS_DIR_PREPARED"


def setup() -> None:
    """Decided before prometheus-client is imported (it reads ``PROMETHEUS_MULTIPROC_DIR`` then).

    A worker (``manage.py qcluster``) serving its metrics needs the multi-process mode: django-q2
    forks the processes that run the tasks, and a thread of the parent serves them. Without a
    configured directory it takes a private one; a worker not started by ``manage.py serve`` cleans
    its directory first (files of an earlier run would be summed into this one's). The directory is
    created when missing (a command run in the image, where the variable is always set)."""
    path = os.environ.get(MULTIPROC_ENV, "")
    worker = sys.argv[1:2] == ["qcluster"]
    if "prometheus_client" in sys.modules and not path:
        return
    if not path and worker and os.environ.get("PAAS_WORKER_METRICS_PORT"):
        path = os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="paas-metrics-")
        os.environ[PREPARED_ENV] = "1"
    if not path:
        return
    os.makedirs(path, exist_ok=True)
    if worker and not os.environ.get(PREPARED_ENV):
        for name in glob.glob(os.path.join(path, "*.db")):
            os.remove(name)
        os.environ[PREPARED_ENV] = "1"
