"""A deploy run that ends after its target's delete was requested (the load test found both): its end
neither moves the target to READY nor to FAILED over the delete (``An instance cannot go from
Deleting to Ready`` left the run running; a DELETING target made FAILED left the delete run unable to
finish), and a queued deploy of a target being deleted is not run. Nothing here reaches a cluster: the
runs' ends are called as the worker calls them once its work returned (synced nodes, no deploys)."""

import pytest

from catalog import services as catalog_services
from catalog.models import ComputeProfile
from instances import deployer
from instances.models import ComputeInstance, Run
from instances.services import instance_delete, instance_launch
from instances.states import State
from tests.factories import ONE_A100, make_profile, make_synced_cluster

MANIFESTS = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ instance.name }}-info\ndata:\n  a: b\n"


@pytest.fixture
def deleting(world):
    """An instance whose deploy run is running (claimed: PROVISIONING) when its delete is requested."""
    admin, owner, team = world.a.users["org_admin"], world.a.users["workspace_admin"], world.a.project
    profile = make_profile(
        actor=admin, project=team, manifests=MANIFESTS, name="one", template="one", resource_groups=ONE_A100
    )
    catalog_services.item_share(actor=admin, item=profile, sharing="all")
    make_synced_cluster(name="superseded", nodes=1)
    instance = instance_launch(
        actor=owner, project=team, name="raced", profile=ComputeProfile.objects.get(pk=profile.pk)
    )
    run = deployer._claim(instance.runs.get().pk)
    assert ComputeInstance.objects.get(pk=instance.pk).state == State.PROVISIONING
    instance_delete(actor=owner, instance=instance)
    return ComputeInstance.objects.get(pk=instance.pk), run


def test_a_deploy_that_succeeds_after_the_delete_leaves_the_instance_to_it(deleting):
    instance, run = deleting
    assert deployer._succeeded(run, instance, deployer.RunLog(run)) == State.DELETING
    instance.refresh_from_db()
    run.refresh_from_db()
    assert instance.state == State.DELETING
    assert run.outcome == Run.Outcome.SUCCEEDED and "deleted meanwhile" in run.message


def test_a_deploy_that_fails_after_the_delete_leaves_the_instance_to_it(deleting):
    instance, run = deleting
    error = deployer.UnexpectedError(ValueError("boom"))
    assert deployer._failed(run, instance, deployer.RunLog(run), error) == State.DELETING
    instance.refresh_from_db()
    run.refresh_from_db()
    assert instance.state == State.DELETING  # not FAILED: the delete run can still end it DELETED
    assert run.outcome == Run.Outcome.FAILED and "boom" in run.message and "deleted meanwhile" in run.message
    delete_run = instance.runs.get(kind=Run.Kind.DELETE)
    assert deployer._succeeded(delete_run, instance, deployer.RunLog(delete_run)) == State.DELETED


def test_a_queued_deploy_of_an_instance_being_deleted_is_not_run(deleting):
    instance, run = deleting
    Run.objects.filter(pk=run.pk).update(outcome=Run.Outcome.QUEUED)  # (a retry waiting for its turn)
    assert deployer._claim(run.pk) is None
    run.refresh_from_db()
    assert run.outcome == Run.Outcome.FAILED and "Not run" in run.message
    assert ComputeInstance.objects.get(pk=instance.pk).state == State.DELETING
