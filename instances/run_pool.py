"""Several runs at once in one worker process (the worker side of ``instances.tasks.run_execute``).

A deploy spends most of its time waiting on the API server: for its writes, then for its pods to be
ready (a watch). One django-q2 worker process runs one task at a time, so a worker that ran a deploy
inside its task would sit idle through that wait. Instead the task hands the run to this process's
pool of ``settings.PAAS_RUN_CONCURRENCY`` threads and returns; the worker takes its next task at once.
When every thread is busy the task waits for one to be free, so a worker never holds more runs than
that and the queue's other workers take the rest (backpressure: nothing piles up in a process).

What the pool does not change: a run is still executed by ``instances.deployer.execute`` from start
to end, which records its outcome on the run (the task's own result only says it was started), writes
a heartbeat with each step, and is claimed under a row lock, so the same run delivered to two workers
(or twice to one) is run once: the second finds it running with a fresh heartbeat
(``deployer.taken_elsewhere``). A worker killed with runs in flight leaves them running without a
heartbeat; the reconcile re-drives them as it does any run whose worker died. A worker stopped or
recycled by its cluster finishes the runs it holds before its process exits (the pool's threads are
joined at exit). Nothing here bounds a run's duration: the deployer's deadlines (request timeouts, the
readiness wait) do.

Runs execute inline (in the task, as before) when the concurrency is 1 and in django-q2's synchronous
mode (``sync``: the caller expects the run done when the call returns).
"""

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import close_old_connections
from django_q.signals import pre_execute

log = logging.getLogger(__name__)

_task = threading.local()  # what the worker's current task is: set by django-q2's pre_execute signal
_lock = threading.Lock()
_pool: tuple[int, ThreadPoolExecutor, threading.BoundedSemaphore] | None = None


def _task_starting(sender, func=None, task=None, **kwargs) -> None:
    """django-q2 is about to run ``task`` in this thread: may a run of it go to the pool?"""
    _task.in_worker = not (task or {}).get("sync", False)


pre_execute.connect(_task_starting, dispatch_uid="instances.run_pool")


def _threads() -> tuple[ThreadPoolExecutor, threading.BoundedSemaphore]:
    global _pool
    with _lock:
        if _pool is None or _pool[0] != os.getpid():  # a forked child makes its own threads
            size = settings.PAAS_RUN_CONCURRENCY
            executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="run")
            _pool = (os.getpid(), executor, threading.BoundedSemaphore(size))
        return _pool[1], _pool[2]


def submit(run_id: int) -> str:
    """Execute the run on this process's pool (waiting for a free thread), or inline (above)."""
    if settings.PAAS_RUN_CONCURRENCY <= 1 or not getattr(_task, "in_worker", False):
        return _execute(run_id)
    executor, slots = _threads()
    slots.acquire()
    try:
        executor.submit(_background, run_id, slots)
    except BaseException:
        slots.release()
        raise
    return "started"


def _execute(run_id: int) -> str:
    from instances import deployer
    from paas.context import Client, client_context

    with client_context(client=Client.TASK):
        return deployer.execute(run_id)


def _background(run_id: int, slots: threading.BoundedSemaphore) -> None:
    close_old_connections()  # this thread's connection, as a worker does between tasks
    try:
        outcome = _execute(run_id)
        log.info("Run %s: %s", run_id, outcome)
    except Exception:
        # execute() records every failure of the work on the run; only a fault of the database itself
        # gets here (the run stays running and the reconcile re-drives it once its heartbeat is stale).
        log.exception("Run %s stopped on an error outside its work", run_id)
    finally:
        close_old_connections()
        slots.release()
