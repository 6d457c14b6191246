"""The system catalog's data files (catalog/system_catalog/): catalog.yaml's structure, the profiles the
platform promises, and every template version rendered (by default and for every action, with every
compute profile and a spread of input values) into namespaced, schema-valid Kubernetes objects whose
pods meet Pod Security "restricted".

Pure pytest, no Django, no database, no cluster. The rendering mirrors the platform's template engine:
Jinja2's ImmutableSandboxedEnvironment with StrictUndefined, trim_blocks and lstrip_blocks; documents
parsed with yaml.safe_load_all; objects validated offline with kubernetes_validate (strict, Kubernetes
1.37); custom resources only when the version declares them. When catalog.templating provides
check_version, every version also goes through it.
"""

from __future__ import annotations

import copy
import functools
import importlib
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import jinja2
import kubernetes_validate
import pytest
import yaml
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = Path(__file__).resolve().parents[2]
CATALOG_DIR = ROOT / "catalog" / "system_catalog"
CATALOG_FILE = CATALOG_DIR / "catalog.yaml"
KUBERNETES_VERSION = "1.37.0"
#: The keys of a profile's ``cost:`` block (catalog/system.py COST_KEYS).
COST_KEYS = {"currency", "amount", "period", "billing_model", "stopped_amount"}
NAMESPACE = "sample-namespace"
INSTANCE = {
    "name": "sample-instance",
    "namespace": NAMESPACE,
    "host_suffix": f"{NAMESPACE}.apps.sample.paas.internal",
    "host": f"sample-instance.{NAMESPACE}.apps.sample.paas.internal",
    "project": "sample-project",
    "org": "sample-org",
    "owner": "owner@example.com",
}
HOST = INSTANCE["host"]
#: The platform's ingress settings as a service template sees them (CONTRACTS13.md), both ways round.
INGRESS_VARIANTS = [
    {"host": HOST, "class_name": "", "tls": True, "scheme": "https", "url": f"https://{HOST}"},
    {"host": HOST, "class_name": "nginx", "tls": False, "scheme": "http", "url": f"http://{HOST}"},
]


def _service_keys(ingress: dict, storage_class: str = "") -> dict:
    """What a service template sees besides inputs/instance/profile/action (CONTRACTS13.md)."""
    return {
        "service": {**INSTANCE, "type": "custom", "url": ingress["url"]},
        "compute_instance": {
            "name": "sample-compute",
            "namespace": NAMESPACE,
            "profile": "sample",
            "resource_groups": [],
        },
        "ingress": dict(ingress),
        "extra": {"SAMPLE_EXTRA": "1"},
        "storage": [],
        "storage_class": storage_class,
    }


SAMPLE_PROFILE = {
    "name": "sample",
    "display_name": "Sample",
    "resource_groups": [
        {
            "gpu_model": "A100-SXM4-40GB",
            "gpu_count": 1,
            "mig_profile": "",
            "mig_count": 0,
            "cpu": 8,
            "memory_gib": 32,
            "storage_gib": 50,
        }
    ],
}

SLUG = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
INPUT_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
QUANTITY = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E|[eE][+-]?\d+)?$")
MIG_PROFILE = re.compile(r"^\d+g\.\d+gb$")
FORBIDDEN_TAGS = re.compile(r"{%-?\s*(include|import|from|extends)\b")

INPUT_TYPES = {"text", "number", "boolean", "select", "secret", "multiline"}
FLAVORS = {"namespace", "virtual_cluster", "vm", "bare_metal", "dedicated_cluster"}
SERVICE_TYPES = {"notebook", "inference", "jobs", "custom"}
CLUSTER_SCOPED_KINDS = {
    "APIService",
    "CertificateSigningRequest",
    "ClusterRole",
    "ClusterRoleBinding",
    "ClusterTrustBundle",
    "ComponentStatus",
    "CSIDriver",
    "CSINode",
    "CustomResourceDefinition",
    "DeviceClass",
    "FlowSchema",
    "IngressClass",
    "IPAddress",
    "MutatingAdmissionPolicy",
    "MutatingAdmissionPolicyBinding",
    "MutatingWebhookConfiguration",
    "Namespace",
    "Node",
    "PersistentVolume",
    "PriorityClass",
    "PriorityLevelConfiguration",
    "RuntimeClass",
    "SelfSubjectAccessReview",
    "SelfSubjectReview",
    "SelfSubjectRulesReview",
    "ServiceCIDR",
    "StorageClass",
    "StorageVersion",
    "StorageVersionMigration",
    "SubjectAccessReview",
    "TokenReview",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "ValidatingWebhookConfiguration",
    "VolumeAttachment",
    "VolumeAttributesClass",
}
WORKLOAD_POD_SPEC_PATHS = {
    "Pod": ("spec",),
    "PodTemplate": ("template", "spec"),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
    "image",
}

REQUIRED_COMPUTE = {  # name: (GPUs, CPU, storage GiB) summed over the groups
    "small": (1, 26, 100),
    "medium": (8, 208, 800),
    "large": (32, 832, 3200),
}
REQUIRED_SERVICES = {  # name: (service_type, template)
    "jupyter-notebook": ("notebook", "jupyter-notebook"),
    "training-job": ("jobs", "training-job"),
    "fine-tuning-job": ("jobs", "fine-tuning-job"),
    "inference-kserve": ("inference", "kserve-inference"),
    "ray-cluster": ("custom", "ray-cluster"),
    "ray-serve": ("inference", "ray-serve"),
    "nvidia-nim": ("inference", "nvidia-nim"),
    "mlops-platform": ("custom", "mlops-platform"),
    "kubernetes-yaml-app": ("custom", "kubernetes-yaml-app"),
}
NOTEBOOK_PROFILES = [
    "Minimal",
    "Data Science",
    "Spark",
    "TensorFlow",
    "TensorFlow with CUDA",
    "PyTorch",
    "PyTorch with CUDA",
]


# --- loading ----------------------------------------------------------------------------------------


