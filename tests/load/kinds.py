"""The kinds of request the load test sends, and the answers each may give.

Imported by the locustfile (inside the ``locust`` process) and by ``report`` (in the suite or the
benchmark): plain Python, no Django, no gevent.

Every kind has exactly the statuses a correct platform answers. The one refusal the load is designed to
meet is the quota: one workspace (``tight``) has a quota of two instances, its ready one and one more,
while its user keeps up to two launched, so its launches are 201 or 409 ``quota_exceeded`` ("Over quota:
..."). Any other status of any kind (a 409 "no capacity", a 400, a 403 for a user's own workspace, a 404
for their own instance) is a failure, as is every 5xx and every request without an answer (status 0).
"""

#: kind -> the statuses it may answer with (anything else fails the run)
EXPECTED: dict[str, frozenset[int]] = {
    # the developer hub, signed in with a session (login form, CSRF)
    "portal: login form": frozenset({200}),
    "portal: sign in": frozenset({302}),
    "portal: home": frozenset({302}),  # to the workspace used last
    "portal: workspace": frozenset({200}),
    "portal: instance list": frozenset({200}),
    "portal: launch form (catalog)": frozenset({200}),
    "portal: service catalog": frozenset({200}),
    "portal: deployments": frozenset({200}),
    "portal: instance detail": frozenset({200}),
    "portal: instance status": frozenset({200}),
    "portal: kubeconfig download": frozenset({200}),
    # the REST API with personal API tokens
    "api: me (baseline)": frozenset({200}),
    "api: catalog compute": frozenset({200}),
    "api: catalog services": frozenset({200}),
    "api: instance list": frozenset({200}),
    "api: workspace summary": frozenset({200}),
    "api: service list": frozenset({200}),
    "api: launch": frozenset({201}),
    "api: launch (tight quota)": frozenset({201, 409}),
    "api: delete": frozenset({202}),
    "api: service launch": frozenset({201}),
    "api: service delete": frozenset({202}),
    "api: kubeconfig download": frozenset({200}),
}

#: The trivial endpoint every figure is compared with (the benchmark prints it first).
BASELINE = "api: me (baseline)"

#: what the body of an expected 409 must say (a 409 for any other reason is a failure)
QUOTA_REFUSAL = "quota_exceeded"
