"""The template policy (catalog/template_policy.py) through ``validate_objects``, the function both
publish and apply call: every hostile case is refused naming its object; narrow RBAC passes."""

import pytest

from catalog import template_policy
from catalog.templating import TemplateError, check_version, parse, validate_objects
from paas.platform_owned import TENANT_RULES
from tests.support.hostile_templates import CASES, NARROW_RBAC, manifests, obj, role

NS = "i-org-proj-dev-abc123"
SUFFIX = f"{NS}.apps.local.paas.internal"


def refusal(objects: list[dict]) -> str:
    with pytest.raises(TemplateError) as info:
        validate_objects(parse(manifests(objects, suffix=SUFFIX)), namespace=NS, host_suffix=SUFFIX)
    return "\n".join(info.value.errors["manifests"])


def test_ingress_hosts_under_the_instance_suffix_are_allowed():
    backend = {"service": {"name": "web", "port": {"number": 80}}}
    http = {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}
    ingress = obj(
        "networking.k8s.io/v1",
        "Ingress",
        "web",
        spec={
            "rules": [{"host": "{suffix}", "http": http}, {"host": "lab.{suffix}", "http": http}],
            "tls": [{"hosts": ["lab.{suffix}"], "secretName": "cert"}],
        },
    )
    validate_objects(parse(manifests([ingress], suffix=SUFFIX)), namespace=NS, host_suffix=SUFFIX)
    # Under another instance's suffix (a sibling namespace) is refused: a suffix match, not a substring.
    other = "i-org-proj-other-def456.apps.local.paas.internal"
    assert "host 'lab.i-org-proj-other" in refusal(
        [ingress | {"spec": {"rules": [{"host": f"lab.{other}", "http": http}]}}]
    )
    assert "not allowed" in refusal([ingress | {"spec": {"rules": [{"host": f"x{SUFFIX}", "http": http}]}}])


@pytest.mark.parametrize(("objects", "expected"), [case[1:] for case in CASES], ids=[c[0] for c in CASES])
def test_every_hostile_case_is_refused_naming_the_object(objects, expected):
    assert expected in refusal(objects)


def test_hostile_cases_are_refused_at_publish_too():
    for _name, objects, expected in CASES:
        with pytest.raises(TemplateError) as info:
            check_version(
                manifests=manifests(objects), inputs=[], outputs=[], actions=[], custom_resources=[]
            )
        assert expected in "\n".join(info.value.errors["manifests"])


def test_narrow_rbac_for_a_template_service_account_is_allowed():
    validate_objects(parse(manifests(NARROW_RBAC)), namespace=NS)
    # The binding may name the namespace explicitly, and the subject's apiGroup may be "".
    binding = NARROW_RBAC[2] | {
        "subjects": [{"kind": "ServiceAccount", "name": "spark-driver", "namespace": NS, "apiGroup": ""}]
    }
    validate_objects(parse(manifests([*NARROW_RBAC[:2], binding])), namespace=NS)


def test_the_tenant_role_itself_is_the_widest_a_template_role_may_be():
    assert template_policy.role_problems(TENANT_RULES) == []
    widened = [*TENANT_RULES, {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["patch"]}]
    assert template_policy.role_problems(widened) == [
        f"rule {len(widened)} grants patch namespaces, which the tenant's own role may not do in the "
        "namespace; a template's Role may grant only what the tenant may"
    ]


def test_role_rule_shapes_and_non_resource_urls_are_refused():
    assert (
        "nonResourceURLs are cluster-level"
        in template_policy.role_problems([{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}])[0]
    )
    assert (
        "must be lists of names" in template_policy.role_problems([{"apiGroups": [""], "verbs": ["get"]}])[0]
    )
    assert template_policy.role_problems([]) == []  # an empty Role grants nothing


def test_custom_resources_may_not_take_platform_names_or_labels():
    custom = [{"apiVersion": "ray.io/v1", "kind": "RayCluster", "scope": "Namespaced"}]
    objects = parse(manifests([obj("ray.io/v1", "RayCluster", "paas-ray")]))
    with pytest.raises(TemplateError) as info:
        validate_objects(objects, namespace=NS, custom_resources=custom)
    assert "RayCluster/paas-ray: the name 'paas-ray' is reserved" in info.value.errors["manifests"][0]
    validate_objects(
        parse(manifests([obj("ray.io/v1", "RayCluster", "ray")])), namespace=NS, custom_resources=custom
    )


def test_allowed_kinds_pass_and_everything_else_namespaced_is_refused():
    from catalog.cluster_scoped import NAMESPACED_KINDS

    assert template_policy.ALLOWED_KINDS <= NAMESPACED_KINDS
    for group, kind in NAMESPACED_KINDS - template_policy.ALLOWED_KINDS:
        problem = template_policy.kind_problem(group, kind, True)
        assert problem and problem.startswith(f"templates may not create {kind}: "), (group, kind)
    assert template_policy.kind_problem("ray.io", "RayCluster", False) is None


def test_a_role_within_the_tenant_rules_by_resource_names_is_allowed():
    narrowed = role(
        rules=[
            {
                "apiGroups": ["apps"],
                "resources": ["deployments/scale"],
                "verbs": ["patch"],
                "resourceNames": ["web"],
            }
        ]
    )
    assert template_policy.role_problems(narrowed["rules"]) == []