def _load_catalog() -> dict:
    data = yaml.safe_load(CATALOG_FILE.read_text())
    assert isinstance(data, dict), f"{CATALOG_FILE} must hold a mapping"
    return data


CATALOG = _load_catalog()
VERSIONS = [
    (template["name"], version["version"], version)
    for template in CATALOG.get("templates") or []
    for version in template.get("versions") or []
]


def _manifests(version: dict) -> str:
    return (CATALOG_DIR / version["manifests"]).read_text()


def _profile_context(profile: dict) -> dict:
    return {
        "name": profile["name"],
        "display_name": profile["display_name"],
        "resource_groups": copy.deepcopy(profile["resource_groups"]),
    }


def _snapshot_shape(profile: dict) -> dict:
    """The same profile as the database snapshot shows it: CPU as cpu_cores (a decimal string), and
    no GPU model or MIG profile as None."""
    context = _profile_context(profile)
    for group in context["resource_groups"]:
        group["cpu_cores"] = str(group.pop("cpu"))
        for key in ("gpu_model", "mig_profile"):
            group[key] = group[key] or None
    return context


def _totals(profile: dict) -> dict:
    groups = profile["resource_groups"]
    return {
        key: sum(Decimal(str(group[key])) for group in groups)
        for key in ("gpu_count", "mig_count", "cpu", "memory_gib", "storage_gib")
    }


def _error_message(exc: BaseException) -> str:
    return getattr(exc, "message", None) or str(exc)


# --- catalog structure ------------------------------------------------------------------------------


def test_catalog_has_exactly_its_sections():
    assert set(CATALOG) == {
        "allowed_custom_resources",
        "templates",
        "compute_profiles",
        "service_profiles",
        "applications",
    }
    for section in CATALOG.values():
        assert isinstance(section, list) and section


def _allowed_kinds() -> frozenset[tuple[str, str]]:
    return frozenset((item["group"], item["kind"]) for item in CATALOG["allowed_custom_resources"])


def test_the_catalog_allows_exactly_the_custom_resources_its_templates_declare():
    """A shipped template's custom resources are refused unless allowed; the catalog allows those and
    no more (loading it is an operator's act: it should not widen the list beyond its own needs)."""
    for item in CATALOG["allowed_custom_resources"]:
        assert set(item) == {"group", "kind", "description"} and item["description"].strip(), item
    declared = {
        (resource["apiVersion"].split("/")[0], resource["kind"])
        for _name, _number, version in VERSIONS
        for resource in version["custom_resources"]
    }
    assert declared == _allowed_kinds()


def _check_unique_slugs(items: list[dict], what: str) -> None:
    names = [item.get("name") for item in items]
    bad = [name for name in names if not isinstance(name, str) or not SLUG.match(name) or len(name) > 63]
    assert not bad, f"{what}: names that are not slugs: {bad}"
    duplicates = sorted({name for name in names if names.count(name) > 1})
    assert not duplicates, f"{what}: duplicate names: {duplicates}"


def _check_input_value(declaration: dict, value: Any, where: str) -> None:
    kind = declaration["type"]
    if value is None:
        return
    if kind == "number":
        assert isinstance(value, int | float) and not isinstance(value, bool), f"{where}: not a number"
    elif kind == "boolean":
        assert isinstance(value, bool), f"{where}: not a boolean"
    elif kind == "select":
        assert value in declaration["options"], f"{where}: {value!r} is not one of the options"
    else:
        assert isinstance(value, str), f"{where}: not text"


def test_templates_are_declared_in_the_engine_format():
    _check_unique_slugs(CATALOG["templates"], "templates")
    for template in CATALOG["templates"]:
        assert set(template) == {"name", "display_name", "description", "versions"}, template["name"]
        assert template["display_name"].strip() and template["description"].strip(), template["name"]
        versions = [version["version"] for version in template["versions"]]
        assert versions and len(versions) == len(set(versions)), f"{template['name']}: versions {versions}"
    for name, number, version in VERSIONS:
        where = f"{name}@{number}"
        assert set(version) == {
            "version",
            "manifests",
            "kubernetes_version",
            "inputs",
            "outputs",
            "actions",
            "custom_resources",
        }, where
        assert SLUG.match(number), where
        assert version["kubernetes_version"] == KUBERNETES_VERSION, where
        assert version["manifests"] == f"templates/{name}/{number}.yaml.j2", where
        path = (CATALOG_DIR / version["manifests"]).resolve()
        assert path.is_relative_to(CATALOG_DIR.resolve()) and path.is_file(), f"{where}: {path} is missing"
        source = path.read_text()
        assert source.strip(), f"{where}: empty manifests"
        assert not FORBIDDEN_TAGS.search(source), f"{where}: include/import/extends are not allowed"

        input_names = [item["name"] for item in version["inputs"]]
        assert len(input_names) == len(set(input_names)), f"{where}: duplicate inputs"
        for item in version["inputs"]:
            at = f"{where} input {item.get('name')}"
            assert INPUT_NAME.match(item["name"]), at
            assert {"name", "type", "required", "default", "options", "description"} <= set(item), at
            assert set(item) <= {
                "name",
                "type",
                "required",
                "default",
                "options",
                "description",
                "generate",
            }, at
            assert item["type"] in INPUT_TYPES, at
            assert isinstance(item["required"], bool) and item["description"].strip(), at
            if item["type"] == "select":
                assert item["options"] and all(isinstance(o, str) for o in item["options"]), at
            else:
                assert item["options"] == [], f"{at}: options belong to select inputs only"
            if "generate" in item:
                assert item["type"] == "secret" and isinstance(item["generate"], bool), at
            if item["type"] == "secret":
                assert item["default"] is None, f"{at}: secret values are never written in the catalog"
            if item["name"] == "cluster_details":  # reserved: comma-separated cluster names
                assert item["type"] == "text" and not item["required"] and not item["default"], at
            _check_input_value(item, item["default"], at)

        output_names = [item["name"] for item in version["outputs"]]
        assert len(output_names) == len(set(output_names)), f"{where}: duplicate outputs"
        for item in version["outputs"]:
            at = f"{where} output {item.get('name')}"
            assert set(item) == {"name", "description", "source"} and INPUT_NAME.match(item["name"]), at
            source = item["source"]
            expected = {
                "field": {"type", "apiVersion", "kind", "name", "path"},
                "secret": {"type", "name", "key"},
                "template": {"type", "value"},
            }.get(source.get("type"))
            assert expected is not None and set(source) == expected, f"{at}: {source}"
            assert all(isinstance(v, str) and v.strip() for v in source.values()), at

        action_names = [item["name"] for item in version["actions"]]
        assert len(action_names) == len(set(action_names)), f"{where}: duplicate actions"
        for item in version["actions"]:
            at = f"{where} action {item.get('name')}"
            assert set(item) == {"name", "description", "variables"} and INPUT_NAME.match(item["name"]), at
            for variable in item["variables"]:
                assert (
                    {"name", "type", "default", "description"}
                    <= set(variable)
                    <= {
                        "name",
                        "type",
                        "default",
                        "description",
                        "options",
                    }
                ), at
                assert INPUT_NAME.match(variable["name"]) and variable["type"] in INPUT_TYPES, at
                if variable["type"] == "select":
                    assert variable.get("options") and variable["default"] in variable["options"], at
                _check_input_value({"options": [], **variable}, variable["default"], at)

        for resource in version["custom_resources"]:
            assert set(resource) == {"apiVersion", "kind", "scope"}, f"{where}: {resource}"
            assert resource["scope"] == "Namespaced", f"{where}: {resource} is not namespaced"
            assert "/" in resource["apiVersion"] and "." in resource["apiVersion"].split("/")[0], resource
            assert resource["kind"] not in CLUSTER_SCOPED_KINDS, resource


