"""The API fuzzer: schemathesis generates requests from /api/schema/ for every operation and sends
them, as an org admin with an API token, to the WSGI application in-process. No answer may be a 5xx
(schemathesis's ``not_a_server_error``), and most answers must not be 401/403 (the requests really
reach the handlers).

Per operation: EXAMPLES valid-looking requests, EXAMPLES that break the schema, and EXAMPLES valid
ones on real objects of the org (its project, template, profile, instance...), with a fixed seed:
the same requests every run. Each request runs in a savepoint that is rolled back, so every case
starts from the same world. Nothing may connect out during the run: ``PAAS_OUTBOUND_DENY_ALL`` makes
the outbound-address policy (paas/outbound.py) refuse every address, so a cluster the fuzzer makes
up is refused, never dialled.
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
from hypothesis.errors import Unsatisfiable
from rest_framework.test import APIClient
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from catalog import app_catalog
from catalog.models import ContainerRegistry, Repository
from instances import applications, service_instances
from instances.models import ComputeInstance
from instances.states import State, transition
from paas.models import AuditEvent
from paas.services import api_token_create
from tenancy.models import RoleAssignment
from tenancy.services import instance_limit_set
from tests.factories import ONE_A100, make_profile, make_synced_cluster
from tests.support.instances import launch
from tests.support.services import make_service_profile

pytestmark = pytest.mark.fuzz

SEED = 20261129
EXAMPLES = int(os.environ.get("PAAS_FUZZ_EXAMPLES", "8"))  # per operation and kind (valid, invalid, real)
MANIFESTS = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ instance.name }}-info\ndata:\n  a: b\n"


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


def _examples(strategy, call, count: int):
    """A Hypothesis test sending ``count`` generated cases (fixed seed, no shrinking)."""

    @seed(SEED)
    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],  # no shrinking: each 5xx is listed as found
    )
    @given(case=strategy)
    def run(case):
        call(case)

    return run


def _real_ids(operation, ids: dict[str, int]) -> dict[str, int] | None:
    """Path parameters naming objects the org admin can see (``/projects/{id}/`` -> the team project)."""
    segments = operation.path.strip("/").split("/")
    values = {}
    for index, segment in enumerate(segments):
        if not (segment.startswith("{") and segment.endswith("}")):
            continue
        name = segment[1:-1]
        resource = {"user_id": "users", "project_id": "projects"}.get(name, segments[index - 1])
        if resource not in ids:
            return None
        values[name] = ids[resource]
    return values or None


def _fuzz_operation(operation, ids, wsgi_app, headers, statuses, per_operation, errors) -> None:
    seen = per_operation.setdefault(operation.label, collections.Counter())

    def call(case):
        with transaction.atomic():  # every case starts from the same world
            response = case.call(app=wsgi_app, headers=headers)
            transaction.set_rollback(True)
        statuses[response.status_code] += 1
        seen[response.status_code] += 1
        try:
            case.validate_response(response, checks=[not_a_server_error])
        except (AssertionError, BaseExceptionGroup):  # a Failure, or a FailureGroup of them
            errors.append(f"{operation.label}: {response.status_code}\n{case.as_curl_command()}")

    _examples(operation.as_strategy(GenerationMode.POSITIVE), call, EXAMPLES)()
    with contextlib.suppress(Unsatisfiable):  # an operation with nothing to make invalid
        _examples(operation.as_strategy(GenerationMode.NEGATIVE), call, EXAMPLES)()
    path_parameters = _real_ids(operation, ids)
    if path_parameters:
        _examples(operation.as_strategy(path_parameters=path_parameters), call, EXAMPLES)()


def _objects(world) -> dict[str, int]:
    """Objects of org A for the fuzzer to reach: a template, version, profile and instance, and more."""
    admin = world.a.users["org_admin"]
    profile = make_profile(
        actor=admin, project=world.a.project, manifests=MANIFESTS, resource_groups=ONE_A100, template="fz"
    )
    make_synced_cluster(name="fuzz-c")
    instance = launch(world, profile, "fuzzed")
    with transaction.atomic():  # as its deploy leaves it, so that a service can be deployed onto it
        instance = ComputeInstance.objects.select_for_update().get(pk=instance.pk)
        instance.namespace = "i-fuzzed-ns"
        instance.save(update_fields=["namespace"])
        transition(instance, State.PROVISIONING)
        transition(instance, State.READY)
    service = service_instances.service_launch(
        actor=instance.owner, compute_instance=instance, profile=make_service_profile(world), name="web"
    )
    application = applications.application_create(
        actor=instance.owner,
        compute_instance=instance,
        name="app",
        package_type="yaml",
        sync="upload",
        files={"cm.yaml": MANIFESTS.replace("{{ instance.name }}", "app")},
    )
    item = app_catalog.catalog_application_create(
        actor=admin,
        project=world.a.project,
        name="fz-app",
        package_type="yaml",
        files={"cm.yaml": MANIFESTS.replace("{{ instance.name }}", "item")},
    )
    repository = Repository.objects.create(  # the fuzzer's outbound policy refuses every address
        org=world.a.org,
        project=world.a.project,
        name="fz-repo",
        kind="git",
        url="https://git.example.com/a.git",
    )
    registry = ContainerRegistry.objects.create(
        org=world.a.org, name="fz-registry", provider="generic", endpoint="registry.example.com"
    )
    return {
        "repositories": repository.pk,
        "registries": registry.pk,
        "applications": application.pk,
        "application-catalog": item.pk,
        "projects": world.a.project.pk,
        "orgs": world.a.org.pk,
        "users": world.a.users["collaborator_rw"].pk,
        "quotas": world.a.org.quota.pk,
        "instance-limits": instance_limit_set(
            actor=admin, org=world.a.org, max_active_instances_per_user=50
        ).pk,
        "role-assignments": RoleAssignment.objects.filter(project=world.a.project).first().pk,
        "audit-events": AuditEvent.objects.filter(org=world.a.org).first().pk,
        "templates": profile.template_version.template_id,
        "template-versions": profile.template_version_id,
        "compute-profiles": profile.pk,
        "instances": instance.pk,
        "service-instances": service.pk,
    }


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
    ids = _objects(world)

    statuses: collections.Counter[int] = collections.Counter()
    per_operation: dict[str, collections.Counter[int]] = {}
    errors: list[str] = []
    started = time.monotonic()
    operations = [result.ok() for result in schema.get_all_operations()]
    with in_process_wsgi() as wsgi_app:
        for operation in operations:
            _fuzz_operation(operation, ids, wsgi_app, headers, statuses, per_operation, errors)
    examples = sum(statuses.values())

    elapsed = time.monotonic() - started
    histogram = ", ".join(f"{code}: {count}" for code, count in sorted(statuses.items()))
    print(
        f"\nAPI fuzz: {len(operations)} operations, {examples} requests ({EXAMPLES} valid, {EXAMPLES} "
        f"invalid and {EXAMPLES} on real objects per operation, seed {SEED}) in {elapsed:.0f} s; "
        f"status codes: {histogram}"
    )
    for label, seen in sorted(per_operation.items()):
        if seen and seen.keys() <= {401, 403}:
            print(f"  only refused: {label} {dict(seen)}")
    assert not errors, f"{len(errors)} server errors:\n" + "\n\n".join(errors[:20])
    refused = statuses[401] + statuses[403]
    assert examples and refused / examples < 0.5, f"{refused} of {examples} answers were 401/403"
