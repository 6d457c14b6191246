"""Environment templates: declarations, sandboxed rendering, offline validation (no Django)."""

import json
from importlib import resources

import pytest

from catalog import templating
from catalog.cluster_scoped import CLUSTER_SCOPED_KINDS, CREATE_ONLY_KINDS, NAMESPACED_KINDS
from catalog.templating import (
    SAMPLE_HOST_SUFFIX,
    TemplateError,
    check_version,
    parse,
    read_path,
    render,
    resolve_action_variables,
    resolve_inputs,
    sample_context,
    validate_declarations,
    validate_objects,
)
from catalog.templating.objects import _builtin_kinds, _schema_version

# ------------------------------------------------------------------------------------- fixtures
INPUTS = [
    {
        "name": "image",
        "type": "text",
        "required": True,
        "default": "nginx:1.27",
        "options": [],
        "description": "",
    },
    {"name": "replicas", "type": "number", "required": True, "default": 2, "options": [], "description": ""},
    {
        "name": "expose",
        "type": "boolean",
        "required": False,
        "default": True,
        "options": [],
        "description": "",
    },
    {
        "name": "domain",
        "type": "text",
        "required": True,
        "default": None,
        "options": [],
        "description": "DNS",
    },
    {
        "name": "size",
        "type": "select",
        "required": True,
        "default": "small",
        "options": ["small", "large"],
        "description": "",
    },
    {
        "name": "password",
        "type": "secret",
        "required": False,
        "default": None,
        "options": [],
        "description": "",
        "generate": True,
    },
    {"name": "config", "type": "multiline", "required": False, "default": "a: 1\nb: 2", "description": ""},
    {"name": "cluster_details", "type": "text", "required": False, "default": None, "description": ""},
]

OUTPUTS = [
    {
        "name": "url",
        "description": "Web address",
        "source": {"type": "template", "value": "https://{{ instance.name }}.{{ inputs.domain }}"},
    },
    {
        "name": "host",
        "description": "",
        "source": {
            "type": "field",
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "name": "{{ instance.name }}",
            "path": "spec.rules[0].host",
        },
    },
    {
        "name": "password",
        "description": "",
        "source": {"type": "secret", "name": "{{ instance.name }}-auth", "key": "password"},
    },
]

ACTIONS = [
    {"name": "start", "description": "Start", "variables": []},
    {"name": "stop", "description": "Stop", "variables": []},
    {
        "name": "scale",
        "description": "Scale",
        "variables": [{"name": "replicas", "type": "number", "default": 3, "description": ""}],
    },
]

MANIFESTS = """\
{% set name = instance.name %}
{% set gpus = profile.resource_groups | map(attribute='gpu_count') | sum %}
{% if action is defined and action.name == 'stop' %}
{% set replicas = 0 %}
{% elif action is defined and action.name == 'scale' %}
{% set replicas = action.variables.replicas %}
{% else %}
{% set replicas = inputs.replicas %}
{% endif %}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ name }}
  labels: {app: {{ name }}, size: {{ inputs.size }}}
spec:
  replicas: {{ replicas }}
  selector:
    matchLabels: {app: {{ name }}}
  template:
    metadata:
      labels: {app: {{ name }}}
    spec:
      containers:
        - name: web
          image: {{ inputs.image | tojson }}
          env:
            - name: PASSWORD
              valueFrom: {secretKeyRef: {name: {{ name }}-auth, key: password}}
          resources:
            limits:
              nvidia.com/gpu: {{ gpus }}
              memory: "{{ profile.resource_groups[0].memory_gib }}Gi"
          volumeMounts:
            - {name: data, mountPath: /data}
      volumes:
        - name: data
          persistentVolumeClaim: {claimName: {{ name }}-data}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ name }}
spec:
  selector: {app: {{ name }}}
  ports:
    - {name: http, port: 80, targetPort: 8080}
{% if inputs.expose %}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {{ name }}
spec:
  rules:
    - host: {{ name }}.{{ instance.host_suffix }}
      http:
        paths:
          - path: /
            pathType: Prefix
            backend:
              service: {name: {{ name }}, port: {number: 80}}
{% endif %}
---
apiVersion: v1
kind: Secret
metadata:
  name: {{ name }}-auth
type: Opaque
stringData:
  password: {{ inputs.password | tojson }}
  config: |
    {{ inputs.config | indent(4) }}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {{ name }}-data
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: {{ profile.resource_groups[0].storage_gib }}Gi
"""


def _allowed(custom_resources) -> frozenset[tuple[str, str]]:
    """Every declared kind allowed (the operators' allow-list is tested in test_template_policy.py)."""
    return frozenset(
        (str(r.get("apiVersion", "")).rpartition("/")[0], r.get("kind")) for r in custom_resources
    )


def check(manifests=MANIFESTS, inputs=INPUTS, outputs=OUTPUTS, actions=ACTIONS, custom_resources=()):
    return check_version(
        manifests=manifests,
        inputs=inputs,
        outputs=outputs,
        actions=actions,
        custom_resources=list(custom_resources),
        allowed_custom_resources=_allowed(custom_resources),
    )


