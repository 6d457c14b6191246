"""Instance limits per user (an org's or a workspace's policy): refused with a clear message at the
limit, in the same locked launch decision as the quotas (warm-pool claims and starts included, and
concurrent launches cannot pass it), set through the service, the API and the studio by whom may."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from catalog import services as catalog_services
from catalog.models import ComputeProfile
from instances import actions, pool_claims
from instances.models import ComputeInstance, Run, StandbyInstance, WarmPool
from instances.quota import profile_totals
from instances.services import instance_delete, instance_launch
from instances.states import State
from instances.user_limits import InstanceLimitReached
from paas import authz
from paas.errors import Forbidden, ValidationFailed
from paas.models import AuditEvent
from tenancy import services as tenancy_services
from tenancy.models import InstanceLimit, SupportAccess, SupportLevel, SupportState
from tenancy.roles import Role
from tests.factories import (
    ONE_A100,
    UserFactory,
    add_member,
    make_operator,
    make_org,
    make_profile,
    make_synced_cluster,
)
from tests.support.instances import force_state

MANIFESTS = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ instance.name }}-info\ndata:\n  a: b\n"
TWO_A100 = [dict(ONE_A100[0], gpu_count=2)]


def _profile(admin, project, name: str, groups) -> ComputeProfile:
    """A published size of ``project``'s catalog, shared with every workspace of its org."""
    profile = make_profile(
        actor=admin, project=project, manifests=MANIFESTS, name=name, template=name, resource_groups=groups
    )
    catalog_services.item_share(actor=admin, item=profile, sharing="all")
    return ComputeProfile.objects.get(pk=profile.pk)


@pytest.fixture
def lab(world):
    """Tenant A: a one-GPU and a two-GPU size for all its workspaces, a synced cluster (32 GPUs)."""
    admin = world.a.users["org_admin"]
    one = _profile(admin, world.a.project, "one-gpu", ONE_A100)
    two = _profile(admin, world.a.project, "two-gpu", TWO_A100)
    make_synced_cluster(name="limits-c", nodes=4)
    return world, one, two


def _set(actor, *, org=None, project=None, **limits) -> InstanceLimit:
    return tenancy_services.instance_limit_set(actor=actor, org=org, project=project, **limits)


def _support(operator, org, level: str) -> SupportAccess:
    """An approved support access starting now (as tests/support/support.py of part B makes one)."""
    now = timezone.now()
    access = SupportAccess.objects.create(
        org=org,
        user=operator,
        reason="Customer ticket (test)",
        level=level,
        duration_minutes=60,
        state=SupportState.APPROVED,
        decided_at=now,
        starts_at=now,
        expires_at=now + timedelta(minutes=60),
    )
    authz.forget(operator)
    return access


def _launch(user, project, profile, name):
    return instance_launch(actor=user, project=project, name=name, profile=profile)


# --- the launch decision ------------------------------------------------------------------------------


def test_refused_at_the_limit_with_a_clear_message_and_allowed_after_a_delete(lab):
    world, one, _two = lab
    admin, owner, team = world.a.users["org_admin"], world.a.users["workspace_admin"], world.a.project
    _set(admin, org=world.a.org, max_active_instances_per_user=2)
    first = _launch(owner, team, one, "first")
    _launch(owner, team, one, "second")
    with pytest.raises(InstanceLimitReached) as refused:
        _launch(owner, team, one, "third")
    error = refused.value
    assert (error.status, error.code) == (400, "instance_limit")
    assert error.message == (
        "Instance limit reached: The organization's limit is 2 active instances per user and you have 2 "
        "(stopped instances count too). Delete an instance you no longer need, or ask an org admin to "
        "raise the limit."
    )
    assert not ComputeInstance.objects.filter(name="third").exists()
    # Per user: a colleague in the same workspace launches.
    colleague = UserFactory(username="orga-colleague")
    add_member(admin=admin, user=colleague, role=Role.WORKSPACE_ADMIN, project=team)
    assert _launch(colleague, team, one, "theirs").owner == colleague
    # A stopped instance still counts (it keeps its namespace and storage).
    force_state(first, State.STOPPED)
    with pytest.raises(InstanceLimitReached):
        _launch(owner, team, one, "third")
    # Deleting holds the place until the namespace is gone (as for the quotas), then frees it.
    force_state(first, State.READY)
    instance_delete(actor=owner, instance=first)
    with pytest.raises(InstanceLimitReached):
        _launch(owner, team, one, "third")
    force_state(first, State.DELETED)  # the delete run finished
    assert _launch(owner, team, one, "third").state == State.PENDING
    # Raised: launches again; removed: no limit.
    _set(admin, org=world.a.org, max_active_instances_per_user=3)
    _launch(owner, team, one, "fourth")
    tenancy_services.instance_limit_delete(actor=admin, limit=InstanceLimit.objects.get(org=world.a.org))
    _launch(owner, team, one, "fifth")


