"""Warm pools where people see them: the API (operators only), the studio's pool pages with their live
figures and "converge now", and the portal's "ready now" size cards and "from the warm pool" badge.

Standby instances are rows made here in the states the control loop and the deployer leave them (the
contract's model fields); launches are the real service (a claim in the launch's transaction)."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from catalog import services as catalog_services
from catalog.models import ComputeProfile
from instances import pool_claims, pool_selectors
from instances.models import PoolSchedule, StandbyInstance, WarmPool
from paas.models import AuditEvent
from tests.factories import ONE_A100, make_profile, make_synced_cluster
from tests.support.html_forms import form_data
from tests.support.instances import launch

pytestmark = pytest.mark.django_db

MANIFESTS = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  a: b\n"
MONDAY_7 = dt.datetime(2026, 11, 30, 7, 0, tzinfo=dt.UTC)  # a Monday


def _warm(profile, actor, size: int = 2) -> ComputeProfile:
    """The profile with the warm-pool strategy, as stored (a launch snapshot is made of stored values:
    the in-memory object of an update would give another digest, its price "0" not "0.0000")."""
    catalog_services.profile_update(
        actor=actor, profile=profile, allocation_strategy="warm_pool", warm_pool_size=size
    )
    return ComputeProfile.objects.get(pk=profile.pk)


@pytest.fixture
def pooled(world):
    """Org A's warm-pool profile, a cluster, and its pool (as the loop creates it)."""
    admin = world.a.users["org_admin"]
    profile = make_profile(
        actor=admin, project=world.a.project, manifests=MANIFESTS, resource_groups=ONE_A100, name="small"
    )
    profile = _warm(profile, admin)
    cluster = make_synced_cluster(name="pool-c")
    pool = WarmPool.objects.create(profile=profile, desired=2)
    return {"profile": profile, "cluster": cluster, "pool": pool}


_namespaces = iter(range(1, 10_000))


def _standby(pool, cluster, state="ready", *, profile=None, digest=None, **extra) -> StandbyInstance:
    profile = profile or pool.profile
    if digest is None:
        digest = pool_claims.snapshot_digest(pool_claims.launch_snapshot(profile))
    now = timezone.now()
    return StandbyInstance.objects.create(
        pool=pool,
        profile=profile,
        snapshot={},
        snapshot_digest=digest,
        cluster=cluster,
        namespace=f"w-test-{next(_namespaces)}",
        state=state,
        ready_at=now if state in ("ready", "claimed") else None,
        **extra,
    )


# --- selectors ---------------------------------------------------------------------------------------


def test_pool_status_counts_schedules_hits_and_misses(world, pooled):
    pool, cluster, profile = pooled["pool"], pooled["cluster"], pooled["profile"]
    for state in ("ready", "ready", "provisioning", "retiring", "failed"):
        _standby(pool, cluster, state)
    old = _standby(pool, cluster, "claimed")
    StandbyInstance.objects.filter(pk=old.pk).update(claimed_at=timezone.now() - dt.timedelta(days=2))
    PoolSchedule.objects.create(
        pool=pool, name="office", days=[0, 1, 2, 3, 4], start=dt.time(8), end=dt.time(20), desired=9
    )
    hit = launch(world, profile, "hit-1")
    assert hit.from_warm_pool
    launch(world, profile, "hit-2")  # the second ready standby
    miss = launch(world, profile, "miss-1")  # none left: on demand
    assert not miss.from_warm_pool

    status = pool_selectors.pool_status(pool, now=MONDAY_7)
    assert (status.desired, status.next_change_at, status.next_change_desired) == (
        2,
        MONDAY_7.replace(hour=8),
        9,
    )
    assert pool_selectors.pool_status(pool, now=MONDAY_7.replace(hour=9)).desired == 9
    now = pool_selectors.pool_status(pool)
    assert (now.ready, now.provisioning, now.retiring, now.failed) == (0, 1, 1, 1)
    assert now.claimed_24h == 2  # the two launches' claims, not the one of two days ago
    assert (now.hits_24h, now.misses_24h, now.hits_7d, now.misses_7d) == (2, 1, 2, 1)
    assert now.hit_rate_24h == pytest.approx(2 / 3, abs=1e-3)
    # An on-demand profile's launches are no misses.
    catalog_services.profile_update(
        actor=world.a.users["org_admin"], profile=profile, allocation_strategy="on_demand", warm_pool_size=0
    )
    launch(world, ComputeProfile.objects.get(pk=profile.pk), "plain")
    assert pool_selectors.pool_status(pool).misses_24h == 1
    assert pool_selectors.pool_status(pool).desired == 0  # on demand now: nothing kept warm