def refusal(**kwargs) -> dict[str, list[str]]:
    with pytest.raises(TemplateError) as info:
        check(**kwargs)
    return info.value.errors


def messages(errors: dict[str, list[str]], field: str = "manifests") -> str:
    return "\n".join(errors.get(field, []))


def doc(api_version: str, kind: str, name: str = "x", **fields) -> str:
    body = {"apiVersion": api_version, "kind": kind, "metadata": {"name": name}, **fields}
    return json.dumps(body) + "\n"


CTX = sample_context(INPUTS, actions=ACTIONS)


def render_error(source: str, context=None) -> str:
    with pytest.raises(TemplateError) as info:
        render(source, CTX if context is None else context)
    return messages(info.value.errors)


# ------------------------------------------------------------------------------ a valid template
def test_valid_template_passes_and_returns_the_objects_rendered_with_defaults():
    objects = check()

    assert [(o["kind"], o["metadata"]["name"]) for o in objects] == [
        ("Deployment", "sample-instance"),
        ("Service", "sample-instance"),
        ("Ingress", "sample-instance"),
        ("Secret", "sample-instance-auth"),
        ("PersistentVolumeClaim", "sample-instance-data"),
    ]
    deployment, _service, ingress, secret, pvc = objects
    assert deployment["spec"]["replicas"] == 2
    assert deployment["metadata"]["labels"] == {"app": "sample-instance", "size": "small"}
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "nginx:1.27"
    assert container["resources"]["limits"] == {"nvidia.com/gpu": 1, "memory": "64Gi"}
    assert read_path(ingress, "spec.rules[0].host") == "sample-instance." + SAMPLE_HOST_SUFFIX
    assert secret["stringData"] == {"password": "sample-secret", "config": "a: 1\nb: 2\n"}
    assert pvc["spec"]["resources"]["requests"]["storage"] == "100Gi"


def test_sample_context_uses_defaults_placeholders_and_samples():
    context = sample_context(INPUTS, actions=ACTIONS, action="scale")

    assert context["inputs"] == {
        "image": "nginx:1.27",
        "replicas": 2,
        "expose": True,
        "domain": "sample",
        "size": "small",
        "password": "sample-secret",
        "config": "a: 1\nb: 2",
        "cluster_details": None,
    }
    assert context["instance"] == {
        "name": "sample-instance",
        "namespace": "sample-namespace",
        "host_suffix": "sample-namespace.apps.sample.paas.internal",
        "project": "sample-project",
        "org": "sample-org",
        "owner": "sample-owner",
        "host": "sample-instance.sample-namespace.apps.sample.paas.internal",  # a service's own host
    }
    # A service template also sees its service, compute instance, ingress, extra and storage.
    assert context["ingress"]["host"] == context["instance"]["host"] and context["extra"] == {}
    group = context["profile"]["resource_groups"][0]
    assert (
        group["gpu_model"],
        group["gpu_count"],
        group["cpu"],
        group["memory_gib"],
        group["storage_gib"],
    ) == (
        "A100-SXM4-40GB",
        1,
        8,
        64,
        100,
    )
    assert context["action"] == {"name": "scale", "variables": {"replicas": 3}}
    assert "action" not in sample_context(INPUTS)
    placeholders = sample_context(
        [
            {
                "name": n,
                "type": t,
                "required": True,
                "default": None,
                "options": ["b", "a"] if t == "select" else [],
            }
            for n, t in [
                ("t", "text"),
                ("n", "number"),
                ("b", "boolean"),
                ("s", "select"),
                ("m", "multiline"),
            ]
        ]
    )["inputs"]
    assert placeholders == {"t": "sample", "n": 1, "b": False, "s": "b", "m": "sample"}
    custom = {"name": "p", "display_name": "P", "resource_groups": []}
    assert sample_context([], profile=custom)["profile"] == custom


def test_render_trims_blocks_and_does_not_escape():
    assert render("{% if true %}\n  a: '<b>&'\n  {% endif %}\nc\n", CTX) == "  a: '<b>&'\nc\n"


def test_constructs_a_real_template_uses_still_work_under_the_budget():
    source = """\
{% macro label(key, value) %}{{ key }}={{ value }}{% endmacro %}
{% macro box() %}[{{ caller() }}]{% endmacro %}
{% set ns = namespace(total=0) %}
{% for g in profile.resource_groups if g.gpu_count > 0 %}
{% set ns.total = ns.total + g.gpu_count %}
{% endfor %}
{% call box() %}{{ instance.name }}{% endcall %}
{{ label('gpus', ns.total) }} {{ [1, 2, 3] | join(',') }} {{ {'a': 1} | tojson }} {{ ('x', 'y') | list }}
{{ 'https://' ~ instance.name ~ '.' ~ inputs.domain }} {{ '%s-%03d' % (instance.name, 7) }}
{{ '{}/{}'.format(instance.org, instance.project) }} {{ 'ab' * 3 }} {{ 2 ** 10 }} {{ range(3) | list }}
{% for i in range(3) %}{{ loop.index }}{% endfor %}|{{ inputs.config | indent(2) }}
"""
    assert render(source, CTX) == (
        "[sample-instance]gpus=1 1,2,3 {\"a\": 1} ['x', 'y']\n"
        "https://sample-instance.sample sample-instance-007\n"
        "sample-org/sample-project ababab 1024 [0, 1, 2]\n"
        "123|a: 1\n  b: 2\n"
    )


