"""Losing a role loses the access (issue 11, part 3).

For each way of losing it (workspace role revoked, removed from the org, an IdP group sync dropping
the role, the account deactivated, the org deactivated, removed as an instance's collaborator), the
kubeconfig the person downloaded before stops working within seconds (their ServiceAccount is deleted
by the task the change enqueues: 401), and the API, the portal and the studio refuse the instance at
once. Positive controls: someone who keeps another role that still grants access keeps it; reactivating
brings access back (with a new kubeconfig: the old token died with its ServiceAccount).

The enqueued tasks run as the cluster's agent would run them: the on-commit callbacks are captured and
run with django-q in synchronous mode (``async_task`` executes the task path in-process).
"""

from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from django_q.conf import Conf
from django_q.models import Task
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from catalog import system
from catalog.models import ComputeProfile
from instances import access, baseline, deployer, drift
from instances import services as instance_services
from instances.models import Collaborator, ComputeInstance
from inventory import services as inventory_services
from inventory import tasks as inventory_tasks
from paas.models import AuditEvent
from tenancy import services
from tenancy.models import RoleAssignment
from tenancy.roles import Role
from tests.factories import UserFactory, add_member
from tests.support.instances import launch_instance
from tests.support.wait import wait_for

# Seconds within which an old kubeconfig must stop working. RBAC refuses it (403) about a second after
# the access task ran; the token itself dies (401) once the API server's token-authentication cache
# (10 s for successes) forgets it: about 10 s in practice.
DEADLINE = 30


# --- fixtures and helpers ----------------------------------------------------------------------------


@pytest.fixture
def run_tasks(django_capture_on_commit_callbacks, monkeypatch):
    """``with run_tasks(): <change>``: the change commits (as far as on_commit goes), then every task
    it enqueued runs through django-q in synchronous mode; each must have succeeded."""

    @contextmanager
    def runner():
        before = set(Task.objects.values_list("id", flat=True))
        with django_capture_on_commit_callbacks() as callbacks:
            yield
        monkeypatch.setattr(Conf, "SYNC", True)
        try:
            for callback in callbacks:
                callback()
        finally:
            monkeypatch.setattr(Conf, "SYNC", False)
        ran = Task.objects.exclude(id__in=before)
        failed = [(t.func, t.result) for t in ran if not t.success]
        assert not failed, failed

    return runner


@pytest.fixture
def live(world, kube_cluster, kube_proxy):
    cluster = inventory_services.cluster_register(
        actor=world.operator, name="local", kubeconfig=Path(kube_cluster.kubeconfig_path).read_text()
    )
    inventory_tasks.cluster_refresh(cluster.pk)
    system.load(actor=world.operator)
    return {
        "world": world,
        "profile": ComputeProfile.objects.get(org__isnull=True, name="small"),
        "core": k8s.CoreV1Api(kube_cluster.api_client()),
    }


def _status(tenant: k8s.CoreV1Api, namespace: str) -> int:
    """What the API server answers ``tenant`` listing the instance's pods: 200 or the refusal's status."""
    try:
        tenant.list_namespaced_pod(namespace)
    except ApiException as exc:
        return exc.status
    return 200


def _kubeconfig(api, user, instance, *, deadline: float = DEADLINE) -> k8s.CoreV1Api:
    """A kubeconfig downloaded through the API, once it works (a new identity takes the API server's
    caches a moment)."""
    response = api.as_user(user).post(f"/api/v1/instances/{instance.pk}/kubeconfig/")
    assert response.status_code == 200, response.content
    tenant = k8s.CoreV1Api(k8s_config.new_client_from_config_dict(yaml.safe_load(response.content.decode())))
    wait_for(lambda: _status(tenant, instance.namespace) == 200, deadline, what="the new kubeconfig to work")
    return tenant


def _refused_within(tenant: k8s.CoreV1Api, instance, *, deadline: float = DEADLINE) -> int:
    """Poll until the old kubeconfig's token is dead (401: its ServiceAccount is gone), within
    ``deadline`` seconds. A 403 on the way (the RoleBinding lost the subject first) is not enough: the
    token itself must no longer authenticate. Returns the final status."""
    return wait_for(
        lambda: _status(tenant, instance.namespace) == 401 and 401,
        deadline,
        what="the old kubeconfig to stop authenticating (401)",
    )


def _accounts(live, instance) -> set[str]:
    return {a.metadata.name for a in live["core"].list_namespaced_service_account(instance.namespace).items}


