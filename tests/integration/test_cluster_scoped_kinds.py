"""``catalog.cluster_scoped`` proven against a real kube-apiserver 1.37 (API discovery).

Environment templates may only create namespaced objects; the refusal of cluster-scoped kinds
rests on the sets in :mod:`catalog.cluster_scoped`.  These tests read the API server's own
discovery documents (``/api/v1`` and ``/apis/<group>/<version>`` for every served group version)
and compare every top-level resource's ``namespaced`` flag with the sets:

* on the shared local cluster (the default API versions), every served built-in kind must be
  filed under its true scope, and the create-only ones must be known;
* on a cluster started with ``--runtime-config=api/all=true`` and all alpha/beta feature gates,
  which serves every built-in kind Kubernetes 1.37 has, the sets must be exactly right.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from catalog.cluster_scoped import CLUSTER_SCOPED_KINDS, CREATE_ONLY_KINDS, NAMESPACED_KINDS
from tests.localkube.cluster import LocalCluster

pytestmark = pytest.mark.kube

ALL_APIS_FLAGS = ["--runtime-config=api/all=true", "--feature-gates=AllAlpha=true,AllBeta=true"]


def _get(api: client.ApiClient, path: str) -> Any:
    method, url, headers, body, post_params = api.param_serialize(
        "GET", path, header_params={"Accept": "application/json"}, auth_settings=["BearerToken"]
    )
    response = api.call_api(method, url, header_params=headers, body=body, post_params=post_params)
    return json.loads(response.read())


def _not_built_in(api: client.ApiClient) -> tuple[set[str], set[tuple[str, str]]]:
    """Groups served by aggregated API servers, and (group, kind) defined by CRDs."""
    aggregated = {
        service.spec.group
        for service in client.ApiregistrationV1Api(api).list_api_service().items
        if service.spec.service is not None
    }
    crds = {
        (crd.spec.group, crd.spec.names.kind)
        for crd in client.ApiextensionsV1Api(api).list_custom_resource_definition().items
    }
    return aggregated, crds


def discover(api: client.ApiClient) -> list[dict[str, Any]]:
    """Every top-level built-in resource the API server serves (subresources left out)."""
    group_versions = [("", "v1", "/api/v1")]
    for group in client.ApisApi(api).get_api_versions().groups:
        group_versions += [(group.name, v.version, f"/apis/{v.group_version}") for v in group.versions]
    aggregated, crds = _not_built_in(api)
    resources = []
    for group, version, path in group_versions:
        if group in aggregated:
            continue
        for resource in _get(api, path)["resources"]:
            if "/" in resource["name"] or (group, resource["kind"]) in crds:
                continue
            resources.append(
                {
                    "group": group,
                    "version": version,
                    "kind": resource["kind"],
                    "namespaced": resource["namespaced"],
                    "verbs": set(resource.get("verbs") or ()),
                }
            )
    return resources


def scopes(resources: list[dict[str, Any]]) -> tuple[set, set, set]:
    cluster = {(r["group"], r["kind"]) for r in resources if not r["namespaced"]}
    namespaced = {(r["group"], r["kind"]) for r in resources if r["namespaced"]}
    create_only = {(r["group"], r["kind"]) for r in resources if r["namespaced"] and r["verbs"] == {"create"}}
    return cluster, namespaced, create_only


class AllApisCluster(LocalCluster):
    """A local cluster whose API server serves every API version (alpha and beta included)."""

    def _commands(self, state: Any) -> dict[str, list[str]]:
        commands = super()._commands(state)
        commands["kube-apiserver"] = [*commands["kube-apiserver"], *ALL_APIS_FLAGS]
        return commands


@pytest.fixture(scope="module")
def shared_api(kube_cluster: Any) -> Iterator[client.ApiClient]:
    api = kube_cluster.api_client()
    yield api
    api.close()


@pytest.fixture(scope="module")
def all_apis_api() -> Iterator[client.ApiClient]:
    cluster = AllApisCluster(name="scopes-all-apis", nodes=[]).start()
    try:
        api = cluster.api_client()
        yield api
        api.close()
    finally:
        cluster.stop()


def test_every_kind_the_shared_cluster_serves_is_filed_under_its_true_scope(shared_api):
    version = client.VersionApi(shared_api).get_code().git_version
    assert version.startswith("v1.37."), version
    resources = discover(shared_api)
    cluster, namespaced, create_only = scopes(resources)

    assert len(cluster) > 30 and len(namespaced) > 30  # discovery really happened
    assert cluster - CLUSTER_SCOPED_KINDS == set(), "cluster-scoped kinds missing from CLUSTER_SCOPED_KINDS"
    assert namespaced - NAMESPACED_KINDS == set(), "namespaced kinds missing from NAMESPACED_KINDS"
    assert cluster & NAMESPACED_KINDS == set(), "cluster-scoped kinds listed as namespaced"
    assert namespaced & CLUSTER_SCOPED_KINDS == set(), "namespaced kinds listed as cluster-scoped"
    assert create_only == CREATE_ONLY_KINDS & namespaced
    assert {("", "Namespace"), ("rbac.authorization.k8s.io", "ClusterRoleBinding")} <= cluster


def test_the_sets_are_exactly_what_kubernetes_1_37_serves_with_every_api_enabled(all_apis_api):
    resources = discover(all_apis_api)
    cluster, namespaced, create_only = scopes(resources)
    served_versions = {r["version"] for r in resources}

    assert {"v1alpha1", "v1beta1"} <= served_versions  # the alpha and beta APIs are really on
    assert cluster == CLUSTER_SCOPED_KINDS
    assert namespaced == NAMESPACED_KINDS
    assert create_only == CREATE_ONLY_KINDS