def test_compute_profiles_are_well_formed():
    profiles = CATALOG["compute_profiles"]
    _check_unique_slugs(profiles, "compute profiles")
    versions = {(name, number) for name, number, _ in VERSIONS}
    base = {
        "name",
        "display_name",
        "description",
        "flavor",
        "template",
        "version",
        "resource_groups",
        "allocation_strategy",
        "cost",
        "labels",
        "annotations",
        "icon_url",
        "readme",
        "published",
    }
    for profile in profiles:
        where = f"compute profile {profile['name']}"
        assert base <= set(profile) <= base | {"warm_pool_size"}, where
        assert profile["display_name"].strip() and profile["description"].strip(), where
        assert profile["readme"].strip().startswith("#"), f"{where}: the readme is markdown with a heading"
        assert profile["flavor"] in FLAVORS, where
        assert (profile["template"], profile["version"]) in versions, f"{where}: unknown template version"
        assert profile["published"] is True, where
        assert isinstance(profile["icon_url"], str), where
        if profile["allocation_strategy"] == "warm_pool":
            assert isinstance(profile.get("warm_pool_size"), int) and profile["warm_pool_size"] >= 1, where
        else:
            assert profile["allocation_strategy"] == "on_demand", where
            assert not profile.get("warm_pool_size"), f"{where}: on-demand profiles keep no warm pool"
        cost = profile["cost"]
        assert {"currency", "amount", "period"} <= set(cost) <= COST_KEYS, where
        assert re.match(r"^[A-Z]{3}$", cost["currency"]) and cost["period"] in {"hour", "day", "month"}, where
        assert isinstance(cost["amount"], str) and Decimal(cost["amount"]) > 0, where
        # stopped: storage only, so cheaper than running; reserved profiles have no stopped price
        assert cost.get("billing_model", "on_demand") in {"on_demand", "reserved"}, where
        stopped = Decimal(cost.get("stopped_amount", "0"))
        assert 0 <= stopped < Decimal(cost["amount"]), where
        assert not (cost.get("billing_model") == "reserved" and stopped), where
        for field in ("labels", "annotations"):
            mapping = profile[field]
            assert isinstance(mapping, dict), where
            assert all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()), where
        assert all(LABEL_KEY.match(k) and LABEL_VALUE.match(v) for k, v in profile["labels"].items()), where
        assert profile["resource_groups"], f"{where}: needs a resource group"
        for index, group in enumerate(profile["resource_groups"], start=1):
            at = f"{where} group {index}"
            assert set(group) == {
                "gpu_model",
                "gpu_count",
                "mig_profile",
                "mig_count",
                "cpu",
                "memory_gib",
                "storage_gib",
            }, at
            for key in ("gpu_count", "mig_count", "memory_gib", "storage_gib"):
                assert isinstance(group[key], int) and group[key] >= 0, f"{at}: {key}"
            assert isinstance(group["cpu"], int | float) and group["cpu"] > 0 and group["memory_gib"] > 0, at
            assert not (group["gpu_count"] and group["mig_count"]), f"{at}: whole GPUs or MIG slices"
            assert bool(group["gpu_count"]) == bool(group["gpu_model"]), (
                f"{at}: GPU model and count go together"
            )
            assert bool(group["mig_count"]) == bool(group["mig_profile"]), f"{at}: MIG profile and count"
            if group["mig_profile"]:
                assert MIG_PROFILE.match(group["mig_profile"]), at
        assert _totals(profile)["storage_gib"] > 0, f"{where}: the workspace volume needs storage"


