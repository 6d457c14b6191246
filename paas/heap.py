"""The objects a long-lived process makes while it starts, kept out of the garbage collector's walks.

Django, its apps, the URL patterns and the admin registry are a quarter of a million objects that live
as long as the process. Python's cyclic collector walks every tracked object on each full collection,
and requests allocate enough to set one off every few requests: about 16 ms a request on a studio
changelist, paid in bursts (p95 more than p50). ``gc.freeze()`` moves what exists now into a permanent
generation the collector no longer walks; what requests make is collected as before. In forked workers
(django-q's) it also keeps those pages shared, since a walk no longer writes to every object's header.
"""

import gc


def freeze_startup_objects() -> None:
    """Collect once, then freeze what is left (call when the process has set itself up)."""
    gc.collect()
    gc.freeze()
