"""A cluster whose platform credential may not impersonate ServiceAccounts cannot serve the kubectl proxy
(it forwards each request as the user's per-instance ServiceAccount): refused at registration and at a
kubeconfig change with a field message; a refresh records it (``guardrails.proxy_error``) and clears it
once the permission is granted.

The limited identities are ServiceAccounts of the local control plane with exactly the rights given here,
used through TokenRequest kubeconfigs, as a real operator's restricted credential would be.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from inventory import kube
from inventory import services as inventory_services
from inventory.guardrail_services import IMPERSONATION_REFUSED, cluster_guardrails_sync
from inventory.models import Cluster
from paas.errors import ValidationFailed
from tests.localkube.helpers import unique_name

pytestmark = pytest.mark.kube

# Everything the refresh needs (install the guardrails, read nodes, ...) but not "impersonate".
EVERYTHING_BUT_IMPERSONATE = [
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
]


@pytest.fixture
def admin_kc(kube_cluster) -> str:
    return Path(kube_cluster.kubeconfig_path).read_text()


def _limited_identity(admin_kc: str, *, impersonate: bool, broad: bool = False) -> tuple[str, str]:
    """(kubeconfig, name) of a new ServiceAccount: bare, or (``broad``) allowed everything but
    impersonation, plus (``impersonate``) impersonating ServiceAccounts in every namespace."""
    name = unique_name("platform")
    objects: list[dict] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "platform", "namespace": name}},
    ]
    rules = []
    if broad:
        rules.append({"apiGroups": ["*"], "resources": ["*"], "verbs": EVERYTHING_BUT_IMPERSONATE})
    if impersonate:
        rules.append({"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["impersonate"]})
    if rules:
        objects += _binding(name, rules)
    kube.ensure_objects(admin_kc, objects)
    token, _expires = kube.issue_token(admin_kc, namespace=name, service_account="platform", seconds=600)
    return kube.kubeconfig_for_token(admin_kc, token=token, namespace=name, user="platform"), name


def _binding(name: str, rules: list[dict]) -> list[dict]:
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": name},
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": "platform", "namespace": name}],
        },
    ]


def test_a_credential_that_may_not_impersonate_is_refused_at_registration(world, api, admin_kc):
    limited, _name = _limited_identity(admin_kc, impersonate=False)
    assert kube.whoami(limited).startswith("system:serviceaccount:"), "it does reach the API server"
    response = api.as_user(world.operator).post(
        "/api/v1/clusters/", {"name": "limited", "kubeconfig": limited}, format="json"
    )
    assert response.status_code == 400, response.content
    (message,) = response.json()["error"]["fields"]["kubeconfig"]
    assert message == IMPERSONATION_REFUSED
    assert "impersonate" in message and "serviceaccounts" in message
    assert not Cluster.objects.filter(name="limited").exists(), "nothing stored"

    # the positive control: the same kind of identity, allowed to impersonate ServiceAccounts
    allowed, _name = _limited_identity(admin_kc, impersonate=True)
    response = api.as_user(world.operator).post(
        "/api/v1/clusters/", {"name": "allowed", "kubeconfig": allowed}, format="json"
    )
    assert response.status_code == 201, response.content


def test_a_kubeconfig_change_to_such_a_credential_is_refused(world, registered_cluster, admin_kc):
    limited, _name = _limited_identity(admin_kc, impersonate=False)
    with pytest.raises(ValidationFailed) as refused:
        inventory_services.cluster_update(
            actor=world.operator, cluster=registered_cluster, kubeconfig=limited
        )
    assert refused.value.fields == {"kubeconfig": [IMPERSONATION_REFUSED]}
    registered_cluster.refresh_from_db()
    assert registered_cluster.kubeconfig.reveal() == admin_kc, "the stored credential is unchanged"


def test_the_refresh_records_it_and_clears_it_once_granted(world, registered_cluster, admin_kc):
    assert registered_cluster.guardrails["proxy_error"] == ""
    # a credential that can install the guardrails but not impersonate, stored as if it had been
    # changed on the cluster's side (its RBAC edited after registration)
    limited, name = _limited_identity(admin_kc, impersonate=False, broad=True)
    registered_cluster.kubeconfig = limited
    registered_cluster.save()
    cluster = cluster_guardrails_sync(cluster_id=registered_cluster.pk)
    assert cluster.guardrails["error"] == "", "the guardrails themselves still install"
    assert cluster.guardrails["proxy_error"] == IMPERSONATION_REFUSED

    kube.ensure_objects(
        admin_kc,
        _binding(
            name,
            [
                {"apiGroups": ["*"], "resources": ["*"], "verbs": EVERYTHING_BUT_IMPERSONATE},
                {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["impersonate"]},
            ],
        ),
    )
    cluster = cluster_guardrails_sync(cluster_id=registered_cluster.pk)
    assert cluster.guardrails["proxy_error"] == ""