def test_the_promised_compute_profiles_exist():
    profiles = {profile["name"]: profile for profile in CATALOG["compute_profiles"]}
    for name, (gpus, cpu, storage) in REQUIRED_COMPUTE.items():
        assert name in profiles, f"missing compute profile {name}"
        totals = _totals(profiles[name])
        assert (totals["gpu_count"], totals["cpu"], totals["storage_gib"]) == (gpus, cpu, storage), name
        assert profiles[name]["flavor"] == "namespace", name
    assert (
        profiles["small"]["allocation_strategy"] == "warm_pool" and profiles["small"]["warm_pool_size"] == 2
    )
    assert profiles["small"]["resource_groups"][0]["gpu_model"] == "A100-SXM4-40GB"
    assert profiles["medium"]["resource_groups"][0]["gpu_model"] == "A100-SXM4-40GB"
    assert "H100" in profiles["large"]["resource_groups"][0]["gpu_model"]

    mig = [p for p in profiles.values() if _totals(p)["mig_count"] > 0 and _totals(p)["gpu_count"] == 0]
    assert mig, "missing a MIG slice profile"
    assert any(g["mig_profile"] == "1g.10gb" for p in mig for g in p["resource_groups"])

    cpu_only = [
        p
        for p in profiles.values()
        if _totals(p)["gpu_count"] == 0 and _totals(p)["mig_count"] == 0 and p["flavor"] == "namespace"
    ]
    assert cpu_only, "missing a CPU-only namespace profile"

    hetero = profiles.get("hetero-a100-h100")
    assert hetero is not None, "missing the heterogeneous example profile"
    models = sorted((g["gpu_model"], g["gpu_count"]) for g in hetero["resource_groups"])
    assert len(models) == 2 and [count for _, count in models] == [8, 8], models
    assert "A100" in models[0][0] and "H100" in models[1][0], models


def test_service_profiles_are_well_formed():
    profiles = CATALOG["service_profiles"]
    _check_unique_slugs(profiles, "service profiles")
    declared = {(name, number): version for name, number, version in VERSIONS}
    keys = {
        "name",
        "display_name",
        "description",
        "service_type",
        "template",
        "version",
        "labels",
        "annotations",
        "extra_config",
        "icon_url",
        "readme",
        "input_settings",
        "output_settings",
        "action_settings",
        "published",
    }
    for profile in profiles:
        where = f"service profile {profile['name']}"
        assert set(profile) == keys, where
        assert profile["display_name"].strip() and profile["description"].strip(), where
        assert profile["readme"].strip().startswith("#"), f"{where}: the readme is markdown with a heading"
        assert profile["service_type"] in SERVICE_TYPES and profile["published"] is True, where
        for field in ("labels", "annotations", "extra_config"):
            mapping = profile[field]
            assert isinstance(mapping, dict), where
            assert all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()), where
        assert all(LABEL_KEY.match(k) and LABEL_VALUE.match(v) for k, v in profile["labels"].items()), where
        version = declared.get((profile["template"], profile["version"]))
        assert version is not None, f"{where}: unknown template version"

        inputs = {item["name"]: item for item in version["inputs"]}
        settings = profile["input_settings"]
        assert set(settings) == set(inputs), f"{where}: input settings {sorted(settings)} vs {sorted(inputs)}"
        for name, setting in settings.items():
            at = f"{where} input {name}"
            assert set(setting) == {"default", "required", "exposed", "overridable"}, at
            assert all(isinstance(setting[k], bool) for k in ("required", "exposed", "overridable")), at
            assert setting["exposed"] or not setting["overridable"], f"{at}: overridable but not exposed"
            _check_input_value(inputs[name], setting["default"], at)
            if inputs[name]["type"] == "secret":
                assert setting["default"] is None, f"{at}: secret values are never written in the catalog"
            if inputs[name]["default"] is not None:
                assert setting["default"] is not None, f"{at}: keep the template's default explicit"
            default = setting["default"] if setting["default"] is not None else inputs[name]["default"]
            if setting["required"] and default in (None, ""):
                assert setting["exposed"] and setting["overridable"], f"{at}: required, so users must set it"

        outputs = {item["name"] for item in version["outputs"]}
        assert set(profile["output_settings"]) <= outputs, where
        for name, setting in profile["output_settings"].items():
            assert set(setting) == {"shown", "label"} and isinstance(setting["shown"], bool), (
                f"{where} {name}"
            )
            assert setting["label"].strip(), f"{where} output {name}"

        actions = {a["name"]: {v["name"]: v for v in a["variables"]} for a in version["actions"]}
        assert set(profile["action_settings"]) <= set(actions), where
        for action, variables in profile["action_settings"].items():
            assert set(variables) <= set(actions[action]), f"{where} action {action}"
            for variable, setting in variables.items():
                at = f"{where} action {action}.{variable}"
                assert set(setting) == {"alias", "tooltip", "allow_override", "default"}, at
                assert isinstance(setting["allow_override"], bool), at
                _check_input_value({"options": [], **actions[action][variable]}, setting["default"], at)


def test_the_promised_service_profiles_exist():
    profiles = {profile["name"]: profile for profile in CATALOG["service_profiles"]}
    for name, (service_type, template) in REQUIRED_SERVICES.items():
        assert name in profiles, f"missing service profile {name}"
        assert (profiles[name]["service_type"], profiles[name]["template"]) == (service_type, template), name

    notebook = next(v for n, _, v in VERSIONS if n == profiles["jupyter-notebook"]["template"])
    select = next(item for item in notebook["inputs"] if item["name"] == "notebook_profile")
    assert select["type"] == "select" and select["options"] == NOTEBOOK_PROFILES
    setting = profiles["jupyter-notebook"]["input_settings"]["notebook_profile"]
    assert setting["exposed"] and setting["overridable"]
    token = next(item for item in notebook["inputs"] if item["name"] == "token")
    assert token["type"] == "secret" and token.get("generate") is True

    def declared(template: str) -> set:
        version = next(v for n, _, v in VERSIONS if n == template)
        return {(r["apiVersion"], r["kind"]) for r in version["custom_resources"]}

    assert ("serving.kserve.io/v1beta1", "InferenceService") in declared("kserve-inference")
    assert ("ray.io/v1", "RayCluster") in declared("ray-cluster")
    yaml_app = next(v for n, _, v in VERSIONS if n == "kubernetes-yaml-app")
    assert [(i["name"], i["type"], i["required"]) for i in yaml_app["inputs"]] == [
        ("manifest", "multiline", True)
    ]
    assert "{{ inputs.manifest }}" in _manifests(yaml_app)


# --- rendering --------------------------------------------------------------------------------------


ENVIRONMENT = ImmutableSandboxedEnvironment(
    undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, autoescape=False
)


@functools.lru_cache(maxsize=64)
def _compiled(source: str) -> jinja2.Template:
    return ENVIRONMENT.from_string(source)


