"""Validation of a version's declared ``inputs``, ``outputs``, ``actions`` and ``custom_resources``."""

from __future__ import annotations

from typing import Any

from catalog.templating.base import (
    _DICT_ATTRIBUTES,
    _DNS_LABEL_RE,
    _DNS_SUBDOMAIN_RE,
    _INTERNAL_ATTRIBUTES,
    _KIND_RE,
    _NAME_RE,
    _SECRET_KEY_RE,
    CLUSTER_DETAILS,
    CR_SCOPES,
    INPUT_TYPES,
    NAME_PATTERN,
    OUTPUT_SOURCE_TYPES,
    _Errors,
)
from catalog.templating.inputs import _cluster_list_problem, _coerce
from catalog.templating.objects import _builtin_groups, _split_api_version
from catalog.templating.paths import _parse_path
from catalog.templating.rendering import _template_problems

_INPUT_KEYS = frozenset({"name", "type", "required", "default", "options", "description", "generate"})
_VARIABLE_KEYS = frozenset({"name", "type", "default", "description", "options"})
_OUTPUT_KEYS = frozenset({"name", "description", "source"})
_SOURCE_KEYS = {
    "field": frozenset({"type", "apiVersion", "kind", "name", "path"}),
    "secret": frozenset({"type", "name", "key"}),
    "template": frozenset({"type", "value"}),
}
_ACTION_KEYS = frozenset({"name", "description", "variables"})
_CR_KEYS = frozenset({"apiVersion", "kind", "scope"})


def validate_declarations(*, inputs: Any, outputs: Any, actions: Any, custom_resources: Any) -> None:
    """Check the declared inputs, outputs, actions and custom resources; raise :class:`TemplateError`."""
    errors = _Errors()
    for message in _input_errors(inputs):
        errors.add("inputs", message)
    for message in _output_errors(outputs):
        errors.add("outputs", message)
    for message in _action_errors(actions):
        errors.add("actions", message)
    for message in _custom_resource_errors(custom_resources):
        errors.add("custom_resources", message)
    errors.raise_if_any()


def _label(noun: str, entry: Any, index: int) -> str:
    name = entry.get("name") if isinstance(entry, dict) else None
    return f"{noun} '{name}'" if isinstance(name, str) and name else f"{noun} #{index + 1}"


def _unknown_keys(entry: dict, allowed: frozenset[str], label: str) -> list[str]:
    unknown = sorted(str(key) for key in entry if key not in allowed)
    if not unknown:
        return []
    allowed_keys = ", ".join(sorted(allowed))
    return [f"{label}: unknown key(s) {', '.join(map(repr, unknown))} (allowed: {allowed_keys})"]


def _duplicate_errors(names: list[Any], noun: str) -> list[str]:
    seen: set[str] = set()
    messages = []
    for name in names:
        if isinstance(name, str) and name:
            if name in seen:
                messages.append(f"{noun} name '{name}' is used more than once")
            seen.add(name)
    return messages


