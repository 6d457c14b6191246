"""Validation of rendered objects: kinds (built-in or declared), offline schemas, then
:mod:`catalog.template_policy`."""

from __future__ import annotations

import collections
import functools
import hashlib
import json
import re
import threading
from collections.abc import Collection, Iterable, Mapping
from importlib import resources
from typing import Any

import kubernetes_validate
import kubernetes_validate.utils
from kubernetes_validate.utils import all_versions

from catalog import template_policy
from catalog.cluster_scoped import CLUSTER_SCOPED_KINDS, CREATE_ONLY_KINDS, NAMESPACED_KINDS
from catalog.templating.base import (
    _DNS_SUBDOMAIN_RE,
    _KIND_RE,
    CR_SCOPES,
    DEFAULT_KUBERNETES_VERSION,
    TemplateError,
    _truncate,
)
from catalog.templating.parsing import _object_label, _shape_problems
from catalog.templating.paths import _join_path


def _split_api_version(api_version: str) -> tuple[str, str] | None:
    """``"v1"`` -> ``("", "v1")``, ``"apps/v1"`` -> ``("apps", "v1")``; ``None`` if malformed."""
    parts = api_version.split("/")
    if len(parts) == 1 and parts[0]:
        return "", parts[0]
    if len(parts) == 2 and all(parts):
        return parts[0], parts[1]
    return None


def _minor(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:2])


@functools.lru_cache(maxsize=8)
def _schema_version(kubernetes_version: str) -> str:
    """The kubernetes-validate schema version used for ``kubernetes_version`` (as it picks it)."""
    wanted = _minor(kubernetes_version.removeprefix("v"))
    versions = all_versions()
    candidates = [version for version in versions if _minor(version) <= wanted]
    if len(wanted) != 2 or not candidates or wanted > _minor(versions[-1]):
        raise ValueError(
            f"kubernetes-validate {kubernetes_validate.__version__} has no schemas for Kubernetes "
            f"{kubernetes_version} (it has {versions[0]} to {versions[-1]})"
        )
    return candidates[-1]


@functools.lru_cache(maxsize=8)
def _builtin_kinds(kubernetes_version: str) -> frozenset[tuple[str, str, str]]:
    """(group, version, kind) of every built-in top-level type in the official schemas."""
    directory = f"v{_schema_version(kubernetes_version)}-local-strict"
    path = resources.files("kubernetes_validate") / "kubernetes-json-schema" / directory / "_definitions.json"
    definitions = json.loads(path.read_text())
    kinds = set()
    for name, definition in (definitions.get("$defs") or definitions.get("definitions") or {}).items():
        if name.startswith("io.k8s.apimachinery."):
            continue  # Status, DeleteOptions, WatchEvent, ...: not objects one creates
        for gvk in definition.get("x-kubernetes-group-version-kind", ()):
            kinds.add((gvk["group"], gvk["version"], gvk["kind"]))
    return frozenset(kinds)


@functools.lru_cache(maxsize=1)
def _builtin_groups() -> frozenset[str]:
    groups = {group for group, _kind in CLUSTER_SCOPED_KINDS | NAMESPACED_KINDS}
    groups |= {group for group, _version, _kind in _builtin_kinds(DEFAULT_KUBERNETES_VERSION)}
    return frozenset(groups)


def custom_kind_errors(group: Any, kind: Any) -> dict[str, str]:
    """Field errors of a custom resource's (API group, kind), as the operators' allow-list takes it."""
    errors = {}
    dns = isinstance(group, str) and "." in group and len(group) <= 253 and _DNS_SUBDOMAIN_RE.match(group)
    if not dns:
        errors["group"] = f"The API group must be a DNS subdomain with a dot, e.g. ray.io (got {group!r})."
    elif group in _builtin_groups():
        errors["group"] = f"{group} is a built-in Kubernetes API group; only custom resources can be allowed."
    if not isinstance(kind, str) or not _KIND_RE.match(kind):
        errors["kind"] = f"The kind must be a CamelCase Kubernetes kind, e.g. RayCluster (got {kind!r})."
    return errors