def _render(source: str, context: dict) -> str:
    return _compiled(source).render(**context)


def _placeholder(item: dict) -> Any:
    kind = item["type"]
    if kind == "number":
        return 2
    if kind == "boolean":
        return True
    if kind == "select":
        return item["options"][0]
    if kind == "secret":
        return f"generated-{item['name']}-0123456789abcdef"
    if kind == "multiline":
        return "SAMPLE_SETTING=sample value\n# a comment line\nOTHER_SETTING=2"
    if item["name"] == "mig_profile":
        return "2g.20gb"
    return f"sample-{item['name'].replace('_', '-')}"


def _base_inputs(version: dict) -> dict:
    """Defaults; placeholders for required inputs without one and for generated secrets."""
    values = {}
    for item in version["inputs"]:
        value = item["default"]
        if value is None and (item["required"] or item.get("generate")):
            value = _placeholder(item)
        values[item["name"]] = value
    return values


def _input_variants(template_name: str, number: str, version: dict) -> list[tuple[str, dict]]:
    base = _base_inputs(version)
    variants = [("defaults", base)]
    for item in version["inputs"]:
        if item["type"] == "select":
            for option in item["options"]:
                variants.append((f"{item['name']}={option}", {**base, item["name"]: option}))
    filled = dict(base)
    for item in version["inputs"]:
        name, value = item["name"], base[item["name"]]
        if value is None:
            filled[name] = _placeholder(item)
        elif item["type"] == "number" and value == 0:
            filled[name] = 2
        elif item["type"] == "number" and "gpu" in name:
            filled[name] = max(2, value)
        elif item["type"] == "boolean":
            filled[name] = not value
    variants.append(("filled", filled))
    gpu_inputs = [i["name"] for i in version["inputs"] if i["type"] == "number" and "gpu" in i["name"]]
    if gpu_inputs:
        variants.append(("no-gpu", {**base, **dict.fromkeys(gpu_inputs, 0)}))
        if "mig_profile" in base:
            variants.append(("mig", {**base, **dict.fromkeys(gpu_inputs, 1), "mig_profile": "1g.10gb"}))
    for profile in CATALOG["service_profiles"]:
        if (profile["template"], profile["version"]) == (template_name, number):
            values = dict(base)
            for name, setting in profile["input_settings"].items():
                if setting["default"] is not None:
                    values[name] = setting["default"]
            variants.append((f"service-profile={profile['name']}", values))
    return variants


def _profiles_for(template_name: str) -> list[tuple[str, dict]]:
    users = [p for p in CATALOG["compute_profiles"] if p["template"] == template_name]
    if not users:
        return [("sample", SAMPLE_PROFILE), ("sample-snapshot", _snapshot_shape(SAMPLE_PROFILE))]
    contexts = [(p["name"], _profile_context(p)) for p in users]
    contexts += [(f"{p['name']}-snapshot", _snapshot_shape(p)) for p in users]
    return contexts


def _actions_for(version: dict) -> list[tuple[str, dict | None]]:
    actions: list[tuple[str, dict | None]] = [("(default)", None), ("(action=None)", {})]
    for action in version["actions"]:
        defaults = {v["name"]: v["default"] for v in action["variables"]}
        actions.append((action["name"], {"name": action["name"], "variables": defaults}))
        for variable in action["variables"]:
            for option in variable.get("options") or []:
                if option != variable["default"]:
                    label = f"{action['name']}({variable['name']}={option})"
                    values = {**defaults, variable["name"]: option}
                    actions.append((label, {"name": action["name"], "variables": values}))
    return actions


def _contexts(template_name: str, number: str, version: dict):
    for profile_label, profile in _profiles_for(template_name):
        for index, (inputs_label, inputs) in enumerate(_input_variants(template_name, number, version)):
            ingress = INGRESS_VARIANTS[index % len(INGRESS_VARIANTS)]
            storage_class = "fast-ssd" if index % 3 == 1 else ""
            for action_label, action in _actions_for(version):
                context = {
                    "inputs": dict(inputs),
                    "instance": dict(INSTANCE),
                    "profile": profile,
                    **_service_keys(ingress, storage_class),
                }
                if action == {}:
                    context["action"] = None  # an engine may pass action=None outside actions
                elif action is not None:
                    context["action"] = action
                label = f"profile={profile_label} inputs={inputs_label} action={action_label}"
                yield f"{label} tls={ingress['tls']} class={storage_class or '-'}", context


# --- checks on rendered objects ---------------------------------------------------------------------


def _get(obj: Any, path: tuple | list) -> Any:
    for key in path:
        if isinstance(obj, dict):
            obj = obj.get(key)
        elif isinstance(obj, list) and isinstance(key, int) and -len(obj) <= key < len(obj):
            obj = obj[key]
        else:
            return None
    return obj


def _parse_path(path: str) -> list:
    parts: list = []
    for piece in path.split("."):
        match = re.fullmatch(r"([^\[\]]+)((\[\d+\])*)", piece)
        assert match, f"bad field path {path!r}"
        parts.append(match.group(1))
        parts.extend(int(i) for i in re.findall(r"\[(\d+)\]", match.group(2)))
    return parts


def _string_leaves(obj: Any, path: str = ""):
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from _string_leaves(value, f"{path}.{key}")
    elif isinstance(obj, list):
        for index, value in enumerate(obj):
            yield from _string_leaves(value, f"{path}[{index}]")
    elif isinstance(obj, str):
        yield path, obj