def test_pool_statuses_take_the_same_queries_for_one_pool_or_many(world, pooled):
    profile, cluster = pooled["profile"], pooled["cluster"]
    admin = world.a.users["org_admin"]

    def measure() -> int:
        pools = list(pool_selectors.pool_list_for(world.operator))
        with CaptureQueriesContext(connection) as queries:
            pool_selectors.pool_statuses(pools)
        return len(queries)

    one = measure()
    for n in range(3):
        other = _warm(
            make_profile(
                actor=admin,
                project=world.a.project,
                manifests=MANIFESTS,
                resource_groups=ONE_A100,
                name=f"size-{n}",
                template=f"tpl-{n}",
            ),
            admin,
        )
        pool = WarmPool.objects.create(profile=other, cluster=cluster, desired=1)
        PoolSchedule.objects.create(pool=pool, days=[5, 6], start=dt.time(0), end=dt.time(0), desired=0)
        _standby(pool, cluster)
    assert WarmPool.objects.count() == 4 and measure() == one <= 3
    assert profile.pk in {p.profile_id for p in pool_selectors.pool_list_for(world.operator)}


def test_only_operators_see_pools(world, pooled):
    pool = pooled["pool"]
    assert list(pool_selectors.pool_list_for(world.operator)) == [pool]
    for who in ("org_admin", "paas_admin_org", "workspace_admin", "collaborator_ro"):
        user = world.a.users[who]
        assert not pool_selectors.pool_list_for(user).exists()
        assert not pool_selectors.standby_list_for(user).exists()
        with pytest.raises(Exception, match="No such warm pool"):
            pool_selectors.pool_get_for(user, pool.pk)


def test_ready_now_uses_the_claim_filters(world, pooled):
    pool, cluster, profile = pooled["pool"], pooled["cluster"], pooled["profile"]
    org = world.a.org.pk
    assert pool_selectors.ready_now([profile.pk], org_id=org) == {}
    _standby(pool, cluster, "provisioning")
    _standby(pool, cluster, digest="stale")  # built from an older version of the profile
    assert pool_selectors.ready_now([profile.pk], org_id=org) == {}
    _standby(pool, cluster)
    _standby(pool, cluster)
    assert pool_selectors.ready_now([profile.pk], org_id=org) == {profile.pk: 2}
    assert set(pool_selectors.ready_now([profile.pk], org_id=org)) == {
        s.profile_id for s in pool_claims.claimable(profile, org_id=org, digest=_digest(profile))
    }
    cluster.tenancy, cluster.dedicated_org = "dedicated", world.b.org
    cluster.save(update_fields=["tenancy", "dedicated_org"])
    assert pool_selectors.ready_now([profile.pk], org_id=org) == {}  # dedicated to someone else
    assert pool_selectors.ready_now([profile.pk], org_id=world.b.org.pk) == {profile.pk: 2}


def _digest(profile) -> str:
    return pool_claims.snapshot_digest(pool_claims.launch_snapshot(profile))


# --- API ---------------------------------------------------------------------------------------------


def _errors(response) -> dict:
    return response.json()["error"].get("fields", {})