def _refused_everywhere(api, client, user, instance, *, status: int = 404) -> None:
    """API (404; 403 ``org_deactivated`` for a member of a deactivated org), portal (the same, or the
    login page for an account that can no longer sign in) and studio refuse the instance, and no new
    kubeconfig is issued."""
    rest = api.as_user(user)
    for response in (
        rest.get(f"/api/v1/instances/{instance.pk}/"),
        rest.post(f"/api/v1/instances/{instance.pk}/kubeconfig/"),
    ):
        assert response.status_code == status, response.content
        if status == 403:
            assert response.json()["error"]["code"] == "org_deactivated"
    assert instance.pk not in {row["id"] for row in rest.get("/api/v1/instances/").json()["results"]}
    client.force_login(user)
    page = client.get(f"/instances/{instance.pk}/")
    assert page.status_code == status or (page.status_code == 302 and "/login/" in page["Location"]), page
    studio = client.get(f"/studio/instances/computeinstance/{instance.pk}/change/")
    assert studio.status_code == 302, studio.status_code  # to the login page, or "does not exist"
    client.logout()


def _still_usable(api, client, user, instance) -> None:
    assert api.as_user(user).get(f"/api/v1/instances/{instance.pk}/").status_code == 200
    client.force_login(user)
    assert client.get(f"/instances/{instance.pk}/").status_code == 200
    client.logout()


def _member(world, username: str, *roles):
    """A new member of org A holding ``roles`` ((role, scope): the org, or a project of it)."""
    user = UserFactory(username=username)
    for role, scope in roles:
        where = {"org": scope} if scope == world.a.org else {"project": scope}
        add_member(admin=world.a.users["org_admin"], user=user, role=role, **where)
    return user


# --- each way of losing a role ------------------------------------------------------------------------


@pytest.mark.kube
def test_workspace_role_revoked_the_owner_leaves_and_the_instance_stays(live, api, client, run_tasks):
    world = live["world"]
    owner = _member(world, "rev-owner", (Role.WORKSPACE_ADMIN, world.a.project))
    instance = launch_instance(live, "rev", actor=owner)
    old = _kubeconfig(api, owner, instance)
    account = baseline.service_account_name(owner.username)
    assert account in _accounts(live, instance)

    with run_tasks():
        assignment = RoleAssignment.objects.get(
            user=owner, project=world.a.project, role=Role.WORKSPACE_ADMIN
        )
        services.role_revoke(actor=world.a.users["org_admin"], assignment=assignment)
    assert _refused_within(old, instance) == 401
    assert account not in _accounts(live, instance)
    _refused_everywhere(api, client, owner, instance)

    # The instance is kept, marked "owner left", for the workspace admins to see and manage.
    instance.refresh_from_db()
    assert instance.owner_left_at is not None and instance.state == "ready"
    admin = world.a.users["workspace_admin"]
    body = api.as_user(admin).get(f"/api/v1/instances/{instance.pk}/").json()
    assert body["owner"] == owner.email and body["owner_left_at"]
    client.force_login(admin)
    assert "owner left" in client.get(f"/instances/{instance.pk}/").content.decode()
    client.force_login(world.a.users["org_admin"])
    assert "owner left" in client.get("/studio/instances/computeinstance/").content.decode()
    assert AuditEvent.objects.filter(
        action="instance.owner_left", target_id=str(instance.pk), details__user=owner.email
    ).exists()
    # A redeploy by the admin does not bring the leaver's identity back.
    with run_tasks():
        retry = instance_services.instance_retry(actor=admin, instance=instance)
    assert deployer.execute(retry.pk) in ("ready", "finished already")
    assert account not in _accounts(live, instance)
    # Back in the workspace, the leaver gets the instance again only when an admin adds them.
    services.role_assign(
        actor=world.a.users["org_admin"], user=owner, role=Role.COLLABORATOR_RW, project=world.a.project
    )
    assert api.as_user(owner).post(f"/api/v1/instances/{instance.pk}/kubeconfig/").status_code == 403
    with run_tasks():
        instance_services.collaborator_add(actor=admin, instance=instance, email=owner.email)
    _kubeconfig(api, owner, instance)
    assert instance_services.instance_delete(actor=admin, instance=instance)