def test_the_gpu_limit_counts_gpus_held_and_stopped_instances_hold_none(lab):
    world, one, two = lab
    admin, owner, team = world.a.users["org_admin"], world.a.users["workspace_admin"], world.a.project
    _set(admin, org=world.a.org, max_gpus_per_user=3)
    big = _launch(owner, team, two, "big")
    with pytest.raises(InstanceLimitReached) as refused:
        _launch(owner, team, two, "bigger")
    assert "The organization's limit is 3 GPUs per user: your instances hold 2, this launch needs 2." in (
        refused.value.message
    )
    assert "choose a smaller size" in refused.value.message
    _launch(owner, team, one, "small")  # 3 of 3
    with pytest.raises(InstanceLimitReached):
        _launch(owner, team, one, "more")
    # Stopped, the two-GPU instance holds none: room for two more GPUs...
    snapshot = big.snapshot | {
        "template": big.snapshot["template"]
        | {"actions": [{"name": "start", "description": "", "variables": []}]}
    }
    ComputeInstance.objects.filter(pk=big.pk).update(snapshot=snapshot)
    Run.objects.filter(instance=big).update(outcome=Run.Outcome.SUCCEEDED)  # (deployed, then stopped)
    force_state(big, State.STOPPED)
    _launch(owner, team, one, "while-stopped")
    # ... and starting it again asks for its GPUs: 2 held + 2 > 3.
    with pytest.raises(InstanceLimitReached) as start:
        actions.action_run(actor=owner, target=ComputeInstance.objects.get(pk=big.pk), action="start")
    assert "your instances hold 2, this start needs 2" in start.value.message
    assert ComputeInstance.objects.get(pk=big.pk).state == State.STOPPED


def test_the_stricter_of_the_workspace_and_the_org_applies(lab):
    world, one, _two = lab
    admin, owner = world.a.users["org_admin"], world.a.users["workspace_admin"]
    team, spare = world.a.project, world.a.spare_project
    add_member(admin=admin, user=owner, role=Role.WORKSPACE_ADMIN, project=spare)
    _set(admin, org=world.a.org, max_active_instances_per_user=3)
    _set(admin, project=team, max_active_instances_per_user=1)
    _launch(owner, team, one, "a")
    with pytest.raises(InstanceLimitReached) as workspace:
        _launch(owner, team, one, "b")
    assert "This workspace's limit is 1 active instance per user and you have 1" in workspace.value.message
    # The workspace's limit counts its own instances; the org's counts across the org.
    _launch(owner, spare, one, "c")
    _launch(owner, spare, one, "d")
    with pytest.raises(InstanceLimitReached) as org:
        _launch(owner, spare, one, "e")
    assert "The organization's limit is 3 active instances per user and you have 3" in org.value.message
    # A workspace's limit may not be looser than the org's: a field error naming the org's.
    with pytest.raises(ValidationFailed) as looser:
        _set(admin, project=spare, max_active_instances_per_user=5)
    assert looser.value.fields == {
        "max_active_instances_per_user": [
            "Cannot exceed the organization's limit of 3 active instances per user."
        ]
    }
    with pytest.raises(ValidationFailed) as bad:
        _set(admin, org=world.a.org, max_active_instances_per_user=-1, max_gpus_per_user="2")
    assert set(bad.value.fields) == {"max_active_instances_per_user", "max_gpus_per_user"}
    # Another org's limit is not this one's: B's 0 does not bind A's users.
    _set(world.b.users["org_admin"], org=world.b.org, max_active_instances_per_user=0)
    _set(admin, org=world.a.org, max_active_instances_per_user=4)
    assert _launch(owner, spare, one, "e").name == "e"