def _pod_specs(obj: dict, custom: bool) -> list[tuple[str, dict, list[dict]]]:
    """(where, pod-level spec, containers) for every pod the object creates."""
    kind = obj["kind"]
    found = []
    if kind in WORKLOAD_POD_SPEC_PATHS:
        spec = _get(obj, WORKLOAD_POD_SPEC_PATHS[kind])
        assert isinstance(spec, dict), f"{kind}: no pod spec"
        found.append((kind, spec, None))
    elif kind == "InferenceService":
        for component in ("predictor", "transformer", "explainer"):
            spec = _get(obj, ("spec", component))
            if isinstance(spec, dict):
                model = [spec["model"]] if isinstance(spec.get("model"), dict) else []
                found.append((f"{kind}.{component}", spec, model))
    elif custom:

        def walk(node: Any, where: str) -> None:
            if isinstance(node, dict):
                if isinstance(node.get("containers"), list):
                    found.append((where, node, None))
                for key, value in node.items():
                    walk(value, f"{where}.{key}")
            elif isinstance(node, list):
                for index, value in enumerate(node):
                    walk(value, f"{where}[{index}]")

        walk(obj.get("spec"), kind)
    result = []
    for where, spec, extra in found:
        containers = [
            *(spec.get("containers") or []),
            *(spec.get("initContainers") or []),
            *(spec.get("ephemeralContainers") or []),
            *(extra or []),
        ]
        result.append((where, spec, containers))
    return result


def _check_restricted(where: str, spec: dict, containers: list[dict]) -> list[str]:
    errors = []
    pod = spec.get("securityContext") or {}
    assert containers, f"{where}: no containers"
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(flag) is True:
            errors.append(f"{where}: {flag} is set")
    for volume in spec.get("volumes") or []:
        types = set(volume) - {"name"}
        if not types <= RESTRICTED_VOLUME_TYPES:
            errors.append(f"{where}: volume {volume.get('name')} of type {sorted(types)} is not allowed")
    if pod.get("runAsUser") == 0 or pod.get("sysctls"):
        errors.append(f"{where}: pod runs as root or sets sysctls")
    pod_seccomp = (pod.get("seccompProfile") or {}).get("type")
    for container in containers:
        name = f"{where} container {container.get('name', '(model)')}"
        context = container.get("securityContext") or {}
        if context.get("allowPrivilegeEscalation") is not False:
            errors.append(f"{name}: allowPrivilegeEscalation must be false")
        if context.get("privileged"):
            errors.append(f"{name}: privileged")
        capabilities = context.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            errors.append(f"{name}: capabilities must drop ALL")
        if set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
            errors.append(f"{name}: adds capabilities {capabilities['add']}")
        run_as_non_root = context.get("runAsNonRoot", pod.get("runAsNonRoot"))
        if run_as_non_root is not True:
            errors.append(f"{name}: runAsNonRoot must be true")
        if context.get("runAsUser") == 0:
            errors.append(f"{name}: runs as root")
        seccomp = (context.get("seccompProfile") or {}).get("type", pod_seccomp)
        if seccomp not in ("RuntimeDefault", "Localhost"):
            errors.append(f"{name}: seccompProfile must be RuntimeDefault")
        if any(port.get("hostPort") for port in container.get("ports") or []):
            errors.append(f"{name}: hostPort")
        if container in (spec.get("ephemeralContainers") or []):
            continue
        resources = container.get("resources") or {}
        requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
        for key in ("cpu", "memory"):
            if key not in requests or key not in limits:
                errors.append(f"{name}: resources.requests and limits need {key}")
        for bucket in (requests, limits):
            for key, value in bucket.items():
                if not QUANTITY.match(str(value)):
                    errors.append(f"{name}: {key}={value!r} is not a quantity")
        for key, value in requests.items():
            if key.startswith("nvidia.com/") and str(limits.get(key)) != str(value):
                errors.append(f"{name}: {key} request without the same limit")
        for key in limits:
            if key.startswith("nvidia.com/") and not re.fullmatch(r"nvidia\.com/(gpu|mig-\d+g\.\d+gb)", key):
                errors.append(f"{name}: unknown GPU resource {key}")
        if not isinstance(container.get("image"), str) or not container["image"].strip():
            if where.endswith(("predictor", "transformer", "explainer")) and "modelFormat" in container:
                continue  # KServe chooses the runtime image
            errors.append(f"{name}: no image")
    return errors


def _check_objects(label: str, version: dict, objects: list[dict], validated: set) -> list[str]:
    errors: list[str] = []
    declared = {(r["apiVersion"], r["kind"]) for r in version["custom_resources"]}
    seen = set()
    for obj in objects:
        if not isinstance(obj, dict) or not {"apiVersion", "kind", "metadata"} <= set(obj):
            errors.append(f"{label}: not a Kubernetes object: {str(obj)[:120]}")
            continue
        kind, metadata = obj["kind"], obj["metadata"] or {}
        name = metadata.get("name")
        where = f"{label}: {kind}/{name}"
        if kind in CLUSTER_SCOPED_KINDS:
            errors.append(f"{where}: cluster-scoped kind")
        if "namespace" in metadata and metadata["namespace"] != NAMESPACE:
            errors.append(f"{where}: metadata.namespace {metadata['namespace']!r} is not the instance's")
        if not isinstance(name, str) or len(name) > 253 or not DNS_SUBDOMAIN.match(name):
            errors.append(f"{where}: invalid name")
        elif kind == "Service" and (len(name) > 63 or not DNS_LABEL.match(name)):
            errors.append(f"{where}: a Service name is a DNS label")
        key = (obj["apiVersion"], kind, name)
        if key in seen:
            errors.append(f"{where}: rendered twice")
        seen.add(key)
        for field, pattern in (("labels", LABEL_VALUE), ("annotations", None)):
            for k, v in (metadata.get(field) or {}).items():
                if not LABEL_KEY.match(str(k)) or not isinstance(v, str):
                    errors.append(f"{where}: bad {field} entry {k!r}: {v!r}")
                elif pattern is not None and not pattern.match(v):
                    errors.append(f"{where}: bad label value {k}={v!r}")
        for path, value in _string_leaves(obj):
            if kind == "ConfigMap" and path.startswith(".data."):
                continue  # scripts may well say None
            if re.search(r"\bNone\b", value):
                errors.append(f"{where}: {path} renders Python's None: {value[:80]!r}")
        if kind == "ConfigMap":
            for key, value in (obj.get("data") or {}).items():
                try:
                    if key.endswith(".py"):
                        compile(value, key, "exec")
                    elif key.endswith(".json"):
                        json.loads(value)
                except (SyntaxError, ValueError) as exc:
                    errors.append(f"{where}: data.{key} does not parse: {exc}")
        custom = (obj["apiVersion"], kind) in declared
        if not custom:
            fingerprint = json.dumps(obj, sort_keys=True, default=str)
            if fingerprint not in validated:
                try:
                    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
                except Exception as exc:  # ValidationError, SchemaNotFoundError, ...
                    errors.append(f"{where}: {type(exc).__name__}: {_error_message(exc)}")
                else:
                    validated.add(fingerprint)
        for pod_where, spec, containers in _pod_specs(obj, custom):
            errors += [f"{label}: {error}" for error in _check_restricted(pod_where, spec, containers)]
    return errors