@pytest.mark.kube
def test_removed_from_the_org_a_collaborator_loses_the_instance(live, api, client, run_tasks):
    world = live["world"]
    owner = world.a.users["workspace_admin"]
    friend = _member(world, "rev-friend", (Role.COLLABORATOR_RW, world.a.project))
    instance = launch_instance(live, "rev", actor=owner)
    with run_tasks():
        instance_services.collaborator_add(actor=owner, instance=instance, email=friend.email)
    old = _kubeconfig(api, friend, instance)
    owners = _kubeconfig(api, owner, instance)
    _still_usable(api, client, friend, instance)

    with run_tasks():
        response = api.as_user(world.a.users["org_admin"]).post(
            f"/api/v1/orgs/{world.a.org.pk}/remove-member/", {"user": friend.pk}
        )
        assert response.status_code == 204, response.content
    assert _refused_within(old, instance) == 401
    _refused_everywhere(api, client, friend, instance)
    assert not RoleAssignment.objects.filter(user=friend, org=world.a.org).exists()
    assert not Collaborator.objects.filter(instance=instance, user=friend).exists()
    assert baseline.service_account_name(friend.username) not in _accounts(live, instance)
    owners.list_namespaced_pod(instance.namespace)  # the owner is untouched
    _still_usable(api, client, owner, instance)
    assert AuditEvent.objects.filter(action="org.member_remove", details__user=friend.email).exists()


@pytest.mark.kube
def test_an_idp_group_sync_that_drops_the_role_takes_the_instance(live, api, client, run_tasks, settings):
    world = live["world"]
    services.idp_mapping_create(
        actor=world.a.users["org_admin"],
        org=world.a.org,
        project=world.a.project,
        group="gpu-team",
        role=Role.WORKSPACE_ADMIN,
    )
    claims = {
        "sub": "idp-rev-1",
        "email": "idp-rev@example.org",
        "email_verified": True,
        settings.OIDC_GROUPS_CLAIM: ["gpu-team"],
    }
    owner = services.sso_login(claims=claims)
    assert RoleAssignment.objects.filter(user=owner, project=world.a.project, source="idp").exists()
    instance = launch_instance(live, "rev", actor=owner)
    old = _kubeconfig(api, owner, instance)

    with run_tasks():  # the next sign-on comes without the group
        assert services.sso_login(claims=claims | {settings.OIDC_GROUPS_CLAIM: ["other"]}) == owner
    assert _refused_within(old, instance) == 401
    _refused_everywhere(api, client, owner, instance)
    instance.refresh_from_db()
    assert instance.owner_left_at is not None


@pytest.mark.kube
def test_a_deactivated_account_loses_everything_until_reactivated(live, api, client, run_tasks):
    world = live["world"]
    owner = _member(world, "rev-deact", (Role.WORKSPACE_ADMIN, world.a.project))
    instance = launch_instance(live, "rev", actor=owner)
    old = _kubeconfig(api, owner, instance)

    with run_tasks():
        services.user_update(actor=world.operator, user=owner, is_active=False)
    assert _refused_within(old, instance) == 401
    owner.refresh_from_db()
    _refused_everywhere(api, client, owner, instance)

    # Reactivated: the grants come back (they were dormant), with a new identity; the old token is dead.
    with run_tasks():
        services.user_update(actor=world.operator, user=owner, is_active=True)
    owner.refresh_from_db()
    fresh = _kubeconfig(api, owner, instance)
    fresh.list_namespaced_pod(instance.namespace)
    with pytest.raises(ApiException) as dead:
        old.list_namespaced_pod(instance.namespace)
    assert dead.value.status == 401
    instance.refresh_from_db()
    assert instance.owner_left_at is None