def test_a_warm_pool_claim_is_a_launch_and_is_refused_the_same(world):
    operator, owner, team = world.operator, world.a.users["workspace_admin"], world.a.project
    profile = make_profile(
        actor=operator,
        project=None,
        name="pooled",
        template="t-pooled",
        manifests=MANIFESTS,
        resource_groups=ONE_A100,
        allocation_strategy=ComputeProfile.Allocation.WARM_POOL,
        warm_pool_size=2,
    )
    catalog_services.item_share(actor=operator, item=profile, sharing="all")
    profile = ComputeProfile.objects.get(pk=profile.pk)
    cluster = make_synced_cluster(name="pool-c", nodes=2)
    pool = WarmPool.objects.create(profile=profile, desired=2)
    snapshot = pool_claims.launch_snapshot(profile)
    standbys = [
        StandbyInstance.objects.create(
            pool=pool,
            profile=profile,
            snapshot=snapshot,
            snapshot_digest=pool_claims.snapshot_digest(snapshot),
            cluster=cluster,
            namespace=f"w-pooled-{i}",
            placement={"cluster": cluster.name, "explanation": "best fit"},
            state="ready",
            ready_at=timezone.now() - timedelta(minutes=2 - i),
            heartbeat_at=timezone.now(),
            **profile_totals(profile, cluster_id=cluster.pk),
        )
        for i in range(2)
    ]
    _set(world.a.users["org_admin"], project=team, max_active_instances_per_user=1)
    claimed = _launch(owner, team, profile, "hot")
    assert claimed.from_warm_pool and claimed.namespace == standbys[0].namespace
    with pytest.raises(InstanceLimitReached):
        _launch(owner, team, profile, "hotter")
    assert StandbyInstance.objects.get(pk=standbys[1].pk).state == "ready"  # the claim was undone


@pytest.mark.django_db(transaction=True)
def test_concurrent_launches_of_one_user_cannot_pass_the_limit():
    operator = make_operator(username="op-limits")
    org, admin = make_org(operator=operator, name="limits")
    project = tenancy_services.project_create(actor=admin, org=org, name="lab")
    owner = UserFactory(username="limits-owner")
    add_member(admin=admin, user=owner, role=Role.WORKSPACE_ADMIN, project=project)
    profile = _profile(admin, project, "one-gpu", ONE_A100)
    make_synced_cluster(name="limits-race", nodes=4)
    _set(admin, org=org, max_active_instances_per_user=3)
    results, barrier = [], threading.Barrier(20)

    def launch(index: int):
        try:
            barrier.wait()
            _launch(owner, project, profile, f"i-{index}")
            results.append("ok")
        except InstanceLimitReached as exc:
            results.append(exc.code)
        except Exception as exc:  # any other failure fails the test below
            results.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=launch, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["instance_limit"] * 17 + ["ok"] * 3, results
    assert ComputeInstance.objects.filter(owner=owner).count() == 3


# --- who sets them ------------------------------------------------------------------------------------


def test_who_sets_which_limit_and_every_change_is_audited(world):
    operator, admin = world.operator, world.a.users["org_admin"]
    limit = _set(operator, org=world.a.org, max_active_instances_per_user=4)  # as they set org quotas
    _set(admin, org=world.a.org, max_gpus_per_user=8)  # the same row, changed
    limit.refresh_from_db()
    assert (limit.max_active_instances_per_user, limit.max_gpus_per_user, limit.updated_by) == (4, 8, admin)
    events = AuditEvent.objects.filter(action="instance_limit.set", target_id=str(limit.pk)).order_by("seq")
    assert [e.details["changes"] for e in events] == [
        {"max_active_instances_per_user": [None, 4]},
        {"max_gpus_per_user": [None, 8]},
    ]
    assert {e.org_id for e in events} == {world.a.org.pk}
    with pytest.raises(Forbidden, match="Only org admins set a workspace's"):
        _set(operator, project=world.a.project, max_active_instances_per_user=1)
    for someone in (
        world.a.users["workspace_admin"],
        world.a.users["paas_admin_org"],
        world.b.users["org_admin"],
    ):
        with pytest.raises(Forbidden):
            _set(someone, org=world.a.org, max_active_instances_per_user=1)
        with pytest.raises(Forbidden):
            _set(someone, project=world.a.project, max_active_instances_per_user=1)
    with pytest.raises(ValidationFailed) as elsewhere:
        _set(admin, org=world.a.org, project=world.b.project, max_active_instances_per_user=1)
    assert "project" in elsewhere.value.fields


