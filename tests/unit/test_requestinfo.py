"""requestinfo.parse: what a Kubernetes API request does, as the API server itself reads it (the verb,
group, resource, subresource, namespace and name that the kubectl audit trail records)."""

import pytest

from instances.kubeproxy.requestinfo import parse


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        # core/v1, namespaced
        ("GET", "/api/v1/namespaces/ns1/pods", "", ("list", "", "pods", "", "ns1", "")),
        ("GET", "/api/v1/namespaces/ns1/pods/web-0", "", ("get", "", "pods", "", "ns1", "web-0")),
        ("POST", "/api/v1/namespaces/ns1/configmaps", "", ("create", "", "configmaps", "", "ns1", "")),
        ("PUT", "/api/v1/namespaces/ns1/configmaps/c", "", ("update", "", "configmaps", "", "ns1", "c")),
        ("PATCH", "/api/v1/namespaces/ns1/configmaps/c", "", ("patch", "", "configmaps", "", "ns1", "c")),
        ("DELETE", "/api/v1/namespaces/ns1/pods/web-0", "", ("delete", "", "pods", "", "ns1", "web-0")),
        # named groups
        (
            "GET",
            "/apis/apps/v1/namespaces/ns1/deployments",
            "",
            ("list", "apps", "deployments", "", "ns1", ""),
        ),
        (
            "PATCH",
            "/apis/apps/v1/namespaces/ns1/deployments/api/scale",
            "",
            ("patch", "apps", "deployments", "scale", "ns1", "api"),
        ),
        # cluster-scoped
        ("GET", "/api/v1/nodes", "", ("list", "", "nodes", "", "", "")),
        ("GET", "/api/v1/namespaces/ns1", "", ("get", "", "namespaces", "", "", "ns1")),
        ("GET", "/api/v1/namespaces", "", ("list", "", "namespaces", "", "", "")),
        (
            "GET",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles/admin",
            "",
            ("get", "rbac.authorization.k8s.io", "clusterroles", "", "", "admin"),
        ),
        (
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            "",
            ("create", "authorization.k8s.io", "selfsubjectaccessreviews", "", "", ""),
        ),
        # subresources
        (
            "GET",
            "/api/v1/namespaces/ns1/pods/web-0/log",
            "follow=true",
            ("get", "", "pods", "log", "ns1", "web-0"),
        ),
        (
            "GET",
            "/api/v1/namespaces/ns1/pods/web-0/exec",
            "command=sh",
            ("get", "", "pods", "exec", "ns1", "web-0"),
        ),
        (
            "POST",
            "/api/v1/namespaces/ns1/pods/web-0/exec",
            "",
            ("create", "", "pods", "exec", "ns1", "web-0"),
        ),
        (
            "GET",
            "/api/v1/namespaces/ns1/pods/web-0/portforward",
            "ports=80",
            ("get", "", "pods", "portforward", "ns1", "web-0"),
        ),
        (
            "PUT",
            "/api/v1/namespaces/ns1/pods/web-0/status",
            "",
            ("update", "", "pods", "status", "ns1", "web-0"),
        ),
        # watch
        ("GET", "/api/v1/namespaces/ns1/pods", "watch=true", ("watch", "", "pods", "", "ns1", "")),
        (
            "GET",
            "/api/v1/namespaces/ns1/pods",
            "watch=1&resourceVersion=5",
            ("watch", "", "pods", "", "ns1", ""),
        ),
        ("GET", "/api/v1/namespaces/ns1/pods", "watch=false", ("list", "", "pods", "", "ns1", "")),
        ("GET", "/api/v1/watch/namespaces/ns1/pods", "", ("watch", "", "pods", "", "ns1", "")),
        ("GET", "/api/v1/watch/namespaces/ns1/pods/web-0", "", ("watch", "", "pods", "", "ns1", "web-0")),
        # deletecollection
        (
            "DELETE",
            "/api/v1/namespaces/ns1/pods",
            "labelSelector=a%3Db",
            ("deletecollection", "", "pods", "", "ns1", ""),
        ),
        (
            "DELETE",
            "/apis/batch/v1/namespaces/ns1/jobs",
            "",
            ("deletecollection", "batch", "jobs", "", "ns1", ""),
        ),
    ],
)
def test_resource_requests(method, path, query, expected):
    info = parse(method, path, query)
    assert (info.verb, info.api_group, info.resource, info.subresource, info.namespace, info.name) == expected
    assert info.resource_request
    assert info.method == method
    assert info.path == path
    sessions = ("exec", "attach", "portforward", "proxy")
    assert info.is_read == (expected[0] in ("get", "list", "watch") and expected[3] not in sessions)


@pytest.mark.parametrize(
    ("method", "path", "verb", "group"),
    [
        ("GET", "/api", "get", ""),
        ("GET", "/api/v1", "get", ""),
        ("GET", "/apis", "get", ""),
        ("GET", "/apis/apps", "get", ""),
        ("GET", "/apis/apps/v1", "get", "apps"),
        ("GET", "/version", "get", ""),
        ("GET", "/openapi/v3", "get", ""),
        ("GET", "/", "get", ""),
        ("HEAD", "/healthz", "get", ""),
        ("POST", "/version", "create", ""),
    ],
)
def test_discovery_and_other_non_resource_requests(method, path, verb, group):
    info = parse(method, path)
    assert (info.verb, info.api_group, info.resource, info.namespace, info.name) == (verb, group, "", "", "")
    assert not info.resource_request
    assert info.is_read == (verb == "get")


def test_the_method_is_read_case_blind_and_odd_methods_keep_their_name():
    assert parse("get", "/api/v1/namespaces/ns1/pods").verb == "list"
    odd = parse("PROPFIND", "/api/v1/namespaces/ns1/pods/p")
    assert odd.verb == "propfind"
    assert not odd.is_read  # anything unknown is recorded like a write, never sampled away


def test_a_write_cannot_pass_for_a_read_with_watch_in_its_query():
    info = parse("DELETE", "/api/v1/namespaces/ns1/pods", "watch=true")
    assert info.verb == "deletecollection"
    assert not info.is_read
    assert parse("POST", "/api/v1/namespaces/ns1/pods", "watch=true").verb == "create"


def test_empty_segments_are_ignored():
    info = parse("GET", "//api//v1/namespaces/ns1//pods/web-0/", "")
    assert (info.verb, info.resource, info.namespace, info.name) == ("get", "pods", "ns1", "web-0")


def test_exec_attach_port_forward_and_proxy_are_never_reads_though_their_verb_is_get():
    """kubectl exec (WebSocket, since 1.30) and port-forward are GETs: the audit records each one, before
    it is forwarded, whatever the operators' read setting."""
    for subresource in ("exec", "attach", "portforward", "proxy"):
        info = parse("GET", f"/api/v1/namespaces/ns1/pods/web-0/{subresource}", "command=sh")
        assert info.verb == "get" and info.subresource == subresource
        assert not info.is_read
    assert parse("GET", "/api/v1/namespaces/ns1/pods/web-0/log").is_read
    assert parse("GET", "/api/v1/namespaces/ns1/services/web:80/proxy/metrics").subresource == "proxy"