def _declared_resources(custom_resources: Any) -> dict[tuple[str, str, str], str]:
    """(group, version, kind) -> scope of the well-formed custom resource declarations."""
    declared = {}
    for entry in custom_resources if isinstance(custom_resources, (list, tuple)) else []:
        if not isinstance(entry, dict):
            continue
        api_version, kind, scope = entry.get("apiVersion"), entry.get("kind"), entry.get("scope")
        split = _split_api_version(api_version) if isinstance(api_version, str) else None
        if not (split and split[0] and isinstance(kind, str) and scope in CR_SCOPES):
            continue
        if split[0] not in _builtin_groups():
            declared[(split[0], split[1], kind)] = scope
    return declared


def _kind_problem(
    api_version: str, kind: str, declared: Mapping[tuple[str, str, str], str], kubernetes_version: str
) -> tuple[str | None, bool]:
    """Why a template may not create ``kind``, if so; and whether it is a built-in (schema-checked)."""
    split = _split_api_version(api_version)
    if split is None:
        return f"apiVersion {api_version!r} is not valid", False
    group, version = split
    if (group, kind) in CLUSTER_SCOPED_KINDS:
        return f"{kind} is a cluster-scoped kind; templates may only create namespaced objects", False
    scope = declared.get((group, version, kind))
    if scope == "Cluster":
        return (
            f"{api_version} {kind} is declared as a cluster-scoped custom resource; "
            "templates may only create namespaced objects"
        ), False
    builtins = _builtin_kinds(kubernetes_version)
    if (group, version, kind) in builtins:
        if (group, kind) in CREATE_ONLY_KINDS:
            return f"{kind} is create-only (a request, not an object that can be applied)", True
        if (group, kind) not in NAMESPACED_KINDS:
            return f"{api_version} {kind} is a list or subresource kind and cannot be created directly", True
        return None, True
    if scope is not None:
        return None, False
    minor = ".".join(map(str, _minor(kubernetes_version)))
    if group in _builtin_groups():
        served = sorted(f"{g}/{v}" if g else v for g, v, k in builtins if g == group and k == kind)
        if served:
            return f"{api_version} {kind} is not served by Kubernetes {minor}; use {', '.join(served)}", False
        return f"unknown kind {kind} in the built-in API group {group or 'core'} (Kubernetes {minor})", False
    return (
        f"unknown kind {kind} ({api_version}); a custom resource must be declared in custom_resources "
        "(and allowed by an operator)",
        False,
    )


def _json_path(path: Iterable[Any]) -> str:
    result = ""
    for key in path:
        result = _join_path(result, key)
    return result or "(object)"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _short(value: Any) -> str:
    try:
        text = json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):
        text = repr(value)
    return _truncate(text, 60)


def _expected_types(schema_value: Any) -> list[str]:
    types_: list[str] = []
    values = schema_value if isinstance(schema_value, list) else [schema_value]
    for value in values:
        if isinstance(value, str):
            types_.append(value)
        elif isinstance(value, dict):
            types_ += _expected_types(value.get("type", []))
    return [t for t in dict.fromkeys(types_) if t != "null"]


def _schema_message(exc: Any) -> str:
    validator, instance = exc.validator, exc.instance
    if validator == "type":
        expected = " or ".join(_expected_types(exc.validator_value)) or "another type"
        message = f"expected {expected}, got {_json_type(instance)} {_short(instance)}"
    elif validator == "required" and isinstance(instance, dict):
        missing = [field for field in exc.validator_value if field not in instance]
        message = f"missing required field(s) {', '.join(map(repr, missing))}"
    elif validator == "additionalProperties" and isinstance(instance, dict):
        known = set((exc.schema or {}).get("properties", {}))
        unknown = sorted(key for key in instance if key not in known)
        message = f"unknown field(s) {', '.join(map(repr, unknown))}" if unknown else exc.message
    elif validator == "enum":
        allowed = [value for value in exc.validator_value if value is not None]
        message = f"must be one of {', '.join(map(_short, allowed))}, got {_short(instance)}"
    elif validator in ("oneOf", "anyOf"):
        expected = _expected_types(exc.validator_value)
        if expected:
            message = f"expected {' or '.join(expected)}, got {_json_type(instance)} {_short(instance)}"
        else:
            message = exc.message
    else:
        message = exc.message
    return _truncate(message, 300)