def _check_ingresses(label: str, context: dict, objects: list[dict]) -> list[str]:
    """Ingresses use exactly the platform's settings: its host, its class (none when empty) and, with
    TLS, the controller's default certificate (no secretName: no certificate key in the namespace)."""
    errors = []
    ingress = context["ingress"]
    for obj in objects:
        if not isinstance(obj, dict) or obj.get("kind") != "Ingress":
            continue
        where = f"{label}: Ingress/{obj['metadata'].get('name')}"
        spec = obj.get("spec") or {}
        hosts = {rule.get("host") for rule in spec.get("rules") or []}
        if hosts != {ingress["host"]}:
            errors.append(f"{where}: hosts {sorted(map(str, hosts))} are not the assigned {ingress['host']}")
        if spec.get("ingressClassName", "") != ingress["class_name"]:
            errors.append(f"{where}: ingressClassName {spec.get('ingressClassName')!r} is not the platform's")
        tls = spec.get("tls") or []
        if bool(tls) != ingress["tls"]:
            errors.append(f"{where}: tls {tls!r} does not follow the platform's setting")
        if any("secretName" in entry or entry.get("hosts") != [ingress["host"]] for entry in tls):
            errors.append(f"{where}: tls must name the host only (the controller's default certificate)")
    return errors


def _check_outputs(label: str, version: dict, context: dict, objects: list[dict]) -> list[str]:
    errors = []
    declared = {(r["apiVersion"], r["kind"]) for r in version["custom_resources"]}
    by_key = {(o["apiVersion"], o["kind"], o["metadata"]["name"]): o for o in objects if isinstance(o, dict)}
    for output in version["outputs"]:
        source, where = output["source"], f"{label}: output {output['name']}"
        try:
            if source["type"] == "template":
                value = _render(source["value"], context)
                if not value.strip() or re.search(r"\bNone\b", value):
                    errors.append(f"{where}: renders {value!r}")
            elif source["type"] == "field":
                name = _render(source["name"], context)
                obj = by_key.get((source["apiVersion"], source["kind"], name))
                if obj is None:
                    errors.append(f"{where}: no {source['kind']}/{name} is rendered")
                elif not (
                    source["path"].startswith("status.") and (obj["apiVersion"], obj["kind"]) in declared
                ):
                    value = _get(obj, _parse_path(source["path"]))
                    if value in (None, "", [], {}):
                        errors.append(f"{where}: {source['path']} is empty on {source['kind']}/{name}")
            else:
                name = _render(source["name"], context)
                secret = by_key.get(("v1", "Secret", name))
                keys = set((secret or {}).get("stringData") or {}) | set((secret or {}).get("data") or {})
                if source["key"] not in keys:
                    errors.append(f"{where}: no Secret {name} with key {source['key']} is rendered")
        except jinja2.TemplateError as exc:
            errors.append(f"{where}: {type(exc).__name__}: {exc}")
    return errors


@pytest.mark.parametrize(
    ("template_name", "number", "version"), VERSIONS, ids=[f"{n}@{v}" for n, v, _ in VERSIONS]
)
def test_every_rendering_is_namespaced_valid_and_restricted(template_name, number, version):
    source = _manifests(version)
    validated: set = set()
    errors: list[str] = []
    renderings = 0
    for label, context in _contexts(template_name, number, version):
        renderings += 1
        try:
            text = _render(source, context)
        except jinja2.TemplateError as exc:
            errors.append(f"{label}: rendering failed: {type(exc).__name__}: {exc}")
            continue
        try:
            objects = [doc for doc in yaml.safe_load_all(text) if doc is not None]
        except yaml.YAMLError as exc:
            errors.append(f"{label}: not YAML: {exc}")
            continue
        if not objects:
            errors.append(f"{label}: renders no objects")
            continue
        errors += _check_objects(label, version, objects, validated)
        errors += _check_ingresses(label, context, objects)
        errors += _check_outputs(label, version, context, [o for o in objects if isinstance(o, dict)])
        if len(errors) > 40:
            break
    assert renderings > 0
    assert not errors, f"{template_name}@{number}:\n" + "\n".join(errors[:40])


