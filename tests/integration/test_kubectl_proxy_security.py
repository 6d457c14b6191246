"""Hostile clients of the kubectl proxy (``/k8s/instances/<id>/``), served by the real ASGI server.

A tenant downloads a kubeconfig through the API, as anyone would, and then does what the kubeconfig
does not: injects identity headers (Impersonate-*, X-Remote-*, a second Authorization), presents
another instance's token, a tampered, expired or revoked one, its session cookie instead of a token,
keeps using it after its account, its organization or the instance went, walks paths (``..``, ``%2F``,
``//``, trailing junk, huge ids) towards another instance, and sends an oversized body. Every request
still acts as the tenant's own ServiceAccount in its own namespace, or is refused: never another
instance, never a 500.

Requests are made with ``http.client`` so that the path and headers go out byte for byte (requests and
urllib3 would normalise ``..`` and drop duplicates).
"""

import http.client
import json
import secrets
from datetime import timedelta

import pytest
import yaml
from django.utils import timezone
from kubernetes import client as k8s

from instances import baseline
from instances.kubeproxy import app as proxy_app
from instances.models import ComputeInstance, KubeCredential, ProxyRequestLog
from instances.states import State
from tenancy.models import Organization
from tenancy.services import user_update
from tests.support.instances import launch_instance
from tests.support.wait import wait_for

pytestmark = pytest.mark.kube

REVIEW = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
REVIEW_PATH = "/apis/authentication.k8s.io/v1/selfsubjectreviews"


class Answer:
    def __init__(self, status: int, headers, body: bytes):
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> dict:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"{self.status} {self.body[:300]!r}"