def test_api_pools_crud_schedules_and_converge(world, api, pooled):
    profile, cluster = pooled["profile"], pooled["cluster"]
    op = api.as_user(world.operator)
    created = op.post(
        "/api/v1/warm-pools/", {"profile": profile.pk, "cluster": cluster.pk, "desired": 3}, format="json"
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["desired"], body["cluster"], body["schedules"]) == (3, cluster.pk, [])
    assert set(body["live"]) >= {
        "desired",
        "ready",
        "provisioning",
        "claimed_24h",
        "hits_24h",
        "next_change_at",
    }
    assert AuditEvent.objects.filter(target_type="instances.warmpool", target_id=str(body["id"])).exists()
    url = f"/api/v1/warm-pools/{body['id']}/"

    clash = op.post("/api/v1/warm-pools/", {"profile": profile.pk, "cluster": cluster.pk}, format="json")
    assert clash.status_code == 400 and _errors(clash)
    both = op.post(
        "/api/v1/warm-pools/",
        {"profile": profile.pk, "cluster": cluster.pk, "datacenter": _datacenter("both").pk},
        format="json",
    )
    assert both.status_code == 400 and _errors(both)
    negative = op.patch(url, {"desired": -1}, format="json")
    assert negative.status_code == 400 and "desired" in _errors(negative)
    assert op.post("/api/v1/warm-pools/", {"profile": 999999}, format="json").status_code == 400

    changed = op.patch(url, {"desired": 5, "max_gpus": 4}, format="json")
    assert changed.status_code == 200, changed.content
    assert (changed.json()["desired"], changed.json()["max_gpus"], changed.json()["cluster"]) == (
        5,
        4,
        cluster.pk,
    )
    assert op.patch(url, {"profile": profile.pk}, format="json").json()["profile"] == profile.pk
    datacenter = _datacenter()
    moved = op.patch(url, {"cluster": None, "datacenter": datacenter.pk}, format="json")
    assert moved.status_code == 200 and (moved.json()["cluster"], moved.json()["datacenter"]) == (
        None,
        datacenter.pk,
    )
    onto_default = op.patch(url, {"datacenter": None}, format="json")  # the profile's pool is that scope
    assert onto_default.status_code == 400 and _errors(onto_default)
    default = f"/api/v1/warm-pools/{pooled['pool'].pk}/"
    undeletable = op.delete(default)  # the profile's own pool follows its warm pool size
    assert undeletable.status_code == 400 and op.get(default).status_code == 200
    on_demand = make_profile(
        actor=world.a.users["org_admin"],
        project=world.a.project,
        manifests=MANIFESTS,
        resource_groups=ONE_A100,
        name="plain",
        template="plain",
    )
    refused = op.post("/api/v1/warm-pools/", {"profile": on_demand.pk, "desired": 1}, format="json")
    assert refused.status_code == 400 and "profile" in _errors(refused)

    schedules = f"{url}schedules/"
    rule = {"name": "office", "days": [0, 1, 2, 3, 4], "start": "08:00", "end": "20:00", "desired": 9}
    made = op.post(schedules, rule | {"timezone": "Europe/Paris"}, format="json")
    assert made.status_code == 201, made.content
    assert made.json()["timezone"] == "Europe/Paris" and made.json()["days"] == [0, 1, 2, 3, 4]
    for bad, field in (
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"days": [7]}, "days"),
        ({"days": []}, "days"),
        ({"start": "25:00"}, "start"),
        ({"desired": -2}, "desired"),
    ):
        refused = op.post(schedules, rule | bad, format="json")
        fields = {key.split(".")[0] for key in _errors(refused)}  # "days.0": the first day
        assert refused.status_code == 400 and field in fields, (bad, refused.content)
    listed = op.get(schedules).json()
    assert [s["name"] for s in listed] == ["office"]
    one = f"{schedules}{made.json()['id']}/"
    assert op.patch(one, {"desired": 7}, format="json").json()["desired"] == 7
    assert op.get(url).json()["schedules"][0]["desired"] == 7
    assert op.patch(one, {"timezone": "Nowhere/Else"}, format="json").status_code == 400
    assert op.get(f"{schedules}999999/").status_code == 404

    before = AuditEvent.objects.count()
    converge = op.post(f"{url}converge/")
    assert converge.status_code == 202 and AuditEvent.objects.count() == before + 1

    assert op.delete(one).status_code == 204 and op.get(schedules).json() == []
    assert op.delete(url).status_code == 204
    assert op.get(url).status_code == 404


