"""The API fuzzer: schemathesis generates requests from /api/schema/ for every operation and sends
them, as an org admin with an API token, to the WSGI application in-process. No answer may be a 5xx,
and most answers must not be 401/403 (the requests really reach the handlers).

Fixed seed and a fixed number of examples per operation: the same requests every run. Each request
runs in a savepoint that is rolled back, so every case starts from the same shared world.
Nothing may connect out during the run (``PAAS_OUTBOUND_DENY_ALL``: the outbound-address policy
refuses every address; a cluster registration the fuzzer makes up is refused, never dialled).
"""

import collections
import contextlib
import os
import time

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from django.test import override_settings
from hypothesis import HealthCheck, Phase, given, seed, settings
from rest_framework.test import APIClient

from paas.services import api_token_create

pytestmark = pytest.mark.fuzz

SEED = 20261129
EXAMPLES = int(os.environ.get("PAAS_FUZZ_EXAMPLES", "12"))  # per operation


@contextlib.contextmanager
def in_process_wsgi():
    """The WSGI application, called in this thread and inside the test's transaction. As Django's own
    test client does, a request's end must not close the test's connection (set again afterwards:
    the test client reconnects the receivers after each of its own requests)."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield get_wsgi_application()
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


def _examples(operation, call):
    """A Hypothesis test sending EXAMPLES generated cases of one operation (fixed seed, no shrinking)."""

    @seed(SEED)
    @settings(
        max_examples=EXAMPLES,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],  # no shrinking: each 5xx is listed as found
    )
    @given(case=operation.as_strategy())
    def run(case):
        call(case)

    return run


def _fuzz_operation(operation, wsgi_app, headers, statuses, per_operation, errors) -> None:
    seen = per_operation.setdefault(operation.label, collections.Counter())

    def call(case):
        with transaction.atomic():  # every case starts from the same world
            response = case.call(app=wsgi_app, headers=headers)
            transaction.set_rollback(True)
        statuses[response.status_code] += 1
        seen[response.status_code] += 1
        if response.status_code >= 500:
            errors.append(f"{operation.label}: {response.status_code}\n{case.as_curl_command()}")

    _examples(operation, call)()


@override_settings(PAAS_OUTBOUND_DENY_ALL=True, ALLOWED_HOSTS=["*"])
def test_api_fuzz_finds_no_server_error(world):
    admin = world.a.users["org_admin"]
    _api_token, token = api_token_create(actor=admin, name="fuzz", expires_in_days=1)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    answer = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert answer.status_code == 200
    schema = schemathesis.openapi.from_dict(answer.json())
    headers = {"Authorization": f"Bearer {token}"}

    statuses: collections.Counter[int] = collections.Counter()
    per_operation: dict[str, collections.Counter[int]] = {}
    errors: list[str] = []
    started = time.monotonic()
    operations = [result.ok() for result in schema.get_all_operations()]
    with in_process_wsgi() as wsgi_app:
        for operation in operations:
            _fuzz_operation(operation, wsgi_app, headers, statuses, per_operation, errors)
    examples = sum(statuses.values())

    elapsed = time.monotonic() - started
    histogram = ", ".join(f"{code}: {count}" for code, count in sorted(statuses.items()))
    print(
        f"\nAPI fuzz: {len(operations)} operations, {examples} examples "
        f"({EXAMPLES} per operation, seed {SEED}) in {elapsed:.0f} s; status codes: {histogram}"
    )
    for label, seen in sorted(per_operation.items()):
        if seen and seen.keys() <= {401, 403}:
            print(f"  only refused: {label} {dict(seen)}")
    assert not errors, f"{len(errors)} server errors:\n" + "\n\n".join(errors[:20])
    refused = statuses[401] + statuses[403]
    assert examples and refused / examples < 0.5, f"{refused} of {examples} answers were 401/403"