def call(server, method: str, path: str, *, token: str = "", headers=(), body: bytes | None = None) -> Answer:
    """One request to the server, path and headers exactly as given (``headers``: pairs, repeats kept)."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        if token:
            conn.putheader("Authorization", f"Bearer {token}")
        for name, value in headers:
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Type", "application/json")
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        if body is not None:
            conn.send(body)
        response = conn.getresponse()
        return Answer(response.status, response.headers, response.read())
    finally:
        conn.close()


def _token(api, user, instance) -> str:
    response = api.as_user(user).post(f"/api/v1/instances/{instance.pk}/kubeconfig/")
    assert response.status_code == 200, response.content
    config = yaml.safe_load(response.content)
    return config["users"][0]["user"]["token"]


def _whoami(server, instance, token: str, headers=()) -> Answer:
    return call(
        server,
        "POST",
        f"/k8s/instances/{instance.pk}{REVIEW_PATH}",
        token=token,
        headers=headers,
        body=json.dumps(REVIEW).encode(),
    )


def _service_account(instance, user) -> str:
    return f"system:serviceaccount:{instance.namespace}:{baseline.service_account_name(user.username)}"


@pytest.fixture
def tenants(live, api, kube_proxy):
    """Tenant A's instance and tenant B's, each with its owner's token (downloaded through the API), and
    a marker ConfigMap in B's namespace that nothing of A's may ever read."""
    world, core = live["world"], live["core"]
    a = launch_instance(live, "sec-a")
    b_owner = world.b.users["workspace_admin"]
    b = launch_instance(live, "sec-b", actor=b_owner, project=world.b.project)
    marker = f"b-only-{secrets.token_hex(8)}"
    core.create_namespaced_config_map(
        b.namespace, {"metadata": {"name": "marker"}, "data": {"marker": marker}}
    )
    return {
        "world": world,
        "server": kube_proxy,
        "a": a,
        "b": b,
        "a_owner": a.owner,
        "b_owner": b_owner,
        "a_token": _token(api, a.owner, a),
        "b_token": _token(api, b_owner, b),
        "marker": marker,
        "core": core,
    }


def _privileged_token(core) -> str:
    """A real bearer token of a cluster-admin ServiceAccount (what an attacker would love to pass on)."""
    rbac = k8s.RbacAuthorizationV1Api(core.api_client)
    name = f"sec-admin-{secrets.token_hex(3)}"
    core.create_namespaced_service_account("kube-system", {"metadata": {"name": name}})
    rbac.create_cluster_role_binding(
        {
            "metadata": {"name": name},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "cluster-admin",
            },
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": "kube-system"}],
        }
    )
    request = core.create_namespaced_service_account_token(
        name, "kube-system", {"spec": {"expirationSeconds": 600}}
    )
    return request.status.token


def test_injected_identity_headers_are_not_honoured(tenants):
    server, a, token = tenants["server"], tenants["a"], tenants["a_token"]
    me = _service_account(a, tenants["a_owner"])
    plain = _whoami(server, a, token)
    assert plain.status == 201, plain
    assert plain.json()["status"]["userInfo"]["username"] == me
    admin_token = _privileged_token(tenants["core"])
    hostile = [
        ("Impersonate-User", "system:admin"),
        ("impersonate-user", "kubernetes-admin"),
        ("IMPERSONATE-GROUP", "system:masters"),
        ("Impersonate-Group", "system:masters"),
        ("Impersonate-Uid", "0"),
        ("Impersonate-Extra-Scopes", "all"),
        ("Impersonate-Extra-authentication.kubernetes.io%2fcredential-id", "x"),
        ("X-Remote-User", "system:admin"),
        ("X-Remote-Group", "system:masters"),
        ("X-Remote-Extra-Scopes", "all"),
        ("Authorization", f"Bearer {admin_token}"),  # a second Authorization, after the tenant's
        ("Proxy-Authorization", f"Bearer {admin_token}"),
        ("X-Forwarded-User", "system:admin"),
    ]
    review = _whoami(server, a, token, headers=hostile)
    assert review.status == 201, review
    user_info = review.json()["status"]["userInfo"]
    assert user_info["username"] == me
    assert "system:masters" not in user_info.get("groups", []) and not user_info.get("extra")
    for path in (
        "/api/v1/nodes",
        "/api/v1/namespaces",
        "/api/v1/namespaces/kube-system/pods",
        "/api/v1/namespaces/kube-system/secrets",
        f"/api/v1/namespaces/{tenants['b'].namespace}/configmaps",  # another tenant's namespace
        f"/api/v1/namespaces/{tenants['b'].namespace}/configmaps/marker",
    ):
        answer = call(server, "GET", f"/k8s/instances/{a.pk}{path}", token=token, headers=hostile)
        assert answer.status == 403, (path, answer)
        assert tenants["marker"].encode() not in answer.body
    # Its own namespace works, with the same headers: the request really went through.
    own = call(
        server,
        "GET",
        f"/k8s/instances/{a.pk}/api/v1/namespaces/{a.namespace}/configmaps",
        token=token,
        headers=hostile,
    )
    assert own.status == 200, own
    # The cluster's token alone, or ahead of the tenant's, authenticates nothing here.
    assert _whoami(server, a, admin_token).status == 401
    ahead = _whoami(server, a, admin_token, headers=[("Authorization", f"Bearer {token}")])
    assert ahead.status == 401
    assert (
        call(
            server,
            "GET",
            f"/k8s/instances/{a.pk}/api/v1/nodes",
            headers=[("Authorization", f"Basic {admin_token}")],
        ).status
        == 401
    )
    # The proxy's answer carries nothing that authenticates to the cluster.
    for name in ("www-authenticate", "set-cookie"):
        assert name not in {k.lower() for k in own.headers}


def test_credentials_that_do_not_grant_this_instance_are_refused(tenants, api, client):
    server, a, b = tenants["server"], tenants["a"], tenants["b"]
    token, owner = tenants["a_token"], tenants["a_owner"]
    pods = f"/k8s/instances/{a.pk}/api/v1/namespaces/{a.namespace}/pods"

    def status(token_: str = token, path: str = pods, headers=()) -> int:
        return call(server, "GET", path, token=token_, headers=headers).status

    credential = KubeCredential.objects.get(user=owner, instance=a)
    assert credential.last_used_at is None
    assert status() == 200
    credential.refresh_from_db()
    assert credential.last_used_at is not None and timezone.now() - credential.last_used_at < timedelta(
        minutes=1
    )
    # (a read's row is written once its response has gone: wait for it before counting)
    before = wait_for(ProxyRequestLog.objects.count, 10, 0.02, what="the read's audit row")

    # Another instance's token on this instance's path, and this one's on the other's.
    assert status(tenants["b_token"]) == 401
    assert status(token, f"/k8s/instances/{b.pk}/api/v1/namespaces/{b.namespace}/configmaps") == 401
    # Tampered, truncated, made up, or no token at all.
    prefix, secret = token.split("_")[1], token.split("_", 2)[2]
    other_prefix = tenants["b_token"].split("_")[1]
    for forged in (
        token[:-1] + ("A" if token[-1] != "A" else "B"),
        token[:-5],
        f"gpk_{other_prefix}_{secret}",
        f"gpk_{prefix}_{secrets.token_urlsafe(32)}",
        "gpk_" + "0" * 12 + "_" + secret,
        secret,
        "x" * 5000,
    ):
        assert status(forged) == 401, forged
    assert status("") == 401
    # A signed-in browser session is no credential here.
    client.force_login(owner)
    cookie = "; ".join(f"{k}={v.value}" for k, v in client.cookies.items())
    assert status("", headers=[("Cookie", cookie)]) == 401
    assert status("", headers=[("Cookie", cookie), ("X-CSRFToken", "x")]) == 401
    # Nothing refused reached the audit records (or the cluster).
    assert ProxyRequestLog.objects.count() == before

    # Expired.
    KubeCredential.objects.filter(pk=credential.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert status() == 401
    KubeCredential.objects.filter(pk=credential.pk).update(expires_at=timezone.now() + timedelta(minutes=5))
    assert status() == 200

    # The instance not ready, then deleted.
    for state in (State.DELETING, State.FAILED, State.DELETED):
        ComputeInstance.objects.filter(pk=a.pk).update(state=state)
        assert status() == 401, state
    ComputeInstance.objects.filter(pk=a.pk).update(state=State.READY)
    assert status() == 200

    # The organization deactivated (checked at the request, whatever else happened).
    Organization.objects.filter(pk=a.org_id).update(is_active=False)
    assert status() == 401
    Organization.objects.filter(pk=a.org_id).update(is_active=True)
    assert status() == 200

    # Revoked through the API: the next request is refused.
    answer = api.as_user(owner).post(f"/api/v1/instances/{a.pk}/kube-credentials/{credential.pk}/revoke/")
    assert answer.status_code == 200 and answer.json()["revoked"] is True
    assert status() == 401

    # A fresh kubeconfig works; the account deactivated, it does not, nor once reactivated.
    fresh = _token(api, owner, a)
    assert status(fresh) == 200
    user_update(actor=tenants["world"].operator, user=owner, is_active=False)
    assert status(fresh) == 401
    user_update(actor=tenants["world"].operator, user=owner, is_active=True)
    assert status(fresh) == 401


def test_path_tricks_never_reach_another_instance(tenants):
    server, a, b, token = tenants["server"], tenants["a"], tenants["b"], tenants["a_token"]
    cms = f"api/v1/namespaces/{b.namespace}/configmaps"
    own = f"api/v1/namespaces/{a.namespace}/configmaps"
    paths = [
        f"/k8s/instances/{a.pk}/../{b.pk}/{cms}",
        f"/k8s/instances/{a.pk}/../../k8s/instances/{b.pk}/{cms}",
        f"/k8s/instances/{b.pk}/../{a.pk}/{own}",
        f"/k8s/instances/{a.pk}%2F..%2F{b.pk}/{cms}",
        f"/k8s/instances/{a.pk}%2f..%2f{b.pk}%2f{cms.replace('/', '%2f')}",
        f"/k8s/instances/{a.pk}/{own}/..%2F..%2F{b.namespace}%2Fconfigmaps",
        f"/k8s/instances/{a.pk}/api/v1/namespaces/{a.namespace}/../{b.namespace}/configmaps",
        f"/k8s/instances/{a.pk}/api/v1/namespaces/{a.namespace}/./../{b.namespace}/configmaps/marker",
        f"/k8s/instances/{a.pk}//{cms}",
        f"/k8s/instances/{a.pk}/api/v1/namespaces//{b.namespace}/configmaps",
        f"//k8s/instances/{a.pk}/{cms}",
        f"/k8s//instances/{a.pk}/{cms}",
        f"/k8s/instances//{a.pk}/{cms}",
        f"/k8s/instances/{a.pk}junk/{cms}",
        f"/k8s/instances/{a.pk};{b.pk}/{cms}",
        f"/k8s/instances/{a.pk}%00/{cms}",
        f"/k8s/instances/{a.pk}%20/{cms}",
        f"/k8s/instances/+{a.pk}/{cms}",
        f"/k8s/instances/0{a.pk}/{own}",
        f"/k8s/instances/{b.pk}/{cms}",
        f"/k8s/instances/{b.pk}",
        f"/k8s/instances/{a.pk}/{cms}?namespace={b.namespace}",
        f"/k8s/instances/{a.pk}/{own}?fieldSelector=metadata.namespace%3D{b.namespace}",
        f"/k8s/instances/{a.pk}/api/v1/configmaps",  # every namespace's
        "/k8s/instances/0/" + cms,
        "/k8s/instances/-1/" + cms,
        "/k8s/instances/" + "9" * 18 + "/" + cms,
        "/k8s/instances/" + "9" * 19 + "/" + cms,
        "/k8s/instances/" + "9" * 400 + "/" + cms,
        "/k8s/instances/1e3/" + cms,
        "/k8s/instances/" + cms,
        "/k8s/",
        "/k8s",
    ]
    for path in paths:
        answer = call(server, "GET", path, token=token)
        assert answer.status < 500, (path, answer)
        assert tenants["marker"].encode() not in answer.body, path
        assert answer.status != 200 or path.split("?")[0].endswith(own), (path, answer)
        if ".." in path or "//" in path or "%2f" in path.lower():  # refused before anything is forwarded
            assert answer.status in (401, 404), (path, answer)
    # A leading zero is the same instance, and only its own namespace answers.
    assert call(server, "GET", f"/k8s/instances/0{a.pk}/{own}", token=token).status == 200
    # What was forwarded was audited as it was sent: no path the HTTP client would resolve elsewhere,
    # and the other tenant's namespace only ever refused by the cluster.
    rows = list(ProxyRequestLog.objects.filter(instance_id=a.pk))
    assert rows
    for row in rows:
        assert proxy_app.UNCLEAN_PATH.search(row.path) is None, row.path
        assert row.namespace != b.namespace or row.status == 403, (row.path, row.status)


def test_an_oversized_body_is_refused(tenants):
    server, a, token = tenants["server"], tenants["a"], tenants["a_token"]
    path = f"/k8s/instances/{a.pk}/api/v1/namespaces/{a.namespace}/configmaps"
    big = b'{"metadata": {"name": "big"}, "data": {"x": "' + b"x" * (proxy_app.MAX_BODY + 1024) + b'"}}'
    answer = call(server, "POST", path, token=token, body=big)
    assert answer.status == 413, answer
    assert answer.json()["reason"] == "RequestEntityTooLarge"
    assert call(server, "GET", f"{path}/big", token=token).status == 404  # nothing was created
    # A body within the limit passes.
    small = json.dumps({"metadata": {"name": "small"}, "data": {"x": "y"}}).encode()
    assert call(server, "POST", path, token=token, body=small).status == 201
