"""Services share their compute instance's namespace: a service whose template renders an object that
the instance's own template or another service already has is refused (server-side apply would take it
over, and the service's delete would remove it), at launch and again by the worker before it applies."""

import pytest

from instances import deployer, service_instances
from instances.models import Run, ServiceInstance
from instances.states import State
from paas.errors import ValidationFailed
from tests.integration.test_services_launch import setup  # noqa: F401 - the shared fixture
from tests.support.services import make_service_profile

FIXED = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shared-settings\ndata:\n  a: b\n"
NAMED = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ instance.name }}-info\ndata:\n  a: b\n"


def _profile(world, name, manifests):
    return make_service_profile(
        world, name=name, manifests=manifests, inputs=[], outputs=[], input_settings={}, output_settings={}
    )


def _launch(setup, profile, name):  # noqa: F811
    return service_instances.service_launch(
        actor=setup["instance"].owner, compute_instance=setup["instance"], profile=profile, name=name
    )


def test_an_object_of_the_instance_itself_is_refused(setup):  # noqa: F811
    """The instance 'dev' has ConfigMap dev-info: a service named 'dev' rendering '<name>-info' would
    replace it."""
    profile = _profile(setup["world"], "named", NAMED)
    with pytest.raises(ValidationFailed) as refused:
        _launch(setup, profile, "dev")
    (message,) = refused.value.fields["name"]
    assert "ConfigMap 'dev-info' belongs to the compute instance dev" in message
    assert not ServiceInstance.objects.filter(name="dev").exists()
    assert _launch(setup, profile, "other").state == State.PENDING


def test_an_object_of_another_service_is_refused_at_launch_and_by_the_worker(setup):  # noqa: F811
    profile = _profile(setup["world"], "fixed", FIXED)
    first = _launch(setup, profile, "first")
    # its deploy records its objects before applying them (the worker, on a cluster: here by hand)
    ServiceInstance.objects.filter(pk=first.pk).update(
        objects_applied=[{"apiVersion": "v1", "kind": "ConfigMap", "name": "shared-settings"}]
    )
    with pytest.raises(ValidationFailed) as refused:
        _launch(setup, profile, "second")
    assert "ConfigMap 'shared-settings' belongs to the service first" in refused.value.fields["name"][0]

    # A row that got past the launch (here: its neighbour's inventory was not yet recorded) is stopped
    # by the worker before anything is applied: the run fails with the reason, not retried.
    ServiceInstance.objects.filter(pk=first.pk).update(objects_applied=[])
    second = _launch(setup, profile, "second")
    ServiceInstance.objects.filter(pk=first.pk).update(
        objects_applied=[{"apiVersion": "v1", "kind": "ConfigMap", "name": "shared-settings"}]
    )
    run = second.runs.get()
    assert deployer.execute(run.pk) == State.FAILED
    run.refresh_from_db()
    assert run.outcome == Run.Outcome.FAILED and run.attempt == 1
    assert "belongs to the service first" in run.message
    second.refresh_from_db()
    assert second.state == State.FAILED