def _datacenter(name: str = "pool-dc"):
    from inventory.models import Datacenter

    return Datacenter.objects.create(
        name=name, display_name=name, kind="data_center", infrastructure_type="bare_metal"
    )


def test_api_live_figures_and_the_list(world, api, pooled):
    pool, cluster = pooled["pool"], pooled["cluster"]
    pool.status, pool.status_reason = WarmPool.Status.SHORT, "Pool quota reached: 2 of 2 GPUs held."
    pool.save(update_fields=["status", "status_reason"])
    _standby(pool, cluster)
    _standby(pool, cluster, "provisioning")
    page = api.as_user(world.operator).get("/api/v1/warm-pools/").json()
    assert page["count"] == 1
    live = page["results"][0]["live"]
    assert (live["ready"], live["provisioning"], live["desired"], live["status"]) == (1, 1, 2, "short")
    assert live["reason"] == "Pool quota reached: 2 of 2 GPUs held."
    assert page["results"][0]["status_reason"] == live["reason"]


HOSTILE = [
    {"desired": "many"},
    {"desired": 10**30},
    {"desired": None},
    {"max_gpus": -1},
    {"max_gpus": 2**70},
    {"enabled": "perhaps"},
    {"cluster": "x"},
    {"datacenter": [1]},
    {"days": "0,1"},
    {"days": [True]},
    {"days": [0, 0, 0, 0, 0, 0, 0, 0]},
    {"days": {"a": 1}},
    {"start": "99:99"},
    {"end": 8},
    {"timezone": "Europe/Paris\x00"},
    {"timezone": "x" * 1000},
    {"timezone": "../../etc/passwd"},
    {"name": "n\x00"},
    {"name": "n" * 500},
    {"position": -3},
]


def test_api_pools_hostile_input_is_a_400_never_a_500(world, api, pooled):
    op = api.as_user(world.operator)
    profile, pool = pooled["profile"], pooled["pool"]
    schedule = PoolSchedule.objects.create(pool=pool, days=[0], start=dt.time(1), end=dt.time(2), desired=1)
    base_rule = {"days": [0], "start": "01:00", "end": "02:00", "desired": 1}
    url = f"/api/v1/warm-pools/{pool.pk}/"
    for bad in HOSTILE:
        answers = [
            op.post("/api/v1/warm-pools/", {"profile": profile.pk, "desired": 1} | bad, format="json"),
            op.patch(url, bad, format="json"),
            op.post(f"{url}schedules/", base_rule | bad, format="json"),
            op.patch(f"{url}schedules/{schedule.pk}/", bad, format="json"),
        ]
        for response in answers:
            assert response.status_code < 500, (bad, response.status_code, response.content[:300])
        assert answers[2].status_code in (400, 201), (bad, answers[2].content)
    assert op.post("/api/v1/warm-pools/", "{not json", content_type="application/json").status_code == 400
    assert op.get("/api/v1/warm-pools/?status=%00").status_code in (200, 400)
    assert op.get("/api/v1/warm-pools/not-a-number/").status_code == 404
    assert op.get(f"{url}schedules/99999999999999999999/").status_code == 404


