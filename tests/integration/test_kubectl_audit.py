"""Every request through the kubectl proxy in the tenant's audit trail (issue 17, part 2).

Requests go through the real proxy (the ``kube_proxy`` server) with a kubeconfig downloaded from the
API, by the official Kubernetes Python client; ``auditing.flush`` chains them into the org's trail
(the tests on the ``db`` fixture call it: the server shares their connection, so its background flush
stands aside). The concurrency test runs on committed data: the proxy answers while another
transaction holds the org's chain lock, and the flushed events wait for it to be chained.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import yaml
from django.db import connection, connections, transaction
from django.utils import timezone
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from instances.kubeproxy import auditing
from instances.models import ProxyRequestLog
from paas import audit
from paas.audit import audit_verify
from paas.audit_settings import audit_settings_update
from paas.models import AuditEvent
from tenancy import selectors as tenancy_selectors
from tests.support.audit import committed
from tests.support.instances import launch_instance
from tests.support.wait import wait_for

COMMAND = "kubectl create configmap audited --from-literal=a=b"


def _core(api, user, instance, *, command: str = "") -> k8s.CoreV1Api:
    response = api.as_user(user).post(f"/api/v1/instances/{instance.pk}/kubeconfig/")
    assert response.status_code == 200, response.content
    client = k8s_config.new_client_from_config_dict(yaml.safe_load(response.content.decode()))
    if command:
        client.set_default_header("Kubectl-Command", command)  # what kubectl sends
    return k8s.CoreV1Api(client)


def _configmap(name: str) -> k8s.V1ConfigMap:
    return k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name=name), data={"a": "b"})


def _kubectl_events(org, action: str = auditing.ACTION) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(org=org, action=action).order_by("seq"))


@pytest.fixture
def target(live, api):
    instance = launch_instance(live, "audited")
    owner = live["world"].a.users["workspace_admin"]
    return {**live, "instance": instance, "owner": owner, "ns": instance.namespace}


@pytest.fixture
def reads_setting(world):
    """Set the operators' read setting; the proxy's cached copy is forgotten afterwards (the rolled-back
    change tells no one)."""

    def set_reads(mode: str, every: int = 10) -> None:
        audit_settings_update(actor=world.operator, kubectl_reads=mode, kubectl_sample_every=every)

    yield set_reads
    auditing._policy.forget()


@pytest.mark.kube
def test_each_request_is_in_the_tenants_trail_with_its_fields(target, api, client):
    world, instance, owner, ns = target["world"], target["instance"], target["owner"], target["ns"]
    cluster = target["cluster"]
    core = _core(api, owner, instance, command=COMMAND)
    core.list_namespaced_config_map(ns)
    core.create_namespaced_config_map(ns, _configmap("audited"))
    core.read_namespaced_config_map("audited", ns)
    core.delete_namespaced_config_map("audited", ns)
    assert ProxyRequestLog.objects.filter(org_id=world.a.org.pk).count() == 4

    assert auditing.flush() == 4
    assert not ProxyRequestLog.objects.exists()
    events = _kubectl_events(world.a.org)
    assert [(e.details["verb"], e.details["status"]) for e in events] == [
        ("list", 200),
        ("create", 201),
        ("get", 200),
        ("delete", 200),
    ]
    create = events[1]
    assert create.details == {
        "verb": "create",
        "api_group": "",
        "resource": "configmaps",
        "subresource": "",
        "namespace": ns,
        "name": "",
        "path": f"/api/v1/namespaces/{ns}/configmaps",
        "command": COMMAND,
        "status": 201,
        "client": "kubeconfig",
        "instance": instance.name,
        "cluster": cluster.name,
    }
    assert events[2].details["name"] == "audited"
    for event in events:
        assert event.actor_id == owner.pk
        assert event.actor_repr == owner.email
        assert (event.org_id, event.project_id) == (world.a.org.pk, instance.project_id)
        assert (event.target_type, event.target_id) == ("instances.computeinstance", str(instance.pk))
        assert event.cluster_id == cluster.pk
        assert event.client == "kubectl"
        assert event.request_id
    assert audit_verify().ok

    # The API: ?cluster= filters, the cluster is shown; the other tenant sees none of it.
    org_admin = world.a.users["org_admin"]
    url = f"/api/v1/audit-events/?cluster={cluster.pk}&action=kubectl."
    listed = api.as_user(org_admin).get(url).json()["results"]
    assert {row["id"] for row in listed} == {e.pk for e in events}
    assert {(row["cluster"], row["cluster_name"]) for row in listed} == {(cluster.pk, cluster.name)}
    assert api.as_user(org_admin).get("/api/v1/audit-events/?cluster=999999").json()["results"] == []
    other = world.b.users["org_admin"]
    assert api.as_user(other).get(url).json()["results"] == []
    assert api.as_user(owner).get(url).json()["results"] == []  # not an org admin: no audit reading

    # The studio's audit screen: a cluster filter naming only the clusters of the events one may see.
    assert tenancy_selectors.audit_clusters_for(org_admin) == [(cluster.pk, cluster.name)]
    assert tenancy_selectors.audit_clusters_for(other) == []
    client.force_login(org_admin)
    page = client.get(f"/studio/paas/auditevent/?cluster={cluster.pk}")
    assert page.status_code == 200
    body = page.content.decode()
    assert f"?cluster={cluster.pk}" in body and "By cluster" in body
    assert body.count("kubectl.request") >= 4
    client.force_login(other)
    body = client.get("/studio/paas/auditevent/").content.decode()
    assert "By cluster" not in body and f"?cluster={cluster.pk}" not in body


@pytest.mark.kube
def test_sampled_reads_one_in_n_but_every_write(target, api, reads_setting):
    world, instance, owner, ns = target["world"], target["instance"], target["owner"], target["ns"]
    reads_setting("sample", 3)
    core = _core(api, owner, instance)
    for _ in range(7):
        core.list_namespaced_config_map(ns)
    for index in range(3):
        core.create_namespaced_config_map(ns, _configmap(f"w{index}"))
    assert auditing.flush() == 6  # reads 1, 4 and 7 of this user on this instance; all three writes
    events = _kubectl_events(world.a.org)
    reads = [e for e in events if e.details["verb"] == "list"]
    writes = [e for e in events if e.details["verb"] == "create"]
    assert len(reads) == 3 and all(e.details["sampled"] == "1 in 3" for e in reads)
    assert (
        sorted(e.details["name"] or e.details["path"] for e in writes)
        == [f"/api/v1/namespaces/{ns}/configmaps"] * 3
    )
    assert all("sampled" not in e.details for e in writes)

    reads_setting("sample", 1000)  # however rare the sample, writes are all there
    core.delete_namespaced_config_map("w0", ns)
    core.delete_namespaced_config_map("w1", ns)
    auditing.flush()
    assert [e.details["verb"] for e in _kubectl_events(world.a.org)][-2:] == ["delete", "delete"]
    assert audit_verify().ok


@pytest.mark.kube
def test_summarised_reads_one_event_per_verb_resource_and_namespace_writes_one_by_one(
    target, api, reads_setting
):
    world, instance, owner, ns = target["world"], target["instance"], target["owner"], target["ns"]
    reads_setting("summary")
    core = _core(api, owner, instance)
    core.create_namespaced_config_map(ns, _configmap("s"))
    for _ in range(5):
        core.list_namespaced_config_map(ns)
    core.read_namespaced_config_map("s", ns)
    core.read_namespaced_config_map("s", ns)
    core.delete_namespaced_config_map("s", ns)
    assert auditing.flush() == 9
    writes = _kubectl_events(world.a.org)
    assert [e.details["verb"] for e in writes] == ["create", "delete"]
    summaries = {e.details["verb"]: e for e in _kubectl_events(world.a.org, auditing.SUMMARY_ACTION)}
    assert set(summaries) == {"list", "get"}
    listed = summaries["list"]
    assert listed.details["count"] == 5 and listed.details["statuses"] == {"200": 5}
    assert (listed.details["resource"], listed.details["namespace"]) == ("configmaps", ns)
    assert listed.details["first"] <= listed.details["last"]
    assert summaries["get"].details["count"] == 2
    assert listed.actor_id == owner.pk and listed.cluster_id == instance.cluster_id
    assert listed.target_id == str(instance.pk)
    assert audit_verify().ok


@pytest.mark.django_db
def test_a_write_whose_process_died_is_chained_without_a_status_after_the_grace(world, settings):
    settings.PAAS_KUBECTL_AUDIT_GRACE_SECONDS = 60
    user = world.a.users["workspace_admin"]
    row = {
        "org_id": world.a.org.pk,
        "project_id": world.a.project.pk,
        "instance_id": 4242,
        "instance_name": "gone",
        "cluster_id": 7,
        "cluster_name": "far",
        "user_id": user.pk,
        "user_repr": user.email,
        "client": "kubeconfig",
        "method": "DELETE",
        "verb": "delete",
        "resource": "pods",
        "namespace": "ns",
        "name": "p",
        "path": "/api/v1/namespaces/ns/pods/p",
    }
    ProxyRequestLog.objects.create(created_at=timezone.now() - timedelta(minutes=5), **row)
    young = ProxyRequestLog.objects.create(created_at=timezone.now(), **row)  # still being forwarded
    assert auditing.flush() == 1
    (event,) = _kubectl_events(world.a.org)
    assert event.details["status"] is None
    assert event.details["status_unknown"] == auditing.UNKNOWN_STATUS
    assert event.cluster_id == 7
    assert list(ProxyRequestLog.objects.values_list("pk", flat=True)) == [young.pk]
    assert audit_verify().ok


@pytest.mark.django_db
def test_the_cluster_is_in_the_hash_only_when_set(world):
    """Old events (no cluster) verify as they were hashed; a kubectl event's cluster cannot be changed
    without breaking its hash."""
    from paas.audit import Entry, audit_append_batch, compute_hash

    with committed():  # (events are chained when their transaction commits)
        plain = audit.audit_log(actor=world.operator, action="test.plain", org=world.a.org)
        (batched,) = audit_append_batch(
            org_id=world.a.org.pk,
            entries=[
                Entry(action="test.batched", actor_id=None, actor_repr="", target_type="x", cluster_id=3)
            ],
        )
    plain.refresh_from_db()
    batched.refresh_from_db()
    assert "cluster_id" not in audit._canonical(plain).decode()
    assert batched.prev_hash == plain.hash and batched.seq == plain.seq + 1
    assert batched.actor_repr == "system"
    batched.cluster_id = 4
    assert compute_hash(batched) != batched.hash
    assert audit_verify().ok


@pytest.mark.kube
@pytest.mark.django_db(transaction=True)
def test_the_proxy_answers_while_the_orgs_chain_lock_is_held_and_the_flush_waits(
    transactional_db, live, api, settings
):
    """Auditing a proxied request never queues behind the org's audit chain lock (which the sealers
    take): the request completes while another transaction holds it; the background flush writes the
    events, whose sealing waits for the lock, then chains them."""
    settings.PAAS_KUBECTL_AUDIT_FLUSH_SECONDS = 0.2
    world = live["world"]
    instance = launch_instance(live, "locked")
    owner = world.a.users["workspace_admin"]
    core = _core(api, owner, instance)
    ns, org_id = instance.namespace, world.a.org.pk
    locked, release, failures = threading.Event(), threading.Event(), []

    def hold_the_chain_lock() -> None:
        try:
            with transaction.atomic():
                audit._lock_chain(org_id)
                locked.set()
                release.wait(timeout=120)
        except Exception as exc:
            failures.append(exc)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_the_chain_lock, name="chain-lock-holder")
    holder.start()
    try:
        assert locked.wait(timeout=30), failures
        core.create_namespaced_config_map(ns, _configmap("during-the-lock"), _request_timeout=20)
        core.list_namespaced_config_map(ns, _request_timeout=20)
        assert holder.is_alive() and not release.is_set()  # they completed under the held lock
        pending = ProxyRequestLog.objects.filter(org_id=org_id)
        assert sorted(pending.values_list("verb", "status")) == [("create", 201), ("list", 200)]

        def flush_waits_for_the_lock() -> bool:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                    "AND classid = %s AND objid = %s",
                    [audit._LOCK_CLASS, org_id],
                )
                return cursor.fetchone()[0] > 0

        wait_for(flush_waits_for_the_lock, timeout=30, what="the flushed events' sealer waiting for the lock")
        flushed = AuditEvent.objects.filter(org_id=org_id, action=auditing.ACTION)
        assert list(flushed.values_list("seq", flat=True)) == [None, None]  # in the trail, not chained yet
    finally:
        release.set()
        holder.join(timeout=30)
    assert not failures
    wait_for(
        lambda: (
            AuditEvent.objects.filter(org_id=org_id, action=auditing.ACTION, seq__isnull=False).count() == 2
        ),
        timeout=30,
        what="the requests chained once the lock was released",
    )
    assert not ProxyRequestLog.objects.filter(org_id=org_id).exists()
    assert sorted(
        AuditEvent.objects.filter(org_id=org_id, action=auditing.ACTION).values_list(
            "details__verb", flat=True
        )
    ) == ["create", "list"]
    assert audit_verify().ok


def _pending(world, tenant, **extra) -> ProxyRequestLog:
    user = tenant.users["workspace_admin"]
    row = {
        "created_at": timezone.now(),
        "org_id": tenant.org.pk,
        "project_id": tenant.project.pk,
        "instance_id": 1,
        "instance_name": "i",
        "cluster_id": 2,
        "cluster_name": "c",
        "user_id": user.pk,
        "user_repr": user.email,
        "client": "kubeconfig",
        "method": "GET",
        "verb": "list",
        "resource": "pods",
        "namespace": "ns",
        "path": "/api/v1/namespaces/ns/pods",
        "status": 200,
    }
    return ProxyRequestLog.objects.create(**(row | extra))


@pytest.mark.django_db
def test_flush_goes_org_by_org_into_each_orgs_own_chain_within_its_limit(world):
    for _ in range(3):
        _pending(world, world.a)
        _pending(world, world.b)
    assert auditing.flush(limit=4) == 4
    assert ProxyRequestLog.objects.count() == 2
    assert auditing.flush() == 2
    audit.audit_seal_pending()  # (the flushes' commits would have chained them; the test's never commits)
    for tenant in (world.a, world.b):
        events = _kubectl_events(tenant.org)
        assert len(events) == 3 and {e.chain for e in events} == {tenant.org.pk}
        assert [e.seq for e in events] == list(range(events[0].seq, events[0].seq + 3))
    assert auditing.flush() == 0
    assert auditing.flush_task() == 0
    from django_q.models import Schedule

    assert Schedule.objects.filter(func="instances.kubeproxy.auditing.flush_task", minutes=1).exists()
    assert audit_verify().ok


@pytest.mark.django_db
def test_the_read_setting_is_the_operators_in_the_api_and_audited(world, api):
    operator, org_admin = world.operator, world.a.users["org_admin"]
    url = "/api/v1/audit-settings/"
    assert api.as_user(operator).get(url).json()["kubectl_reads"] == "all"
    for user in (org_admin, world.a.users["paas_admin_org"], world.a.users["workspace_admin"]):
        assert api.as_user(user).get(url).status_code == 403
        assert api.as_user(user).patch(url, {"kubectl_reads": "summary"}, format="json").status_code == 403
    refused = api.as_user(operator).patch(url, {"kubectl_sample_every": 1}, format="json")
    assert refused.status_code == 400 and "kubectl_sample_every" in str(refused.json())
    assert api.as_user(operator).patch(url, {"kubectl_reads": "often"}, format="json").status_code == 400
    changed = api.as_user(operator).patch(
        url, {"kubectl_reads": "sample", "kubectl_sample_every": 20}, format="json"
    )
    assert changed.status_code == 200, changed.content
    assert (changed.json()["kubectl_reads"], changed.json()["kubectl_sample_every"]) == ("sample", 20)
    event = AuditEvent.objects.filter(action="audit.settings_update").latest("pk")
    assert event.actor_id == operator.pk and event.chain == audit.PLATFORM_CHAIN
    assert event.details["changes"]["kubectl_reads"] == ["all", "sample"]
    auditing._policy.forget()


@pytest.mark.django_db
def test_the_read_setting_has_an_operators_studio_page(world, client):
    client.force_login(world.operator)
    listing = client.get("/studio/paas/auditsettings/")
    assert listing.status_code == 302 and listing["Location"].endswith("/studio/paas/auditsettings/1/change/")
    page = client.get(listing["Location"])
    assert page.status_code == 200 and "Writes are always recorded" in page.content.decode()
    bad = client.post(listing["Location"], {"kubectl_reads": "sample", "kubectl_sample_every": "0"})
    assert bad.status_code == 200 and "from 2 to 1000" in bad.content.decode()
    saved = client.post(listing["Location"], {"kubectl_reads": "summary", "kubectl_sample_every": "10"})
    assert saved.status_code == 302
    assert AuditEvent.objects.filter(action="audit.settings_update", actor=world.operator).exists()
    auditing._policy.forget()
    client.force_login(world.a.users["org_admin"])
    assert client.get("/studio/paas/auditsettings/").status_code == 403
    assert client.get("/studio/paas/auditsettings/1/change/").status_code in (403, 404)