@pytest.mark.kube
def test_a_deactivated_org_can_do_nothing_until_reactivated(live, api, client, run_tasks):
    world = live["world"]
    owner, org_admin = world.a.users["workspace_admin"], world.a.users["org_admin"]
    instance = launch_instance(live, "rev", actor=owner)
    old = _kubeconfig(api, owner, instance)
    client.force_login(org_admin)
    assert client.get(f"/studio/instances/computeinstance/{instance.pk}/change/").status_code == 200
    client.logout()

    with run_tasks():
        services.org_update(actor=world.operator, org=world.a.org, is_active=False)
    assert _refused_within(old, instance) == 401
    assert not {a for a in _accounts(live, instance) if a.startswith("u-")}
    for user in (owner, org_admin, world.a.users["collaborator_ro"]):
        user.refresh_from_db()
        _refused_everywhere(api, client, user, instance, status=403)  # members are told why
    _refused_everywhere(api, client, world.b.users["org_admin"], instance)  # others learn nothing
    org_admin.refresh_from_db()
    assert not org_admin.is_staff  # the studio is closed to the admins of a deactivated org
    rest = api.as_user(org_admin)
    for response in (
        rest.get(f"/api/v1/orgs/{world.a.org.pk}/"),
        rest.get(f"/api/v1/projects/{world.a.project.pk}/"),
        rest.post("/api/v1/projects/", {"org": world.a.org.pk, "name": "x", "display_name": "X"}),
    ):
        assert response.status_code == 403, response.content
        assert response.json()["error"]["code"] == "org_deactivated"
    # Operators still see the org, and reactivate it; what is inside it they do not see (nobody does
    # while it is deactivated, not even through a support access).
    client.force_login(world.operator)
    assert client.get(f"/studio/tenancy/organization/{world.a.org.pk}/change/").status_code == 200
    assert client.get(f"/studio/instances/computeinstance/{instance.pk}/change/").status_code == 302
    client.logout()
    with run_tasks():
        response = api.as_user(world.operator).patch(f"/api/v1/orgs/{world.a.org.pk}/", {"is_active": True})
        assert response.status_code == 200, response.content
    org_admin.refresh_from_db()
    assert org_admin.is_staff
    owner.refresh_from_db()
    _kubeconfig(api, owner, instance).list_namespaced_pod(instance.namespace)
    _still_usable(api, client, owner, instance)


@pytest.mark.kube
def test_a_removed_collaborator_is_refused_at_once(live, api, client, run_tasks):
    world = live["world"]
    owner, friend = world.a.users["workspace_admin"], world.a.users["collaborator_ro"]
    instance = launch_instance(live, "rev", actor=owner)
    with run_tasks():
        instance_services.collaborator_add(actor=owner, instance=instance, email=friend.email)
    old = _kubeconfig(api, friend, instance)
    with run_tasks():
        instance_services.collaborator_remove(actor=owner, instance=instance, user=friend)
    # friend still reads the workspace (collaborator_ro) but no longer holds the instance's own access
    assert api.as_user(friend).post(f"/api/v1/instances/{instance.pk}/kubeconfig/").status_code == 403
    assert _refused_within(old, instance) == 401
    assert baseline.service_account_name(friend.username) not in _accounts(live, instance)


@pytest.mark.kube
def test_a_removed_collaborator_without_the_workspace_is_refused_everywhere(live, api, client, run_tasks):
    world = live["world"]
    owner = world.a.users["workspace_admin"]
    # A member of the org who works in another workspace: the instance alone was shared with them.
    friend = _member(world, "rev-colleague", (Role.COLLABORATOR_RW, world.a.spare_project))
    instance = launch_instance(live, "rev", actor=owner)
    with run_tasks():
        instance_services.collaborator_add(actor=owner, instance=instance, email=friend.email)
    old = _kubeconfig(api, friend, instance)
    _still_usable(api, client, friend, instance)
    with run_tasks():
        instance_services.collaborator_remove(actor=owner, instance=instance, user=friend)
    assert _refused_within(old, instance) == 401
    _refused_everywhere(api, client, friend, instance)


@pytest.mark.kube
def test_a_lost_access_task_is_made_up_by_the_drift_repair(live, api, client, run_tasks):
    """The cluster's agent was down when the access task was queued (here: never run). The kubectl
    proxy refuses the person at once all the same; the periodic drift repair then finds their
    ServiceAccount and deletes it, reporting it in its audit event."""
    world = live["world"]
    owner = world.a.users["workspace_admin"]
    friend = _member(world, "rev-lost", (Role.COLLABORATOR_RW, world.a.project))
    instance = launch_instance(live, "rev", actor=owner)
    with run_tasks():
        instance_services.collaborator_add(actor=owner, instance=instance, email=friend.email)
    old, owners = _kubeconfig(api, friend, instance), _kubeconfig(api, owner, instance)
    account = baseline.service_account_name(friend.username)

    # Removed from the org; the enqueued access task is lost (the on-commit callbacks never run).
    services.member_remove(actor=world.a.users["org_admin"], org=world.a.org, user=friend)
    assert not Task.objects.filter(func="instances.tasks.access_sync").exists()
    # No hole: the proxy checks the permission at each request, so the old kubeconfig is refused at
    # once, though the ServiceAccount it impersonated is still in the cluster.
    assert _status(old, instance.namespace) == 401
    assert account in _accounts(live, instance)

    report = drift.baseline_repair(cluster_id=instance.cluster_id)
    assert f"ServiceAccount/{account}: no longer has access (deleted)" in report[instance.pk]
    assert _refused_within(old, instance) == 401
    assert account not in _accounts(live, instance)
    owners.list_namespaced_pod(instance.namespace)  # the owner keeps theirs
    event = AuditEvent.objects.filter(action="instance.baseline_repaired", target_id=str(instance.pk)).last()
    assert event.details["revoked_accounts"] == [account]
    assert drift.baseline_repair(cluster_id=instance.cluster_id) == {}  # nothing left to repair
    _refused_everywhere(api, client, friend, instance)


