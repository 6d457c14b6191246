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


RAY = [{"apiVersion": "ray.io/v1", "kind": "RayCluster", "scope": "Namespaced"}]
RAY_ALLOWED = frozenset({("ray.io", "RayCluster")})


def test_custom_resources_may_not_take_platform_names_or_labels():
    objects = parse(manifests([obj("ray.io/v1", "RayCluster", "paas-ray")]))
    with pytest.raises(TemplateError) as info:
        validate_objects(objects, namespace=NS, custom_resources=RAY, allowed_custom_resources=RAY_ALLOWED)
    assert "RayCluster/paas-ray: the name 'paas-ray' is reserved" in info.value.errors["manifests"][0]
    validate_objects(
        parse(manifests([obj("ray.io/v1", "RayCluster", "ray")])),
        namespace=NS,
        custom_resources=RAY,
        allowed_custom_resources=RAY_ALLOWED,
    )


# --- custom resources: declared by the version, allowed by an operator ------------------------------
UNLISTED = (
    "RayCluster/ray: the custom resource RayCluster (ray.io) is not on the platform's list of allowed "
    "custom resources; an operator must allow the kind"
)


def test_a_declared_custom_resource_no_operator_allowed_is_refused_naming_the_object():
    objects = parse(manifests([obj("ray.io/v1", "RayCluster", "ray")]))
    for allowed in (frozenset(), frozenset({("ray.io", "RayJob"), ("example.com", "RayCluster")})):
        with pytest.raises(TemplateError) as info:
            validate_objects(objects, namespace=NS, custom_resources=RAY, allowed_custom_resources=allowed)
        assert info.value.errors["manifests"][0].startswith(UNLISTED), info.value.errors
    # the default (a caller that forgets the list) refuses too
    with pytest.raises(TemplateError):
        validate_objects(objects, namespace=NS, custom_resources=RAY)
    # allowed for any version of the group: the declaration says which version is rendered
    validate_objects(objects, namespace=NS, custom_resources=RAY, allowed_custom_resources=RAY_ALLOWED)


def test_an_unlisted_custom_resource_is_refused_at_publish_and_a_listed_one_passes():
    text = manifests([obj("ray.io/v1", "RayCluster", "ray")])
    with pytest.raises(TemplateError) as info:
        check_version(manifests=text, inputs=[], outputs=[], actions=[], custom_resources=RAY)
    assert any(m.startswith(UNLISTED) for m in info.value.errors["manifests"]), info.value.errors
    preview = check_version(
        manifests=text,
        inputs=[],
        outputs=[],
        actions=[],
        custom_resources=RAY,
        allowed_custom_resources=RAY_ALLOWED,
    )
    assert "RayCluster" in [o["kind"] for o in preview]


def test_allowing_a_kind_does_not_lift_the_declaration_or_the_scope_rules():
    """The allow-list adds a condition; it does not replace the declaration (version, scope)."""
    objects = parse(manifests([obj("ray.io/v1", "RayCluster", "ray")]))
    with pytest.raises(TemplateError) as info:
        validate_objects(objects, namespace=NS, allowed_custom_resources=RAY_ALLOWED)
    assert "must be declared in custom_resources" in info.value.errors["manifests"][0]
    cluster_scoped = [dict(RAY[0], scope="Cluster")]
    with pytest.raises(TemplateError) as info:
        validate_objects(
            objects, namespace=NS, custom_resources=cluster_scoped, allowed_custom_resources=RAY_ALLOWED
        )
    assert "cluster-scoped custom resource" in info.value.errors["manifests"][0]


def test_allowed_kinds_pass_and_everything_else_namespaced_is_refused():
    from catalog.cluster_scoped import NAMESPACED_KINDS

    assert template_policy.ALLOWED_KINDS <= NAMESPACED_KINDS
    for group, kind in NAMESPACED_KINDS - template_policy.ALLOWED_KINDS:
        problem = template_policy.kind_problem(group, kind, True)
        assert problem and problem.startswith(f"templates may not create {kind}: "), (group, kind)
    assert template_policy.kind_problem("ray.io", "RayCluster", False, RAY_ALLOWED) is None
    assert "an operator must allow" in template_policy.kind_problem("ray.io", "RayCluster", False)


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