# ---------------------------------------------------------------------------------- refusals
def test_syntax_error_is_refused_with_its_line_number():
    source = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ instance.name }}\ndata: {a: b}\n"
    check(manifests=source)  # positive control
    text = messages(refusal(manifests=source.replace("{{ instance.name }}", "{{ instance.name }")))

    assert text.startswith("line 4: syntax error: ")


def test_unclosed_block_is_a_syntax_error():
    text = messages(refusal(manifests="{% for x in range(2) %}\n" + doc("v1", "ConfigMap")))
    assert "syntax error" in text and "endfor" in text


def test_undefined_variable_is_refused_and_named():
    text = messages(refusal(manifests=doc("v1", "ConfigMap", "{{ instanse.name }}")))
    assert "line 1" in text and "'instanse' is undefined" in text


def test_undefined_variable_in_a_branch_the_defaults_do_not_take_is_refused():
    source = "{% if inputs.expose == false %}\n{{ replicaz }}\n{% endif %}\n" + doc("v1", "ConfigMap")
    assert "line 2: 'replicaz' is undefined" in messages(refusal(manifests=source))


def test_undeclared_input_is_refused_and_named():
    source = "{% if false %}{{ inputs.replcas }}{% endif %}\n" + doc("v1", "ConfigMap")
    assert "'replcas' is not a declared input" in messages(refusal(manifests=source))


def test_undefined_attribute_at_render_time_is_refused_with_its_line():
    text = render_error("a\nb: {{ profile.resource_groups[0].gpu_modell }}\n")
    assert "line 2" in text and "gpu_modell" in text


SANDBOX_ESCAPES = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ joiner.__init__.__globals__['os'] }}",
    "{{ range.__globals__ }}",
    "{{ instance._private }}",
    "{{ instance['__class__'] }}",
    "{{ instance | attr('__class__') }}",
    "{{ dict.mro() }}",
    "{{ profile.resource_groups | map(attribute='gpu_model.__class__') | list }}",
    "{{ profile.resource_groups | selectattr('__class__') | list }}",
    "{{ profile.resource_groups | sort(attribute='__class__') }}",
    "{% include 'x' %}",
    "{% import 'x' as y %}",
    "{% from 'x' import y %}",
    "{% extends 'x' %}",
]


@pytest.mark.parametrize("source", SANDBOX_ESCAPES)
def test_sandbox_escapes_are_refused_before_rendering(source):
    text = messages(refusal(manifests=source + "\n" + doc("v1", "ConfigMap")))
    assert text.startswith("line 1: ")
    assert "not allowed" in text


RUNTIME_ESCAPES = [
    "{% set a = '__cla' ~ 'ss__' %}{{ ''[a] }}",
    "{{ '' | attr('_' ~ '_class__') }}",
    "{{ profile.resource_groups | map(attribute='_' ~ '_class__') | list }}",
    "{{ '{0.__class__}'.format('') }}",
    "{{ '{x.__class__}'.format_map({'x': 1}) }}",
    "{{ inputs.update({'image': 'evil'}) }}",
    "{{ profile.resource_groups.append(1) }}",
    "{{ ''.maketrans('a', 'b') }}",
]


@pytest.mark.parametrize("source", RUNTIME_ESCAPES)
def test_sandbox_escapes_built_at_runtime_are_refused(source):
    assert "refused by the sandbox" in render_error(source)


RESOURCE_ABUSE = [
    ("{% for i in range(100000) %}{% endfor %}", "range()"),
    ("{{ range(10 ** 12) | length }}", "range()"),
    ("{{ 'a' * 100000000 }}", "repeated string"),
    ("{{ [0] * 100000000 }}", "repeated string or list"),
    ("{{ 2 ** 1000000 }}", "too large"),
    ("{{ 'x'.ljust(10 ** 9) }}", "width"),
    ("{{ 'x' | center(1000000000) }}", "width"),
    ("{{ '%999999999s' % 'x' }}", "format width"),
    ("{{ '{:>999999999}'.format('x') }}", "format width"),
    ("{{ (2).to_bytes(10 ** 9, 'big') }}", "length"),
    ("{{ 'ab' | replace('', 'x' * 900000) }}", "replaced string"),
    ("{{ range(1000) | join('x' * 10000) }}", "joined string"),
    (
        "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "concat",
    ),
    (
        "{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set ns.l = [ns.l, ns.l] %}{% endfor %}",
        "literal",
    ),
    ("{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}", "too much work"),
    ("{% for c in 'x' * 10000 %}{% for d in 'x' * 10000 if d %}{% endfor %}{% endfor %}", "too much work"),
    ("{% set x %}{% for i in range(10000) %}{{ 'y' * 1000 }}{% endfor %}{% endset %}", "too much text"),
    ("{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}{{ m(1) }}", "recursion"),
]


@pytest.mark.parametrize(("source", "reason"), RESOURCE_ABUSE)
def test_sandbox_limits_refuse_resource_abuse(source, reason):
    text = render_error(source)
    assert "sandbox limit" in text
    assert reason in text