# --- positive controls --------------------------------------------------------------------------------


@pytest.mark.kube
def test_who_keeps_another_role_that_grants_access_keeps_it(live, api, client, run_tasks):
    world = live["world"]
    # The owner is workspace admin and also PaaS admin of the org (which sees every workspace).
    owner = _member(
        world, "rev-keeper", (Role.WORKSPACE_ADMIN, world.a.project), (Role.PAAS_ADMIN, world.a.org)
    )
    # A collaborator loses their workspace role but stays in the org (collaborators are org members).
    friend = _member(world, "rev-stayer", (Role.COLLABORATOR_RO, world.a.project))
    instance = launch_instance(live, "rev", actor=owner)
    with run_tasks():
        instance_services.collaborator_add(actor=owner, instance=instance, email=friend.email)
    owners, friends = _kubeconfig(api, owner, instance), _kubeconfig(api, friend, instance)

    with run_tasks():
        for user, role in ((owner, Role.WORKSPACE_ADMIN), (friend, Role.COLLABORATOR_RO)):
            assignment = RoleAssignment.objects.get(user=user, project=world.a.project, role=role)
            services.role_revoke(actor=world.a.users["org_admin"], assignment=assignment)
    # The access task ran (the RoleBinding was re-applied): both identities and tokens still work.
    assert {baseline.service_account_name(u.username) for u in (owner, friend)} <= _accounts(live, instance)
    owners.list_namespaced_pod(instance.namespace)
    friends.list_namespaced_pod(instance.namespace)
    instance.refresh_from_db()
    assert instance.owner_left_at is None
    assert Collaborator.objects.filter(instance=instance, user=friend).exists()
    _still_usable(api, client, owner, instance)
    assert api.as_user(friend).get(f"/api/v1/instances/{instance.pk}/").status_code == 200


# --- a deactivated org without a cluster -----------------------------------------------------------------


def test_a_deactivated_orgs_admin_loses_api_and_studio_and_operators_keep_them(world, api, client):
    org_admin = world.a.users["org_admin"]
    services.org_update(actor=world.operator, org=world.a.org, is_active=False)
    org_admin.refresh_from_db()
    rest = api.as_user(org_admin)
    assert rest.get("/api/v1/orgs/").json()["count"] == 0
    assert rest.get("/api/v1/projects/").json()["count"] == 0
    response = rest.get(f"/api/v1/projects/{world.a.project.pk}/")
    assert response.status_code == 403 and response.json()["error"]["code"] == "org_deactivated"
    assert rest.get("/api/v1/audit-events/").json()["count"] == 0
    response = rest.post(
        "/api/v1/role-assignments/",
        {
            "user": world.a.users["collaborator_ro"].pk,
            "role": "workspace_admin",
            "project": world.a.project.pk,
        },
    )
    assert response.status_code in (400, 403, 404)
    assert not RoleAssignment.objects.filter(
        user=world.a.users["collaborator_ro"], role="workspace_admin", project=world.a.project
    ).exists()
    client.force_login(org_admin)
    assert client.get("/studio/").status_code == 302
    client.force_login(world.a.users["workspace_admin"])
    page = client.get(f"/w/{world.a.project.pk}/instances/")
    assert page.status_code == 403 and "is deactivated; contact your provider" in page.content.decode()
    # Org B is untouched; operators see A and may reactivate it.
    assert api.as_user(world.b.users["org_admin"]).get("/api/v1/projects/").json()["count"] >= 1
    assert api.as_user(world.operator).get(f"/api/v1/orgs/{world.a.org.pk}/").status_code == 200


# --- the decisions, without a cluster ----------------------------------------------------------------------