def test_action_and_input_values_reach_the_objects():
    """The renderings really depend on what they are given (the checks above are not vacuous)."""
    notebook = next(v for n, _, v in VERSIONS if n == "jupyter-notebook")
    images = set()
    for option in NOTEBOOK_PROFILES:
        context = {
            "inputs": {**_base_inputs(notebook), "notebook_profile": option},
            "instance": INSTANCE,
            "profile": SAMPLE_PROFILE,
            **_service_keys(INGRESS_VARIANTS[0]),
        }
        objects = list(yaml.safe_load_all(_render(_manifests(notebook), context)))
        deployment = next(o for o in objects if o["kind"] == "Deployment")
        images.add(deployment["spec"]["template"]["spec"]["containers"][0]["image"])
        if option == "Minimal":
            assert deployment["spec"]["replicas"] == 1
            stop = {**context, "action": {"name": "stop", "variables": {"run_strategy": "halted"}}}
            stopped = yaml.safe_load_all(_render(_manifests(notebook), stop))
            assert next(o for o in stopped if o["kind"] == "Deployment")["spec"]["replicas"] == 0
    assert len(images) == len(NOTEBOOK_PROFILES)
    assert all(image.startswith("quay.io/jupyter/") for image in images)
    assert {i.split(":")[0].split("/")[-1] for i in images} == {
        "minimal-notebook",
        "datascience-notebook",
        "pyspark-notebook",
        "tensorflow-notebook",
        "pytorch-notebook",
    }

    gpu_namespace = next(v for n, _, v in VERSIONS if n == "gpu-namespace")
    for profile in CATALOG["compute_profiles"]:
        context = {
            "inputs": _base_inputs(gpu_namespace),
            "instance": INSTANCE,
            "profile": _profile_context(profile),
        }
        objects = {o["kind"]: o for o in yaml.safe_load_all(_render(_manifests(gpu_namespace), context))}
        totals = _totals(profile)
        size = objects["PersistentVolumeClaim"]["spec"]["resources"]["requests"]["storage"]
        assert size == f"{totals['storage_gib']}Gi", profile["name"]
        # The isolation baseline (quota, limits, network policy) is the engine's, never the template's.
        assert not {"ResourceQuota", "LimitRange", "NetworkPolicy"} & set(objects), profile["name"]
        halted = {**context, "action": {"name": "stop", "variables": {"run_strategy": "halted"}}}
        info = next(
            o
            for o in yaml.safe_load_all(_render(_manifests(gpu_namespace), halted))
            if o["kind"] == "ConfigMap"
        )
        assert info["data"]["RUN_STRATEGY"] == "halted"

    job = next(v for n, _, v in VERSIONS if n == "training-job")
    context = {
        "inputs": {**_base_inputs(job), "gpus": 4},
        "instance": INSTANCE,
        "profile": SAMPLE_PROFILE,
        **_service_keys(INGRESS_VARIANTS[0]),
    }
    rendered = next(yaml.safe_load_all(_render(_manifests(job), context)))
    container = rendered["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "4"
    assert container["args"] == [_base_inputs(job)["command"]]


def test_a_bad_object_is_caught():
    """The object checks reject what the platform would refuse."""
    version = {"custom_resources": [], "outputs": []}
    bad = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}},
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "y", "namespace": "other"},
            "data": {},
        },
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "z"}, "data": {"k": 1}},
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        },
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}},
    ]
    errors = _check_objects("probe", version, bad, set())
    text = "\n".join(errors)
    assert "cluster-scoped" in text and "is not the instance's" in text
    assert "ConfigMap/z" in text and "Widget" in text
    assert "allowPrivilegeEscalation" in text and "runAsNonRoot" in text and "drop ALL" in text


# --- the platform's own engine ----------------------------------------------------------------------


def _templating():
    try:
        module = importlib.import_module("catalog.templating")
    except Exception as exc:  # ImportError, or Django not configured under --noconftest
        pytest.skip(f"catalog.templating is not importable here ({type(exc).__name__}: {exc})")
    if not hasattr(module, "check_version"):
        pytest.skip("catalog.templating has no check_version yet")
    return module


@pytest.mark.parametrize(
    ("template_name", "number", "version"), VERSIONS, ids=[f"{n}@{v}" for n, v, _ in VERSIONS]
)
def test_the_platform_engine_accepts_every_version(template_name, number, version):
    """The publish-time check: declarations, then renders with the defaults and for every action."""
    templating = _templating()
    templating.check_version(
        manifests=_manifests(version),
        inputs=version["inputs"],
        outputs=version["outputs"],
        actions=version["actions"],
        custom_resources=version["custom_resources"],
        kubernetes_version=version["kubernetes_version"],
        allowed_custom_resources=_allowed_kinds(),
    )


@pytest.mark.parametrize(
    ("template_name", "number", "version"), VERSIONS, ids=[f"{n}@{v}" for n, v, _ in VERSIONS]
)
def test_the_platform_engine_deploys_every_input_variant(template_name, number, version):
    """Deploy-time rendering (render, parse, validate_objects) of every input variant above."""
    templating = _templating()
    if not all(hasattr(templating, name) for name in ("render", "parse", "validate_objects")):
        pytest.skip("catalog.templating has no render/parse/validate_objects yet")
    source = _manifests(version)
    _, profile = _profiles_for(template_name)[0]
    errors = []
    for inputs_label, inputs in _input_variants(template_name, number, version):
        for action_label, action in _actions_for(version)[:1] + _actions_for(version)[2:]:
            context = {
                "inputs": dict(inputs),
                "instance": dict(INSTANCE),
                "profile": profile,
                **_service_keys(INGRESS_VARIANTS[0]),
            }
            if action:
                context["action"] = action
            try:
                objects = templating.parse(templating.render(source, context))
                templating.validate_objects(
                    objects,
                    namespace=NAMESPACE,
                    kubernetes_version=version["kubernetes_version"],
                    custom_resources=version["custom_resources"],
                    host_suffix=INSTANCE["host_suffix"],
                    allowed_custom_resources=_allowed_kinds(),
                )
            except templating.TemplateError as exc:
                errors.append(f"inputs={inputs_label} action={action_label}: {exc.errors}")
    assert not errors, f"{template_name}@{number}:\n" + "\n".join(errors[:20])


# --- the application catalog ------------------------------------------------------------------------


def test_the_shipped_applications_are_namespaced_schema_valid_and_restricted():
    """Each application of the system's application catalog (K8s YAML files under applications/):
    its files exist, every document is a namespaced object valid against the Kubernetes schemas, and
    its pods meet Pod Security "restricted" as written."""
    for item in CATALOG["applications"]:
        assert set(item) == {"name", "display_name", "description", "package_type", "files", "readme"}, item
        assert item["package_type"] == "yaml" and item["readme"].strip(), item["name"]
        for name in item["files"]:
            documents = [
                d for d in yaml.safe_load_all((CATALOG_DIR / "applications" / name).read_text()) if d
            ]
            assert documents, name
            for obj in documents:
                assert obj["kind"] in ("Deployment", "Service", "ConfigMap"), f"{name}: {obj['kind']}"
                assert "namespace" not in obj["metadata"], name
                kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
                for where, spec, containers in _pod_specs(obj, custom=False):
                    assert _check_restricted(f"{name} {where}", spec, containers) == []