@pytest.mark.parametrize("who", ["org_admin", "paas_admin_org", "workspace_admin", "collaborator_rw"])
def test_api_pools_are_operators_only(world, api, pooled, who):
    pool, profile = pooled["pool"], pooled["profile"]
    schedule = PoolSchedule.objects.create(pool=pool, days=[0], start=dt.time(1), end=dt.time(2), desired=1)
    client = api.as_user(world.a.users[who])
    url = f"/api/v1/warm-pools/{pool.pk}/"
    assert client.get("/api/v1/warm-pools/").json()["count"] == 0
    assert (
        client.post("/api/v1/warm-pools/", {"profile": profile.pk, "desired": 9}, format="json").status_code
        == 403
    )
    assert client.post("/api/v1/warm-pools/", {}, format="json").status_code == 403
    for response in (
        client.get(url),
        client.patch(url, {"desired": 9}, format="json"),
        client.delete(url),
        client.post(f"{url}converge/"),
        client.get(f"{url}schedules/"),
        client.post(f"{url}schedules/", {"days": [0], "start": "01:00", "end": "02:00", "desired": 5}),
        client.patch(f"{url}schedules/{schedule.pk}/", {"desired": 5}, format="json"),
        client.delete(f"{url}schedules/{schedule.pk}/"),
    ):
        assert response.status_code == 404, (response.request["PATH_INFO"], response.status_code)
    pool.refresh_from_db()
    schedule.refresh_from_db()
    assert (pool.desired, schedule.desired, WarmPool.objects.count()) == (2, 1, 1)
    assert not AuditEvent.objects.filter(action__startswith="warm_pool.").exists()


def test_api_instance_says_whether_it_came_from_the_pool(world, api, pooled):
    _standby(pooled["pool"], pooled["cluster"])
    claimed = launch(world, pooled["profile"], "warm")
    on_demand = launch(world, pooled["profile"], "cold")
    client = api.as_user(world.a.users["workspace_admin"])
    assert client.get(f"/api/v1/instances/{claimed.pk}/").json()["from_warm_pool"] is True
    assert client.get(f"/api/v1/instances/{on_demand.pk}/").json()["from_warm_pool"] is False
    assert client.patch(f"/api/v1/instances/{on_demand.pk}/", {"from_warm_pool": True}).status_code == 405


# --- studio --------------------------------------------------------------------------------------------


LIST = "/studio/instances/warmpool/"


def test_studio_pool_list_shows_figures_and_the_reason(world, client, pooled):
    pool, cluster = pooled["pool"], pooled["cluster"]
    pool.status, pool.status_reason = WarmPool.Status.SHORT, "No capacity: no cluster has a free A100."
    pool.save(update_fields=["status", "status_reason"])
    for state in ("ready", "ready", "provisioning"):
        _standby(pool, cluster, state)
    _standby(pool, cluster, "claimed", claimed_at=timezone.now())
    PoolSchedule.objects.create(pool=pool, days=list(range(7)), start=dt.time(8), end=dt.time(20), desired=9)
    client.force_login(world.operator)
    page = client.get(LIST)
    assert page.status_code == 200
    html = page.content.decode()
    assert "small" in html and "anywhere" in html
    assert "Cannot reach target" in html and "No capacity: no cluster has a free A100." in html
    row = page.context["cl"].model_admin.statuses[pool.pk]
    assert (row.ready, row.provisioning, row.claimed_24h) == (2, 1, 1)
    assert '<td class="field-ready">2</td>' in html and '<td class="field-provisioning">1</td>' in html
    assert '<td class="field-claimed_24h">1</td>' in html
    assert "24 h: 0 / 0" in html and row.next_change_at is not None


def test_studio_list_queries_do_not_grow_with_the_rows(world, client, pooled):
    client.force_login(world.operator)
    admin = world.a.users["org_admin"]

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(LIST).status_code == 200
        return len(captured)

    queries()  # warm the caches (permission ids; the brand and the viewer's orgs, kept 30 s)
    one = queries()
    for n in range(3):
        other = _warm(
            make_profile(
                actor=admin,
                project=world.a.project,
                manifests=MANIFESTS,
                resource_groups=ONE_A100,
                name=f"row-{n}",
                template=f"row-{n}",
            ),
            admin,
        )
        pool = WarmPool.objects.create(profile=other, desired=1)
        _standby(pool, pooled["cluster"])
    assert queries() == one