def test_the_api_sets_lists_and_refuses(world, api, lab):
    _world, one, _two = lab
    admin, operator, owner = world.a.users["org_admin"], world.operator, world.a.users["workspace_admin"]
    url = "/api/v1/instance-limits/"  # (one client: api.as_user switches who it is)
    org_row = api.as_user(admin).post(
        url, {"org": world.a.org.pk, "max_active_instances_per_user": 1}, format="json"
    )
    assert org_row.status_code == 201, org_row.content
    assert org_row.json() | {"updated_at": None} == {
        "id": org_row.json()["id"],
        "scope": "org",
        "org": world.a.org.pk,
        "project": None,
        "max_active_instances_per_user": 1,
        "max_gpus_per_user": None,
        "updated_at": None,
        "updated_by": admin.pk,
    }
    ws_row = api.as_user(admin).post(
        url, {"org": world.a.org.pk, "project": world.a.project.pk, "max_gpus_per_user": 2}
    )
    assert ws_row.status_code == 201 and ws_row.json()["scope"] == "project", ws_row.content
    bad = api.as_user(admin).patch(f"{url}{org_row.json()['id']}/", {"max_gpus_per_user": -3}, format="json")
    assert bad.status_code == 400 and "max_gpus_per_user" in bad.json()["error"]["fields"]
    patched = api.as_user(admin).patch(
        f"{url}{org_row.json()['id']}/", {"max_gpus_per_user": 4}, format="json"
    )
    assert patched.status_code == 200 and patched.json()["max_gpus_per_user"] == 4
    # A launch past it: 400 instance_limit with the numbers and what to do.
    body = {"project": world.a.project.pk, "profile": one.pk}
    assert api.as_user(owner).post("/api/v1/instances/", body | {"name": "one"}).status_code == 201
    refused = api.as_user(owner).post("/api/v1/instances/", body | {"name": "two"})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "instance_limit"
    assert "limit is 1 active instance per user and you have 1" in refused.json()["error"]["message"]
    summary = (
        api.as_user(owner).get(f"/api/v1/projects/{world.a.project.pk}/summary/").json()["instance_limits"]
    )
    assert [(r["scope"], r["instances"], r["gpus"]) for r in summary] == [
        ("project", 1, "1"),
        ("org", 1, "1"),
    ]
    # The workspace's members see its limit, not the org's; the org admin both.
    assert [r["scope"] for r in api.as_user(owner).get(url).json()["results"]] == ["project"]
    assert {r["scope"] for r in api.as_user(admin).get(url).json()["results"]} == {"org", "project"}
    assert (
        api.as_user(owner).patch(f"{url}{ws_row.json()['id']}/", {"max_gpus_per_user": 9}).status_code == 403
    )
    # Operators: the org's row (they set it), not the workspace's (inside the tenant).
    assert [r["scope"] for r in api.as_user(operator).get(url).json()["results"]] == ["org"]
    assert api.as_user(operator).get(f"{url}{ws_row.json()['id']}/").status_code == 404
    assert (
        api.as_user(operator)
        .patch(f"{url}{org_row.json()['id']}/", {"max_active_instances_per_user": 2})
        .status_code
        == 200
    )
    # Through a support access: read shows the workspace's row, admin lets them change it.
    read = _support(operator, world.a.org, SupportLevel.READ)
    assert api.as_user(operator).get(f"{url}{ws_row.json()['id']}/").status_code == 200
    assert (
        api.as_user(operator).patch(f"{url}{ws_row.json()['id']}/", {"max_gpus_per_user": 1}).status_code
        == 403
    )
    read.delete()
    _support(operator, world.a.org, SupportLevel.ADMIN)
    assert (
        api.as_user(operator).patch(f"{url}{ws_row.json()['id']}/", {"max_gpus_per_user": 1}).status_code
        == 200
    )
    # Another tenant: nothing, and a 404 for every id.
    b_admin = world.b.users["org_admin"]
    assert api.as_user(b_admin).get(url).json()["count"] == 0
    for row in (org_row, ws_row):
        assert api.as_user(b_admin).get(f"{url}{row.json()['id']}/").status_code == 404
        assert api.as_user(b_admin).delete(f"{url}{row.json()['id']}/").status_code == 404
    assert (
        api.as_user(b_admin)
        .post(url, {"org": world.a.org.pk, "max_active_instances_per_user": 9})
        .status_code
        == 400
    )
    assert api.as_user(admin).delete(f"{url}{ws_row.json()['id']}/").status_code == 204
    assert AuditEvent.objects.filter(action="instance_limit.delete", org=world.a.org).count() == 1


