"""The Locust load test (issue 20, item 5).

``locustfile.py`` runs only inside its own ``locust`` process: importing locust monkey-patches the
standard library (gevent), so nothing in the suite imports it, and no file here is named ``test_*.py``.
The other modules are plain Python the suite and the benchmark import: ``kinds`` (the request kinds and
what answers each may give, shared with the locustfile), ``report`` (reads what a run left: Locust's CSV
and the per-kind status counts) and ``harness`` (Django side: seeds tenants through the services, starts
the production server, the workers and the ``locust`` process).
"""
