"""Database work from the proxy's event loop: run on a worker thread, the connection handed back to the
pool after each call (the proxy's requests never pass through Django's request handler, which would
otherwise do it)."""

import functools

from asgiref.sync import sync_to_async
from django.db import connection


def in_thread(fn):
    """``await in_thread(fn)(...)``: ``fn`` on a worker thread, its connection returned afterwards."""

    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        finally:
            if not connection.allow_thread_sharing:  # (the suite lends a test's connection to the server)
                connection.close()  # under psycopg's pool: back to the pool

    return sync_to_async(call, thread_sensitive=False)