def test_studio_change_page_saves_pool_and_schedules_through_the_services(world, client, pooled):
    pool, cluster = pooled["pool"], pooled["cluster"]
    _standby(pool, cluster)
    client.force_login(world.operator)
    url = f"{LIST}{pool.pk}/change/"
    page = client.get(url)
    html = page.content.decode()
    assert page.status_code == 200 and "ready 1" in html and "Standby instances" in html
    data = form_data(html)
    data.update(
        {
            "desired": ["4"],
            "schedules-0-name": ["weekend"],
            "schedules-0-days": ["5", "6"],
            "schedules-0-start": ["00:00"],
            "schedules-0-end": ["00:00"],
            "schedules-0-timezone": ["Europe/Paris"],
            "schedules-0-desired": ["1"],
            "schedules-0-position": ["0"],
        }
    )
    mark = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first()
    saved = client.post(url, data)
    assert saved.status_code == 302, saved.content.decode()[:3000]
    pool.refresh_from_db()
    rule = pool.schedules.get()
    assert (pool.desired, rule.name, rule.days, rule.timezone, rule.desired) == (
        4,
        "weekend",
        [5, 6],
        "Europe/Paris",
        1,
    )
    actions = set(AuditEvent.objects.filter(pk__gt=mark).values_list("action", flat=True))
    # The profile's own pool: its capacity is the profile's warm pool size, changed with it.
    assert actions == {"warm_pool.update", "warm_pool.schedule_create", "computeprofile.update"}
    assert ComputeProfile.objects.get(pk=pool.profile_id).warm_pool_size == 4

    # A bad time zone is a form error beside the field, the input kept; nothing is written.
    data = form_data(client.get(url).content.decode())
    data.update({"schedules-0-timezone": ["Mars/Olympus"], "desired": ["6"]})
    refused = client.post(url, data)
    assert refused.status_code == 200 and "Unknown time zone" in refused.content.decode()
    pool.refresh_from_db()
    assert pool.desired == 4

    # Deleting the schedule from the inline.
    data = form_data(client.get(url).content.decode())
    data["schedules-0-DELETE"] = ["on"]
    assert client.post(url, data).status_code == 302
    assert not pool.schedules.exists()