def _bare_instance(world, owner, name: str, *collaborators) -> ComputeInstance:
    """An instance row (not placed on any cluster) with its owner's and collaborators' grants."""
    instance = ComputeInstance.objects.create(
        org=world.a.org, project=world.a.project, name=name, owner=owner, state="ready"
    )
    access.grant(owner, instance)
    for user in collaborators:
        Collaborator.objects.create(instance=instance, user=user, added_by=owner)
        access.grant(user, instance)
    return instance


def test_who_loses_what_when_roles_go(world, api):
    admin = world.a.users["org_admin"]
    leaver = _member(world, "dec-leaver", (Role.WORKSPACE_ADMIN, world.a.project))
    keeper = _member(
        world, "dec-keeper", (Role.WORKSPACE_ADMIN, world.a.project), (Role.PAAS_ADMIN, world.a.org)
    )
    member = _member(world, "dec-member", (Role.COLLABORATOR_RO, world.a.project))
    outsider = _member(world, "dec-outsider", (Role.COLLABORATOR_RW, world.a.project))
    gone = _bare_instance(world, leaver, "dec-gone", member, outsider)
    kept = _bare_instance(world, keeper, "dec-kept")

    for user in (leaver, keeper, member):
        assignment = RoleAssignment.objects.get(user=user, project=world.a.project)
        services.role_revoke(actor=admin, assignment=assignment)
    services.member_remove(actor=admin, org=world.a.org, user=outsider)

    gone.refresh_from_db()
    kept.refresh_from_db()
    assert gone.owner_left_at is not None and kept.owner_left_at is None
    # the collaborator still in the org keeps the instance; the one removed from the org does not
    assert list(gone.collaborators.values_list("user__username", flat=True)) == ["dec-member"]
    from instances.access import identities

    assert identities(gone) == ["dec-member"] and identities(kept) == ["dec-keeper"]
    for user, instance, status in (
        (leaver, gone, 404),
        (outsider, gone, 404),
        (member, gone, 200),
        (keeper, kept, 200),
    ):
        assert api.as_user(user).get(f"/api/v1/instances/{instance.pk}/").status_code == status, user
    assert (
        api.as_user(world.a.users["workspace_admin"])
        .get(f"/api/v1/instances/{gone.pk}/")
        .json()["owner_left_at"]
    )
    events = AuditEvent.objects.filter(target_id=str(gone.pk), action__startswith="instance.")
    assert {(e.action, e.details["user"]) for e in events} == {
        ("instance.owner_left", leaver.email),
        ("instance.collaborator_remove", outsider.email),
    }

    # Deactivation keeps the grants dormant: nobody gets an identity, and reactivation restores them.
    services.user_update(actor=world.operator, user=member, is_active=False)
    assert identities(gone) == []
    services.user_update(actor=world.operator, user=member, is_active=True)
    assert identities(gone) == ["dec-member"]
    services.org_update(actor=world.operator, org=world.a.org, is_active=False)
    kept.refresh_from_db()
    assert identities(kept) == [] and kept.owner_left_at is None
    assert api.as_user(keeper).get(f"/api/v1/instances/{kept.pk}/").status_code == 403  # org_deactivated
    services.org_update(actor=world.operator, org=world.a.org, is_active=True)
    kept.refresh_from_db()
    assert identities(kept) == ["dec-keeper"]
    assert api.as_user(keeper).get(f"/api/v1/instances/{kept.pk}/").status_code == 200


def test_deleting_the_idp_mapping_that_gave_the_role_takes_the_instance(world, api, settings):
    mapping = services.idp_mapping_create(
        actor=world.a.users["org_admin"],
        org=world.a.org,
        project=world.a.project,
        group="map-team",
        role=Role.WORKSPACE_ADMIN,
    )
    owner = services.sso_login(
        claims={
            "sub": "idp-map-1",
            "email": "idp-map@example.org",
            "email_verified": True,
            settings.OIDC_GROUPS_CLAIM: ["map-team"],
        }
    )
    instance = _bare_instance(world, owner, "dec-mapped")
    assert api.as_user(owner).get(f"/api/v1/instances/{instance.pk}/").status_code == 200
    services.idp_mapping_delete(actor=world.a.users["org_admin"], mapping=mapping)
    instance.refresh_from_db()
    assert instance.owner_left_at is not None
    assert api.as_user(owner).get(f"/api/v1/instances/{instance.pk}/").status_code == 404