def test_sandbox_escape_is_refused_at_publish_even_inside_an_output():
    outputs = [
        {"name": "u", "description": "", "source": {"type": "template", "value": "{{ ''.__class__ }}"}}
    ]
    errors = refusal(outputs=outputs)
    assert "__class__" in messages(errors, "outputs")
    assert "manifests" not in errors


DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: {{ inputs.image }}
"""


def test_invalid_kubernetes_object_containers_as_a_dict_is_refused_with_its_path():
    assert check(manifests=DEPLOYMENT)[0]["spec"]["template"]["spec"]["containers"][0]["name"] == "web"
    broken = DEPLOYMENT.replace("        - name: web\n          image:", "        name: web\n        image:")
    text = messages(refusal(manifests=broken))

    assert text == (
        'Deployment/web: spec.template.spec.containers: expected array, got object {"image": "nginx:1.27", '
        '"name": "web"}'
    )


def test_invalid_kubernetes_object_replicas_as_a_word_is_refused_with_its_path():
    inputs = [dict(i, type="text", default="three") if i["name"] == "replicas" else i for i in INPUTS]
    text = messages(refusal(inputs=inputs))
    assert 'Deployment/sample-instance: spec.replicas: expected integer, got string "three"' in text


def test_unknown_and_missing_fields_are_reported_with_their_path():
    objects = parse(
        doc("v1", "Service", "s", spec={"ports": [{"port": 80, "tragetPort": 8080}]})
        + "---\n"
        + doc("apps/v1", "Deployment", "d", spec={"selector": {}, "template": {"spec": {"containers": [{}]}}})
    )
    with pytest.raises(TemplateError) as info:
        validate_objects(objects, namespace="ns")
    text = messages(info.value.errors)
    assert "Service/s: spec.ports[0]: unknown field(s) 'tragetPort'" in text
    assert "Deployment/d: spec.template.spec.containers[0]: missing required field(s) 'name'" in text


CLUSTER_SCOPED_DOCS = [
    doc("v1", "Namespace"),
    doc("rbac.authorization.k8s.io/v1", "ClusterRole", rules=[]),
    doc(
        "rbac.authorization.k8s.io/v1",
        "ClusterRoleBinding",
        roleRef={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        subjects=[{"kind": "ServiceAccount", "name": "default", "namespace": "x"}],
    ),
    doc("storage.k8s.io/v1", "StorageClass", provisioner="x"),
    doc("v1", "PersistentVolume", spec={"capacity": {"storage": "1Gi"}, "hostPath": {"path": "/"}}),
    doc("scheduling.k8s.io/v1", "PriorityClass", value=1000000000),
    doc("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"),
    doc("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
    doc("authorization.k8s.io/v1", "SubjectAccessReview", spec={}),
    doc("rbac.authorization.k8s.io/v1beta1", "ClusterRole"),  # any version of a cluster-scoped kind
]


@pytest.mark.parametrize("manifest", CLUSTER_SCOPED_DOCS)
def test_cluster_scoped_kinds_are_refused(manifest):
    kind = json.loads(manifest)["kind"]
    text = messages(refusal(manifests=MANIFESTS + "---\n" + manifest))
    assert f"{kind}/x: {kind} is a cluster-scoped kind" in text


def test_cluster_scoped_kind_inside_a_list_is_refused():
    manifest = (
        "apiVersion: v1\nkind: List\nitems:\n  - "
        + doc("v1", "ConfigMap", "ok")
        + "  - "
        + doc("v1", "Namespace")
    )
    assert messages(refusal(manifests=manifest)) == (
        "Namespace/x: Namespace is a cluster-scoped kind; templates may only create namespaced objects"
    )


def test_declared_custom_resource_with_cluster_scope_is_refused():
    custom = [{"apiVersion": "example.com/v1", "kind": "Thing", "scope": "Cluster"}]
    text = messages(refusal(manifests=doc("example.com/v1", "Thing"), custom_resources=custom))
    assert "Thing/x: example.com/v1 Thing is declared as a cluster-scoped custom resource" in text
    check(manifests=doc("example.com/v1", "Thing"), custom_resources=[dict(custom[0], scope="Namespaced")])


def test_create_only_list_and_subresource_kinds_are_refused():
    text = messages(
        refusal(
            manifests=doc("v1", "Binding", target={"name": "n"})
            + "---\n"
            + doc("apps/v1", "DeploymentList", items=[])
            + "---\n"
            + doc("autoscaling/v1", "Scale")
        )
    )
    assert "Binding/x: Binding is create-only" in text
    assert "DeploymentList/x: apps/v1 DeploymentList is a list or subresource kind" in text
    assert "Scale/x: autoscaling/v1 Scale is a list or subresource kind" in text


def test_namespace_override_is_refused_and_the_instance_namespace_accepted():
    other = MANIFESTS.replace(
        "kind: Service\nmetadata:\n", "kind: Service\nmetadata:\n  namespace: kube-system\n"
    )
    text = messages(refusal(manifests=other))
    assert "Service/sample-instance: metadata.namespace 'kube-system' is not allowed" in text

    same = other.replace("kube-system", "{{ instance.namespace }}")
    assert check(manifests=same)[1]["metadata"]["namespace"] == "sample-namespace"


def test_unknown_kind_is_refused_unless_declared_as_a_custom_resource():
    kserve = doc("serving.kserve.io/v1beta1", "InferenceService", "llm", spec={"predictor": {"model": {}}})
    ray = doc("ray.io/v1", "RayCluster", "ray", spec={"headGroupSpec": {}})
    manifests = kserve + "---\n" + ray
    text = messages(refusal(manifests=manifests))
    assert "InferenceService/llm: unknown kind InferenceService (serving.kserve.io/v1beta1)" in text
    assert "RayCluster/ray: unknown kind RayCluster (ray.io/v1)" in text

    declared = [
        {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "scope": "Namespaced"},
        {"apiVersion": "ray.io/v1", "kind": "RayCluster", "scope": "Namespaced"},
    ]
    objects = check(manifests=manifests, custom_resources=declared)
    assert [o["kind"] for o in objects] == ["InferenceService", "RayCluster"]
    # the declaration is per version: another version of the same kind is still unknown
    text = messages(refusal(manifests=doc("ray.io/v2", "RayCluster"), custom_resources=declared))
    assert "unknown kind RayCluster (ray.io/v2)" in text


def test_built_in_kinds_in_other_versions_or_misspelt_are_refused():
    text = messages(
        refusal(manifests=doc("apps/v1beta1", "Deployment") + "---\n" + doc("apps/v1", "Deploymint"))
    )
    assert "apps/v1beta1 Deployment is not served by Kubernetes 1.37; use apps/v1" in text
    assert "unknown kind Deploymint in the built-in API group apps" in text


def test_custom_resources_are_checked_for_shape_only():
    declared = [{"apiVersion": "ray.io/v1", "kind": "RayCluster", "scope": "Namespaced"}]
    validate_objects(
        parse(doc("ray.io/v1", "RayCluster", spec={"anything": [1, {"goes": True}]})),
        namespace="ns",
        custom_resources=declared,
        allowed_custom_resources=_allowed(declared),
    )
    with pytest.raises(TemplateError) as info:
        validate_objects(
            [{"apiVersion": "ray.io/v1", "kind": "RayCluster", "metadata": {}}],
            namespace="ns",
            custom_resources=declared,
            allowed_custom_resources=_allowed(declared),
        )
    assert "metadata.name is required" in messages(info.value.errors)


def test_duplicate_objects_are_refused():
    text = messages(refusal(manifests=doc("v1", "ConfigMap") + "---\n" + doc("v1", "ConfigMap")))
    assert "ConfigMap/x: defined more than once" in text


# ------------------------------------------------------------------------------------- YAML
def test_parse_skips_empty_documents_and_flattens_lists():
    rendered = (
        "---\n---\n# only a comment\n---\n"
        + doc("v1", "ConfigMap", "a", data={"when": "2024-01-01"})
        + "---\napiVersion: v1\nkind: List\nitems:\n"
        + "  - {apiVersion: v1, kind: Secret, metadata: {name: b}}\n"
        + "  - apiVersion: v1\n    kind: List\n"
        + "    items: [{apiVersion: v1, kind: ConfigMap, metadata: {name: c}}]\n"
        + "---\n"
        + "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: d}\ndata: {day: 2024-01-01}\n"
    )
    objects = parse(rendered)
    assert [o["metadata"]["name"] for o in objects] == ["a", "b", "c", "d"]
    assert objects[3]["data"]["day"] == "2024-01-01"  # timestamps stay strings, as in JSON
    validate_objects(objects, namespace="ns")


@pytest.mark.parametrize(
    ("rendered", "expected"),
    [
        ("a: [1\n", "YAML error at line 2"),
        ("a: &x [1]\nb: *x\n", "aliases"),
        ("- 1\n- 2\n", "document 1, line 1: must be a mapping"),
        ("apiVersion: v1\nkind: ConfigMap\n", "metadata is required"),
        ("kind: ConfigMap\nmetadata: {name: a}\n", "apiVersion is required"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {generateName: a-}\n", "metadata.name is required"),
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {x: !!binary aGk=}\n",
            "data.x: a bytes",
        ),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {1: x}\n", "key 1 must be a string"),
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {x: !!python/name:os.system }\n",
            "YAML",
        ),
        ("apiVersion: v2\nkind: List\nitems: []\n", "a List needs apiVersion v1"),
    ],
)
def test_parse_refuses_bad_documents(rendered, expected):
    with pytest.raises(TemplateError) as info:
        parse(rendered)
    assert expected in messages(info.value.errors)


# ------------------------------------------------------------------------------- declarations
def test_valid_declarations_pass():
    validate_declarations(
        inputs=INPUTS,
        outputs=OUTPUTS,
        actions=ACTIONS,
        custom_resources=[{"apiVersion": "ray.io/v1", "kind": "RayCluster", "scope": "Namespaced"}],
    )


def text_input(**overrides):
    return {
        "name": "x",
        "type": "text",
        "required": False,
        "default": None,
        "options": [],
        "description": "",
    } | (overrides)


@pytest.mark.parametrize(
    ("field", "declarations", "expected"),
    [
        ("inputs", [text_input(name="Bad-Name")], "name must match"),
        ("inputs", [text_input(name="1abc")], "name must match"),
        ("inputs", [text_input(name="a" * 64)], "name must match"),
        ("inputs", [text_input(name="items")], "reserved"),
        ("inputs", [text_input(name="_hidden")], "cannot be read in the template sandbox"),
        ("inputs", [text_input(), text_input()], "input name 'x' is used more than once"),
        ("inputs", [text_input(type="date")], "type must be one of"),
        ("inputs", [text_input(type="select")], "select needs a non-empty list of options"),
        ("inputs", [text_input(type="select", options=["a", "a"])], "options must be unique"),
        ("inputs", [text_input(options=["a"])], "options are only allowed for select"),
        ("inputs", [text_input(type="number", default="3")], "default must be a number"),
        ("inputs", [text_input(type="number", default=True)], "default must be a number"),
        ("inputs", [text_input(type="boolean", default="true")], "default must be true or false"),
        ("inputs", [text_input(type="select", options=["a"], default="b")], "default must be one of: a"),
        ("inputs", [text_input(default=3)], "default must be a string"),
        ("inputs", [text_input(default="two\nlines")], "default must be a single line"),
        ("inputs", [text_input(required="yes")], "required must be true or false"),
        ("inputs", [text_input(generate=True)], "generate is only allowed for secret"),
        ("inputs", [text_input(description=5)], "description must be a string"),
        ("inputs", [text_input(colour="red")], "unknown key(s) 'colour'"),
        (
            "inputs",
            [text_input(name="cluster_details", type="select", options=["a"])],
            "must be of type text",
        ),
        ("inputs", [text_input(name="cluster_details", default="a,,b")], "comma-separated"),
        ("inputs", "x", "inputs must be a list"),
        ("inputs", ["x"], "input #1: must be an object"),
        ("outputs", [{"name": "u", "source": {"type": "magic"}}], "source type must be one of"),
        ("outputs", [{"name": "U", "source": {"type": "template", "value": "x"}}], "name must match"),
        ("outputs", [{"name": "u", "source": {"type": "template", "value": "{{ x"}}], "syntax error"),
        (
            "outputs",
            [{"name": "u", "source": {"type": "template", "value": "a"}}] * 2,
            "output name 'u' is used more than once",
        ),
        (
            "outputs",
            [{"name": "u", "source": {"type": "field", "apiVersion": "v1", "kind": "Service", "name": "s"}}],
            "path must be a non-empty string",
        ),
        (
            "outputs",
            [
                {
                    "name": "u",
                    "source": {
                        "type": "field",
                        "apiVersion": "v1",
                        "kind": "Service",
                        "name": "s",
                        "path": "a..b",
                    },
                }
            ],
            "invalid path",
        ),
        ("outputs", [{"name": "u", "source": {"type": "secret", "name": "s", "key": "a b"}}], "source key"),
        ("outputs", [{"name": "u", "source": {"type": "secret", "name": "", "key": "k"}}], "source name"),
        ("actions", [{"name": "Start", "variables": []}], "name must match"),
        ("actions", [{"name": "a"}, {"name": "a"}], "action name 'a' is used more than once"),
        ("actions", [{"name": "a", "variables": "x"}], "variables must be a list"),
        (
            "actions",
            [{"name": "a", "variables": [{"name": "v", "type": "number", "default": 1}] * 2}],
            "action 'a': variable name 'v' is used more than once",
        ),
        (
            "actions",
            [{"name": "a", "variables": [{"name": "v", "type": "number", "default": "x"}]}],
            "action 'a': variable 'v': default must be a number",
        ),
        (
            "actions",
            [{"name": "a", "variables": [{"name": "v", "type": "text", "required": True}]}],
            "unknown key(s) 'required'",
        ),
        ("custom_resources", [{"apiVersion": "v1", "kind": "Thing", "scope": "Namespaced"}], "group/version"),
        (
            "custom_resources",
            [{"apiVersion": "ray/v1", "kind": "Thing", "scope": "Namespaced"}],
            "with a dot",
        ),
        (
            "custom_resources",
            [{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "scope": "Namespaced"}],
            "built-in Kubernetes API group",
        ),
        (
            "custom_resources",
            [{"apiVersion": "ray.io/v1", "kind": "raycluster", "scope": "Namespaced"}],
            "CamelCase",
        ),
        (
            "custom_resources",
            [{"apiVersion": "ray.io/v1", "kind": "RayCluster", "scope": "Global"}],
            "scope must",
        ),
        (
            "custom_resources",
            [{"apiVersion": "ray.io/v1", "kind": "RayCluster", "scope": "Namespaced"}] * 2,
            "declared more than once",
        ),
    ],
)
def test_declaration_errors_are_refused(field, declarations, expected):
    arguments = {"inputs": [], "outputs": [], "actions": [], "custom_resources": []} | {field: declarations}
    with pytest.raises(TemplateError) as info:
        validate_declarations(**arguments)
    assert list(info.value.errors) == [field]
    assert expected in messages(info.value.errors, field)


def test_output_sources_must_name_a_kind_a_template_can_create():
    outputs = [
        {
            "name": "n",
            "description": "",
            "source": {"type": "field", "apiVersion": "v1", "kind": "Node", "name": "x", "path": "status"},
        },
        {
            "name": "r",
            "description": "",
            "source": {
                "type": "field",
                "apiVersion": "ray.io/v1",
                "kind": "RayCluster",
                "name": "x",
                "path": "a",
            },
        },
    ]
    text = messages(refusal(outputs=outputs), "outputs")
    assert "output 'n': source: Node is a cluster-scoped kind" in text
    assert "output 'r': source: unknown kind RayCluster" in text


def test_publish_collects_errors_of_every_field_at_once():
    errors = refusal(
        manifests=doc("v1", "Namespace"),
        inputs=[text_input(name="Bad")],
        outputs=[{"name": "u", "description": "", "source": {"type": "template", "value": "{{ nope }}"}}],
        actions=[{"name": "a", "variables": [{"name": "v", "type": "boolean", "default": 1}]}],
        custom_resources=[{"apiVersion": "x/v1", "kind": "K", "scope": "Namespaced"}],
    )
    assert set(errors) == {"manifests", "inputs", "outputs", "actions", "custom_resources"}
    assert "Namespace/x: Namespace is a cluster-scoped kind" in messages(errors)
    assert "output 'u': value: line 1: 'nope' is undefined" in messages(errors, "outputs")


def test_an_output_template_syntax_error_is_reported_once():
    outputs = [
        {"name": "u", "description": "", "source": {"type": "template", "value": "x\n{{ inputs.domain"}}
    ]
    assert refusal(outputs=outputs) == {
        "outputs": [
            "output 'u': source value: line 2: syntax error: "
            "unexpected end of template, expected 'end of print statement'."
        ]
    }


def test_unsupported_kubernetes_version_is_a_platform_error():
    with pytest.raises(ValueError, match=r"no schemas for Kubernetes 9\.99"):
        check_version(
            manifests="", inputs=[], outputs=[], actions=[], custom_resources=[], kubernetes_version="9.99.0"
        )


# ------------------------------------------------------------------------------------ actions
def test_action_rendering_uses_the_action_variables():
    assert check()[0]["spec"]["replicas"] == 2  # no action: the input
    assert render(
        "{{ action.name }}: {{ action.variables.replicas }}",
        sample_context(INPUTS, actions=ACTIONS, action="scale"),
    ) == ("scale: 3")
    # a mistake only reached when rendering for the 'scale' action is reported for that action
    broken = MANIFESTS.replace(
        "{% set replicas = action.variables.replicas %}", "{% set replicas = 'many' %}"
    )
    text = messages(refusal(manifests=broken))
    assert (
        "when rendered for action 'scale': Deployment/sample-instance: spec.replicas: expected integer"
        in text
    )
    assert "action 'stop'" not in text and "action 'start'" not in text


def test_action_variables_without_default_get_a_placeholder_and_resolve_at_run_time():
    actions = [{"name": "resize", "variables": [{"name": "size", "type": "select", "options": ["s", "m"]}]}]
    assert sample_context([], actions=actions, action="resize")["action"]["variables"] == {"size": "s"}
    assert resolve_action_variables(actions[0], {"size": "m"}) == {"size": "m"}
    assert resolve_action_variables(actions[0], {}) == {"size": None}
    with pytest.raises(TemplateError) as info:
        resolve_action_variables(actions[0], {"size": "xl", "other": 1})
    assert info.value.errors == {"other": ["is not a declared variable"], "size": ["must be one of: s, m"]}


def test_sample_context_refuses_an_unknown_action():
    with pytest.raises(ValueError, match="no action named 'reboot'"):
        sample_context(INPUTS, actions=ACTIONS, action="reboot")


# ------------------------------------------------------------------------------ resolve_inputs
def test_resolve_inputs_applies_defaults_and_coerces_types():
    resolved = resolve_inputs(
        INPUTS, {"replicas": "3", "expose": "false", "domain": "example.org", "size": "large"}
    )
    password = resolved.pop("password")
    assert resolved == {
        "image": "nginx:1.27",
        "replicas": 3,
        "expose": False,
        "domain": "example.org",
        "size": "large",
        "config": "a: 1\nb: 2",
        "cluster_details": None,
    }
    assert isinstance(password, str) and len(password) == 24  # token_urlsafe(18)
    assert resolve_inputs(INPUTS, {"domain": "d"})["password"] != password


@pytest.mark.parametrize(
    ("given", "value"),
    [(4, 4), (" 4 ", 4), ("2.5", 2.5), (2.5, 2.5), ("-1e3", -1000.0)],
)
def test_resolve_inputs_coerces_numbers(given, value):
    resolved = resolve_inputs(INPUTS, {"domain": "d", "replicas": given})["replicas"]
    assert resolved == value and type(resolved) is type(value)


@pytest.mark.parametrize(("given", "value"), [(True, True), (False, False), ("TRUE", True), ("false", False)])
def test_resolve_inputs_coerces_booleans(given, value):
    assert resolve_inputs(INPUTS, {"domain": "d", "expose": given})["expose"] is value


@pytest.mark.parametrize(
    ("given", "errors"),
    [
        ({}, {"domain": ["is required"]}),
        ({"domain": ""}, {"domain": ["is required"]}),
        ({"domain": "d", "replicas": "three"}, {"replicas": ["must be a number"]}),
        ({"domain": "d", "replicas": True}, {"replicas": ["must be a number"]}),
        ({"domain": "d", "replicas": "nan"}, {"replicas": ["must be a number"]}),
        ({"domain": "d", "expose": "yes"}, {"expose": ["must be true or false"]}),
        ({"domain": "d", "size": "medium"}, {"size": ["must be one of: small, large"]}),
        ({"domain": "a\nkind: ClusterRole"}, {"domain": ["must be a single line of text"]}),
        ({"domain": 5}, {"domain": ["must be a string"]}),
        ({"domain": "d", "colour": "red"}, {"colour": ["is not a declared input"]}),
        (
            {"domain": "d", "cluster_details": "a,,b"},
            {"cluster_details": ["must be a comma-separated list of cluster names"]},
        ),
    ],
)
def test_resolve_inputs_refuses_bad_values_keyed_by_input(given, errors):
    with pytest.raises(TemplateError) as info:
        resolve_inputs(INPUTS, given)
    assert info.value.errors == errors


def test_resolve_inputs_keeps_given_secrets_and_optional_empties():
    declared = [
        {"name": "token", "type": "secret", "required": False, "default": None, "generate": False},
        {"name": "key", "type": "secret", "required": False, "default": None, "generate": True},
        {"name": "notes", "type": "multiline", "required": False, "default": None},
        {"name": "cluster_details", "type": "text", "required": False, "default": None},
    ]
    resolved = resolve_inputs(declared, {"key": "mine", "notes": "x\ny", "cluster_details": "gpu-a, gpu-b"})
    assert resolved == {"token": None, "key": "mine", "notes": "x\ny", "cluster_details": "gpu-a, gpu-b"}


# ----------------------------------------------------------------------------------- read_path
INGRESS = {
    "metadata": {"name": "web", "annotations": {"example.com/url": "https://x"}},
    "spec": {"rules": [{"host": "a.example.org"}, {"host": "b.example.org"}], "tls": []},
    "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}},
}


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("spec.rules[0].host", "a.example.org"),
        ("spec.rules[1].host", "b.example.org"),
        ("status.loadBalancer.ingress[0].ip", "10.0.0.1"),
        ('metadata.annotations["example.com/url"]', "https://x"),
        ("metadata.annotations['example.com/url']", "https://x"),
        ("spec.rules", [{"host": "a.example.org"}, {"host": "b.example.org"}]),
        ("spec.rules[2].host", None),
        ("spec.tls[0]", None),
        ("spec.missing.deeper", None),
        ("metadata.name.first", None),
        ("spec[0]", None),
        ("spec.rules.host", None),
    ],
)
def test_read_path(path, value):
    assert read_path(INGRESS, path) == value


def test_read_path_reads_list_roots_and_refuses_malformed_paths():
    assert read_path([{"a": 1}], "[0].a") == 1
    for path in ("", "a..b", "a.", ".a", "a[x]", "a[0]b", "a[-1]"):
        with pytest.raises(ValueError):
            read_path(INGRESS, path)


# ---------------------------------------------------------------------- the cluster-scoped list
def test_every_built_in_kind_of_the_schemas_is_classified():
    """A kind of the pinned schemas that is in neither list would be refused as 'list or
    subresource kind'; this keeps that refusal honest for every top-level type."""
    subresource_only = {
        ("autoscaling", "Scale"),
        ("policy", "Eviction"),
        ("authentication.k8s.io", "TokenRequest"),
    }
    kinds = _builtin_kinds(templating.DEFAULT_KUBERNETES_VERSION)
    assert len(kinds) > 150
    unclassified = {
        (group, kind)
        for group, _version, kind in kinds
        if (group, kind) not in CLUSTER_SCOPED_KINDS | NAMESPACED_KINDS | subresource_only
        and not (
            kind.endswith("List") and (group, kind[: -len("List")]) in CLUSTER_SCOPED_KINDS | NAMESPACED_KINDS
        )
    }
    assert unclassified == set()


def test_scope_lists_are_consistent():
    assert not CLUSTER_SCOPED_KINDS & NAMESPACED_KINDS
    assert CREATE_ONLY_KINDS <= NAMESPACED_KINDS
    assert {
        ("", "Namespace"),
        ("rbac.authorization.k8s.io", "ClusterRole"),
        ("storage.k8s.io", "StorageClass"),
    } <= (CLUSTER_SCOPED_KINDS)
    assert {("apps", "Deployment"), ("", "Secret"), ("networking.k8s.io", "Ingress")} <= NAMESPACED_KINDS


def test_schemas_used_are_the_pinned_kubernetes_version():
    files = resources.files("kubernetes_validate") / "kubernetes-json-schema" / "v1.37.0-local-strict"
    assert (files / "deployment-apps-v1.json").is_file()
    assert _schema_version("1.37.0") == "1.37.0"