def _variable_errors(entry: Any, index: int, *, noun: str, is_input: bool) -> list[str]:
    """Errors of one input (``is_input``) or action variable declaration."""
    label = _label(noun, entry, index)
    if not isinstance(entry, dict):
        return [f"{label}: must be an object"]
    messages = _unknown_keys(entry, _INPUT_KEYS if is_input else _VARIABLE_KEYS, label)
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        messages.append(f"{label}: name must match {NAME_PATTERN} (got {name!r})")
    elif name.startswith("_") or name in _INTERNAL_ATTRIBUTES:
        messages.append(f"{label}: the name '{name}' cannot be read in the template sandbox")
    elif name in _DICT_ATTRIBUTES:
        messages.append(f"{label}: the name '{name}' is reserved (inputs.{name} would be a dict method)")
    kind = entry.get("type")
    if kind not in INPUT_TYPES:
        messages.append(f"{label}: type must be one of {', '.join(INPUT_TYPES)} (got {kind!r})")
    if is_input and entry.get("required") is not None and not isinstance(entry["required"], bool):
        messages.append(f"{label}: required must be true or false")
    if is_input and entry.get("generate") is not None and not isinstance(entry["generate"], bool):
        messages.append(f"{label}: generate must be true or false")
    elif is_input and entry.get("generate") and kind != "secret":
        messages.append(f"{label}: generate is only allowed for secret inputs")
    description = entry.get("description")
    if description is not None and not isinstance(description, str):
        messages.append(f"{label}: description must be a string")
    options = entry.get("options")
    if kind == "select":
        if not isinstance(options, list) or not options:
            messages.append(f"{label}: a select needs a non-empty list of options")
            options = []
        elif not all(isinstance(option, str) and option and "\n" not in option for option in options):
            messages.append(f"{label}: options must be non-empty single-line strings")
            options = []
        elif len(set(options)) != len(options):
            messages.append(f"{label}: options must be unique")
    elif options not in (None, []):
        messages.append(f"{label}: options are only allowed for select {noun}s")
    default = entry.get("default")
    if default is not None and kind in INPUT_TYPES:
        _, problem = _coerce(kind, default, options if isinstance(options, list) else [], strict=True)
        if problem:
            messages.append(f"{label}: default {problem}")
    if is_input and name == CLUSTER_DETAILS:
        if kind != "text":
            messages.append(f"{label}: the reserved input '{CLUSTER_DETAILS}' must be of type text")
        elif isinstance(default, str) and default and _cluster_list_problem(default):
            messages.append(f"{label}: default {_cluster_list_problem(default)}")
    return messages


def _input_errors(inputs: Any) -> list[str]:
    if not isinstance(inputs, list):
        return ["inputs must be a list"]
    messages = []
    for index, entry in enumerate(inputs):
        messages += _variable_errors(entry, index, noun="input", is_input=True)
    messages += _duplicate_errors([e.get("name") for e in inputs if isinstance(e, dict)], "input")
    return messages


def _named_entry_errors(entry: Any, label: str, keys) -> list[str]:
    """What every declared output and action needs: an object of known keys, a name, a text description."""
    if not isinstance(entry, dict):
        return [f"{label}: must be an object"]
    messages = _unknown_keys(entry, keys, label)
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        messages.append(f"{label}: name must match {NAME_PATTERN} (got {name!r})")
    if entry.get("description") is not None and not isinstance(entry.get("description"), str):
        messages.append(f"{label}: description must be a string")
    return messages


def _output_errors(outputs: Any) -> list[str]:
    if not isinstance(outputs, list):
        return ["outputs must be a list"]
    messages = []
    for index, entry in enumerate(outputs):
        label = _label("output", entry, index)
        messages += _named_entry_errors(entry, label, _OUTPUT_KEYS)
        if isinstance(entry, dict):
            messages += [f"{label}: {problem}" for problem in _source_errors(entry.get("source"))]
    messages += _duplicate_errors([e.get("name") for e in outputs if isinstance(e, dict)], "output")
    return messages