def test_studio_add_page_shows_service_errors_on_the_form(world, client, pooled):
    profile, cluster = pooled["profile"], pooled["cluster"]
    client.force_login(world.operator)
    data = form_data(client.get(f"{LIST}add/").content.decode())
    data.update({"profile": [str(profile.pk)], "cluster": [str(cluster.pk)], "desired": ["3"]})
    added = client.post(f"{LIST}add/", data)
    assert added.status_code == 302, added.content.decode()[:3000]
    pool = WarmPool.objects.get(cluster=cluster)
    assert pool.desired == 3
    again = client.post(f"{LIST}add/", data)  # the same scope again: the service refuses it
    assert again.status_code == 200 and "errorlist" in again.content.decode()
    assert WarmPool.objects.filter(cluster=cluster).count() == 1
    assert client.post(f"{LIST}{pool.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not WarmPool.objects.filter(pk=pool.pk).exists()
    own = pooled["pool"]  # the profile's own pool cannot be deleted: the service says why
    refused = client.post(f"{LIST}{own.pk}/delete/", {"post": "yes"}, follow=True)
    assert "cannot be deleted" in refused.content.decode() and WarmPool.objects.filter(pk=own.pk).exists()


def test_studio_converge_now_action(world, client, pooled):
    pool = pooled["pool"]
    client.force_login(world.operator)
    mark = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first()
    response = client.post(
        LIST, {"action": "converge_now", "_selected_action": [pool.pk], "index": 0}, follow=True
    )
    assert response.status_code == 200 and "the control loop runs now" in response.content.decode()
    events = AuditEvent.objects.filter(pk__gt=mark, target_type="instances.warmpool", target_id=str(pool.pk))
    assert events.count() == 1


def test_studio_standby_list_is_read_only(world, client, pooled):
    pool, cluster = pooled["pool"], pooled["cluster"]
    _standby(pool, cluster, "failed", state_reason="Image pull failed: no such image.")
    _standby(pool, cluster)
    taken = launch(world, pooled["profile"], "taker")
    client.force_login(world.operator)
    page = client.get("/studio/instances/standbyinstance/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "Image pull failed: no such image." in html and f"{world.a.project}/{taken.name}" in html
    assert "pool-c" in html and "ready since" in html.lower()
    standby = StandbyInstance.objects.get(instance=taken)
    detail = client.get(f"/studio/instances/standbyinstance/{standby.pk}/change/")
    assert detail.status_code == 200 and 'name="_save"' not in detail.content.decode()
    assert (
        client.post(f"/studio/instances/standbyinstance/{standby.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )


@pytest.mark.parametrize("who", ["org_admin", "paas_admin_org", "paas_admin_project"])
def test_studio_pool_pages_are_operators_only(world, client, pooled, who):
    pool = pooled["pool"]
    client.force_login(world.a.users[who])
    assert "/studio/instances/warmpool/" not in client.get("/studio/").content.decode()
    for url in (LIST, f"{LIST}{pool.pk}/change/", f"{LIST}add/", "/studio/instances/standbyinstance/"):
        assert client.get(url).status_code in (403, 302), url
    response = client.post(LIST, {"action": "converge_now", "_selected_action": [pool.pk], "index": 0})
    assert response.status_code in (403, 302)
    assert not AuditEvent.objects.filter(action__startswith="warm_pool.").exists()


# --- portal ----------------------------------------------------------------------------------------------


def _size_step(client, project) -> str:
    response = client.post(f"/w/{project.pk}/instances/new/", {"name": "dev", "description": "", "step": "2"})
    assert response.status_code == 200
    return response.content.decode()


def _card(html: str, profile) -> str:
    start = html.index(f'id="size-{profile.pk}"')
    return html[start : html.index("</article>", start)]


def test_size_cards_say_ready_now_only_where_a_standby_is_claimable(world, client):
    op = world.operator
    profile = make_profile(
        actor=op, project=None, manifests=MANIFESTS, resource_groups=ONE_A100, name="shared"
    )
    catalog_services.item_share(actor=op, item=profile, sharing="all")
    profile = _warm(profile, op, 1)
    other = make_profile(
        actor=op, project=None, manifests=MANIFESTS, resource_groups=ONE_A100, name="cold", template="cold"
    )
    catalog_services.item_share(actor=op, item=other, sharing="all")
    cluster = make_synced_cluster(name="dedicated-a")
    cluster.tenancy, cluster.dedicated_org = "dedicated", world.a.org
    cluster.save(update_fields=["tenancy", "dedicated_org"])
    pool = WarmPool.objects.create(profile=profile, desired=1)

    client.force_login(world.a.users["workspace_admin"])
    assert "Ready now" not in _size_step(client, world.a.project)  # nothing ready yet
    _standby(pool, cluster)
    html = _size_step(client, world.a.project)
    assert "Ready now" in _card(html, profile) and "Ready now" not in _card(html, other)
    review = client.post(
        f"/w/{world.a.project.pk}/instances/new/", {"name": "dev", "profile": profile.pk, "step": "3"}
    ).content.decode()
    assert "Ready now" in review

    # Org B may launch the profile, but the standby's cluster is dedicated to org A.
    client.force_login(world.b.users["workspace_admin"])
    html = _size_step(client, world.b.project)
    assert profile.display_name in html and "Ready now" not in html


def test_instance_pages_say_from_the_warm_pool(world, client, pooled):
    _standby(pooled["pool"], pooled["cluster"])
    warm = launch(world, pooled["profile"], "warm")
    cold = launch(world, pooled["profile"], "cold")
    client.force_login(world.a.users["workspace_admin"])
    assert "From the warm pool" in client.get(f"/instances/{warm.pk}/").content.decode()
    assert "From the warm pool" not in client.get(f"/instances/{cold.pk}/").content.decode()
    listing = client.get(f"/w/{world.a.project.pk}/instances/").content.decode()
    assert listing.count("from the warm pool") == 1