# kubernetes-validate reads and parses its schema files on every call (the 2 MB _definitions.json
# included: ~15 ms each time); they never change, so each is parsed once per process. The library reads
# them through this module-level function and never modifies what it returns.
kubernetes_validate.utils.schema_contents = functools.lru_cache(maxsize=256)(
    kubernetes_validate.utils.schema_contents
)

_schema_results: collections.OrderedDict[str, str | None] = collections.OrderedDict()
_SCHEMA_RESULTS_KEPT = 4096
_schema_results_lock = threading.Lock()


def _schema_problem(obj: dict, kubernetes_version: str) -> str | None:
    """``kubernetes_validate`` (strict) as a readable message; results are remembered by content,
    because the renders of one publish check (defaults, each action) mostly repeat objects."""
    serialized = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    key = hashlib.sha256(f"{kubernetes_version}\n{serialized}".encode()).hexdigest()
    with _schema_results_lock:
        if key in _schema_results:
            _schema_results.move_to_end(key)
            return _schema_results[key]
    try:
        kubernetes_validate.validate(obj, kubernetes_version, strict=True)
        problem = None
    except kubernetes_validate.ValidationError as exc:
        problem = f"{_json_path(exc.path)}: {_schema_message(exc)}"
    except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.InvalidSchemaError) as exc:
        problem = f"cannot be validated: {exc.message}"
    with _schema_results_lock:
        _schema_results[key] = problem
        while len(_schema_results) > _SCHEMA_RESULTS_KEPT:
            _schema_results.popitem(last=False)
    return problem


def validate_objects(
    objects: Iterable[dict],
    *,
    namespace: str,
    kubernetes_version: str = DEFAULT_KUBERNETES_VERSION,
    custom_resources: Any = (),
    host_suffix: str | None = None,
    allowed_custom_resources: Collection[tuple[str, str]] = frozenset(),
) -> None:
    """Refuse objects a template may not create; validate built-ins against the official schemas.

    Refused: cluster-scoped kinds (built-in, or declared custom resources with scope Cluster),
    ``metadata.namespace`` other than ``namespace``, kinds that are neither built-ins of
    ``kubernetes_version`` nor declared custom resources, list/subresource/create-only kinds and
    duplicates; then whatever :mod:`catalog.template_policy` refuses (kinds off its allow-list,
    custom resources whose ``(group, kind)`` is not in ``allowed_custom_resources`` (the operators'
    allow-list, :func:`catalog.selectors.allowed_custom_resource_kinds`), reserved names, platform
    labels, token Secrets, RBAC wider than the tenant's, and with ``host_suffix`` Ingress hosts
    outside it).  Built-ins are
    validated offline with ``kubernetes_validate`` (strict: unknown fields are errors); custom
    resources are checked for shape only (no schema is available).
    """
    declared = _declared_resources(custom_resources)
    problems: list[str] = []
    seen: set[tuple[str, str, str]] = set()
    accepted: list[tuple[str, dict, bool]] = []
    for index, obj in enumerate(objects):
        label = _object_label(obj) or f"object {index + 1}"
        shape = _shape_problems(obj)
        if shape:
            problems += [f"{label}: {problem}" for problem in shape]
            continue
        api_version, kind, metadata = obj["apiVersion"], obj["kind"], obj["metadata"]
        object_namespace = metadata.get("namespace")
        if object_namespace is not None and object_namespace != namespace:
            problems.append(
                f"{label}: metadata.namespace {object_namespace!r} is not allowed; objects are created in "
                f"the instance's namespace ({namespace!r}): omit metadata.namespace"
            )
        problem, builtin = _kind_problem(api_version, kind, declared, kubernetes_version)
        split = _split_api_version(api_version) or ("", "")
        if not problem:
            problem = template_policy.kind_problem(split[0], kind, builtin, allowed_custom_resources)
        if problem:
            problems.append(f"{label}: {problem}")
            continue
        accepted.append((label, obj, builtin))
        identity = (split[0], kind, metadata["name"])
        if identity in seen:
            problems.append(f"{label}: defined more than once")
        seen.add(identity)
        if builtin:
            problem = _schema_problem(obj, kubernetes_version)
            if problem:
                problems.append(f"{label}: {problem}")
    problems += template_policy.problems(accepted, namespace=namespace, host_suffix=host_suffix)
    if problems:
        raise TemplateError({"manifests": problems})