def test_the_studio_page_for_org_admins_and_operators(world, client):
    admin, operator = world.a.users["org_admin"], world.operator
    client.force_login(admin)
    listing = client.get("/studio/tenancy/instancelimit/")
    assert listing.status_code == 200
    add = "/studio/tenancy/instancelimit/add/"
    form = client.get(add)
    assert form.status_code == 200 and 'name="max_gpus_per_user"' in form.content.decode()
    made = client.post(
        add, {"org": world.a.org.pk, "project": world.a.project.pk, "max_active_instances_per_user": "2"}
    )
    assert made.status_code == 302, made.content.decode()[:3000]
    row = InstanceLimit.objects.get(project=world.a.project)
    assert row.max_active_instances_per_user == 2 and row.updated_by == admin
    # The org's limit below the workspace's is fine (the stricter applies); a workspace's above it is not.
    client.post(add, {"org": world.a.org.pk, "max_active_instances_per_user": "1"})
    looser = client.post(
        f"/studio/tenancy/instancelimit/{row.pk}/change/", {"max_active_instances_per_user": "5"}
    )
    assert (
        looser.status_code == 200
        and "Cannot exceed the organization&#x27;s limit of 1" in looser.content.decode()
    )
    org_row = InstanceLimit.objects.get(org=world.a.org, project__isnull=True)
    client.force_login(operator)  # the org's row (they may change it), not the workspace's
    page = client.get("/studio/tenancy/instancelimit/").content.decode()
    assert f"/studio/tenancy/instancelimit/{org_row.pk}/change/" in page
    assert f"/studio/tenancy/instancelimit/{row.pk}/change/" not in page
    changed = client.post(
        f"/studio/tenancy/instancelimit/{org_row.pk}/change/", {"max_active_instances_per_user": "2"}
    )
    assert changed.status_code == 302 and InstanceLimit.objects.get(pk=org_row.pk).updated_by == operator
    hidden = client.get(f"/studio/tenancy/instancelimit/{row.pk}/change/")  # "not found": to the index
    assert hidden.status_code == 302 and hidden.url == "/studio/"
    client.force_login(world.b.users["org_admin"])
    client.get("/studio/tenancy/instancelimit/")  # (shows, and so drops, the messages left above)
    assert (
        f"/instancelimit/{org_row.pk}/" not in client.get("/studio/tenancy/instancelimit/").content.decode()
    )
    assert client.get(f"/studio/tenancy/instancelimit/{org_row.pk}/change/").url == "/studio/"


# --- the size cards -----------------------------------------------------------------------------------


def test_the_size_cards_say_how_many_more_or_why_not(lab, client):
    world, one, two = lab
    admin, owner, team = world.a.users["org_admin"], world.a.users["workspace_admin"], world.a.project
    client.force_login(owner)
    url = f"/w/{team.pk}/instances/new/"
    page = client.post(url, {"name": "dev", "step": "2"}).content.decode()
    assert "You can launch" not in page and "Instance limit reached" not in page  # no limit: nothing said
    _set(admin, org=world.a.org, max_active_instances_per_user=3, max_gpus_per_user=3)
    _launch(owner, team, one, "first")
    page = client.post(url, {"name": "dev", "step": "2"}).content.decode()
    assert "You can launch 2 more of this size." in page  # one-GPU: 2 instances left (and 2 GPUs)
    assert "You can launch 1 more of this size." in page  # two-GPU: 2 GPUs left, one of it
    _launch(owner, team, two, "second")
    page = client.post(url, {"name": "dev", "step": "2"}).content.decode()
    assert page.count("Instance limit reached.") == 2
    assert f'value="{two.pk}" id="size-{two.pk}"' in page
    assert page.split(f'id="size-{two.pk}"')[1].split(">")[0].strip().endswith("disabled")
    assert "The organization&#x27;s limit is 3 GPUs per user: your instances hold 3" in page
    refused = client.post(url, {"name": "dev", "profile": one.pk, "step": "4"})
    assert refused.status_code == 400
    text = refused.content.decode()
    assert "Instance limit reached." in text and "this launch needs 1" in text