def _source_errors(source: Any) -> list[str]:
    if not isinstance(source, dict):
        return ["source must be an object"]
    kind = source.get("type")
    if kind not in OUTPUT_SOURCE_TYPES:
        return [f"source type must be one of {', '.join(OUTPUT_SOURCE_TYPES)} (got {kind!r})"]
    messages = _unknown_keys(source, _SOURCE_KEYS[kind], "source")
    if kind in ("field", "secret"):
        object_name = source.get("name")
        if not isinstance(object_name, str) or not object_name.strip():
            messages.append("source name must be a non-empty string (Jinja is allowed)")
        else:
            messages += [f"source name: {problem}" for problem in _template_problems(object_name)]
    if kind == "field":
        api_version, object_kind = source.get("apiVersion"), source.get("kind")
        if not isinstance(api_version, str) or _split_api_version(api_version) is None:
            messages.append(f"source apiVersion must look like 'v1' or 'group/version' (got {api_version!r})")
        if not isinstance(object_kind, str) or not _KIND_RE.match(object_kind):
            messages.append(f"source kind must be a Kubernetes kind such as 'Ingress' (got {object_kind!r})")
        try:
            _parse_path(source.get("path"))
        except ValueError as exc:
            messages.append(f"source path: {exc}")
    elif kind == "secret":
        key = source.get("key")
        if not isinstance(key, str) or not _SECRET_KEY_RE.match(key):
            messages.append(f"source key must be a Secret data key ([-._a-zA-Z0-9]+), got {key!r}")
    else:
        value = source.get("value")
        if not isinstance(value, str) or not value.strip():
            messages.append("source value must be a non-empty template string")
        else:
            messages += [f"source value: {problem}" for problem in _template_problems(value)]
    return messages


def _action_errors(actions: Any) -> list[str]:
    if not isinstance(actions, list):
        return ["actions must be a list"]
    messages = []
    for index, entry in enumerate(actions):
        label = _label("action", entry, index)
        messages += _named_entry_errors(entry, label, _ACTION_KEYS)
        if not isinstance(entry, dict):
            continue
        variables = entry.get("variables", [])
        if not isinstance(variables, list):
            messages.append(f"{label}: variables must be a list")
            continue
        for var_index, variable in enumerate(variables):
            problems = _variable_errors(variable, var_index, noun="variable", is_input=False)
            messages += [f"{label}: {problem}" for problem in problems]
        names = [v.get("name") for v in variables if isinstance(v, dict)]
        messages += [f"{label}: {problem}" for problem in _duplicate_errors(names, "variable")]
    messages += _duplicate_errors([e.get("name") for e in actions if isinstance(e, dict)], "action")
    return messages


def _custom_resource_errors(custom_resources: Any) -> list[str]:
    if not isinstance(custom_resources, list):
        return ["custom_resources must be a list"]
    messages = []
    seen: set[tuple[str, str]] = set()
    for index, entry in enumerate(custom_resources):
        label = f"custom resource #{index + 1}"
        if not isinstance(entry, dict):
            messages.append(f"{label}: must be an object")
            continue
        api_version, kind, scope = entry.get("apiVersion"), entry.get("kind"), entry.get("scope")
        if isinstance(api_version, str) and isinstance(kind, str):
            label = f"custom resource {api_version} {kind}"
        messages += _unknown_keys(entry, _CR_KEYS, label)
        split = _split_api_version(api_version) if isinstance(api_version, str) else None
        if split is None or not split[0]:
            messages.append(
                f"{label}: apiVersion must be 'group/version', e.g. 'ray.io/v1' (got {api_version!r})"
            )
        else:
            group, version = split
            if "." not in group or not _DNS_SUBDOMAIN_RE.match(group) or len(group) > 253:
                messages.append(
                    f"{label}: the group '{group}' must be a DNS subdomain with a dot, e.g. 'ray.io'"
                )
            elif group in _builtin_groups():
                messages.append(
                    f"{label}: '{group}' is a built-in Kubernetes API group; "
                    "only custom resources can be declared"
                )
            if not _DNS_LABEL_RE.match(version):
                messages.append(f"{label}: the version '{version}' is not valid (e.g. v1, v1beta1)")
        if not isinstance(kind, str) or not _KIND_RE.match(kind):
            messages.append(f"{label}: kind must be a CamelCase Kubernetes kind (got {kind!r})")
        if scope not in CR_SCOPES:
            messages.append(f"{label}: scope must be Namespaced or Cluster (got {scope!r})")
        key = (str(api_version), str(kind))
        if key in seen:
            messages.append(f"{label}: declared more than once")
        seen.add(key)
    return messages
