"""Environment templates: declarations, sandboxed rendering and offline validation.

A template version holds Kubernetes manifests written as a Jinja2 template plus declared
``inputs``, ``outputs``, ``actions`` and ``custom_resources`` (formats below).  This module is
pure library code (stdlib, Jinja2, PyYAML, kubernetes-validate): no Django, no Kubernetes client.

Publishing calls :func:`check_version`; deploying calls :func:`resolve_inputs`, :func:`render`,
:func:`parse` and :func:`validate_objects` (with the instance's real namespace: inputs can change
what a template produces, so a deploy-time render must be validated again); output ``field``
sources are read with :func:`read_path`.

Rendering
    Jinja2's :class:`~jinja2.sandbox.ImmutableSandboxedEnvironment`, ``StrictUndefined``, no
    autoescape, no loader (``include``/``import``/``extends`` are refused), ``trim_blocks`` and
    ``lstrip_blocks``.  On top of the sandbox, before anything runs: attributes starting with
    ``_`` (and Python's internal attributes) are refused by a static check with the line number,
    names that are neither in the context nor assigned by the template are refused, and so are
    ``inputs.<name>`` / ``instance.<key>`` / ``profile.<key>`` that do not exist — also in
    branches the sample render does not take.  While rendering, a budget bounds the work:
    ``range()`` size, loop iterations and calls, text produced, the size of every string or list
    built (repetition, concatenation, padding, ``replace``/``join``, format widths), integer
    size, and wall time.  Every failure is a :class:`TemplateError`.

Declarations (JSON-compatible)
    inputs: ``[{"name", "type", "required", "default", "options", "description", "generate"}]``,
    type one of ``text number boolean select secret multiline``; ``options`` for select only;
    ``generate`` (secret only) asks for a random value at launch when none is given.
    ``cluster_details`` is a reserved optional input (type text: comma-separated cluster names).

    outputs: ``[{"name", "description", "source"}]``, source one of
    ``{"type": "field", "apiVersion", "kind", "name", "path"}`` (``name`` may use Jinja; ``path``
    like ``spec.rules[0].host`` or ``metadata.annotations["example.com/key"]``),
    ``{"type": "secret", "name", "key"}`` and ``{"type": "template", "value"}``.

    actions: ``[{"name", "description", "variables": [{"name", "type", "default", "description",
    "options"}]}]``; a template rendered for an action sees ``action = {"name", "variables"}``.

    custom_resources: ``[{"apiVersion": "group/version", "kind", "scope": "Namespaced"|"Cluster"}]``:
    the scope declaration of the custom resources the manifests render. Declaring one is not enough to
    create it: its group and kind must also be on the operators' allow-list (passed to
    :func:`validate_objects` and :func:`check_version` as ``allowed_custom_resources``).
"""

from __future__ import annotations

import collections
import copy
import functools
import hashlib
import json
import math
import re
import secrets
import threading
import time
import traceback
import types
from collections.abc import Callable, Collection, Iterable, Mapping
from importlib import resources
from typing import Any

import kubernetes_validate
import yaml
from jinja2 import meta, nodes
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from jinja2.runtime import StrictUndefined
from jinja2.sandbox import (
    UNSAFE_ASYNC_GENERATOR_ATTRIBUTES,
    UNSAFE_COROUTINE_ATTRIBUTES,
    UNSAFE_FUNCTION_ATTRIBUTES,
    UNSAFE_GENERATOR_ATTRIBUTES,
    UNSAFE_METHOD_ATTRIBUTES,
    ImmutableSandboxedEnvironment,
)
from kubernetes_validate.utils import all_versions

from catalog import template_policy
from catalog.cluster_scoped import CLUSTER_SCOPED_KINDS, CREATE_ONLY_KINDS, NAMESPACED_KINDS
from paas import yamlsafe

__all__ = [
    "DEFAULT_KUBERNETES_VERSION",
    "INPUT_TYPES",
    "SAMPLE_NAMESPACE",
    "TemplateError",
    "check_version",
    "custom_kind_errors",
    "parse",
    "read_path",
    "render",
    "resolve_action_variables",
    "resolve_inputs",
    "sample_context",
    "validate_declarations",
    "validate_objects",
]

DEFAULT_KUBERNETES_VERSION = "1.37.0"
FIELDS = ("manifests", "inputs", "outputs", "actions", "custom_resources")
INPUT_TYPES = ("text", "number", "boolean", "select", "secret", "multiline")
OUTPUT_SOURCE_TYPES = ("field", "secret", "template")
CR_SCOPES = ("Namespaced", "Cluster")
CLUSTER_DETAILS = "cluster_details"
NAME_PATTERN = r"^[a-z_][a-z0-9_]{0,62}$"
_NAME_RE = re.compile(NAME_PATTERN.replace("$", r"\Z"))

SAMPLE_NAMESPACE = "sample-namespace"
#: At publish, Ingress hosts must be under this suffix (at apply, under the instance's own).
SAMPLE_HOST_SUFFIX = f"{SAMPLE_NAMESPACE}.apps.sample.paas.internal"
SAMPLE_INSTANCE = {
    "name": "sample-instance",
    "namespace": SAMPLE_NAMESPACE,
    "host_suffix": SAMPLE_HOST_SUFFIX,
    "project": "sample-project",
    "org": "sample-org",
    "owner": "sample-owner",
}
SAMPLE_PROFILE = {
    "name": "sample-profile",
    "display_name": "Sample profile",
    "resource_groups": [
        {
            "gpu_model": "A100-SXM4-40GB",
            "gpu_count": 1,
            "mig_profile": None,
            "mig_count": 0,
            "cpu": 8,
            "memory_gib": 64,
            "storage_gib": 100,
        }
    ],
}
_PLACEHOLDERS: dict[str, Any] = {
    "text": "sample",
    "number": 1,
    "boolean": False,
    "secret": "sample-secret",
    "multiline": "sample",
}

# ---------------------------------------------------------------------------------------- limits
MAX_TEMPLATE_CHARS = 256 * 1024  # source of the manifests template
MAX_OUTPUT_CHARS = 1024 * 1024  # rendered manifests
MAX_PRODUCED_CHARS = 8 * MAX_OUTPUT_CHARS  # all text produced while rendering (macros, set blocks, ...)
MAX_VALUE_SIZE = 1_000_000  # characters / items of any single string, list or dict built
MAX_RANGE = 10_000  # items of range()
MAX_STEPS = 1_000_000  # loop iterations + calls + filters + operators
MAX_ALLOCATED = 20_000_000  # characters/items of all strings and containers built, added up
_SIZE_MEMORY = 64  # containers whose deep size is remembered
MAX_INT_BITS = 4096  # integers built by * and **
MAX_RENDER_SECONDS = 5.0
MAX_OBJECTS = 300  # objects in one rendered template
MAX_TEXT_CHARS = 4096  # text / select input values
MAX_LONG_TEXT_CHARS = 64 * 1024  # multiline / secret input values
MAX_JSON_INDENT = 16

_SECRET_KEY_RE = re.compile(r"^[-._a-zA-Z0-9]{1,253}\Z")
_KIND_RE = re.compile(r"^[A-Z][A-Za-z0-9]{0,62}\Z")
_DNS_LABEL_RE = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?\Z")
_DNS_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z")
_DICT_ATTRIBUTES = frozenset(name for name in dir(dict) if not name.startswith("_"))
_INTERNAL_ATTRIBUTES = frozenset(
    {"mro"}
    | UNSAFE_FUNCTION_ATTRIBUTES
    | UNSAFE_METHOD_ATTRIBUTES
    | UNSAFE_GENERATOR_ATTRIBUTES
    | UNSAFE_COROUTINE_ATTRIBUTES
    | UNSAFE_ASYNC_GENERATOR_ATTRIBUTES
)


# ---------------------------------------------------------------------------------------- errors
class TemplateError(Exception):
    """A template version the platform refuses.

    ``.errors`` maps a field name (``"manifests"``, ``"inputs"``, ``"outputs"``, ``"actions"``,
    ``"custom_resources"``; for :func:`resolve_inputs` an input name) to a list of human-readable
    messages: line numbers for template errors, the object kind/name and JSON path for schema
    errors.
    """

    def __init__(self, errors: Mapping[str, Iterable[str]] | str, *, field: str = "manifests") -> None:
        if isinstance(errors, str):
            errors = {field: [errors]}
        self.errors: dict[str, list[str]] = {key: list(messages) for key, messages in errors.items()}
        self.errors = {key: messages for key, messages in self.errors.items() if messages}
        super().__init__(self.summary())

    def summary(self) -> str:
        return "; ".join(f"{key}: {message}" for key, messages in self.errors.items() for message in messages)


class _Errors:
    """Collects messages per field, in order, without duplicates."""

    def __init__(self) -> None:
        self.errors: dict[str, list[str]] = {}

    def add(self, field: str, message: str) -> None:
        messages = self.errors.setdefault(field, [])
        if message not in messages:
            messages.append(message)

    def merge(self, error: TemplateError, *, prefix: str = "", skip: Iterable[str] = ()) -> None:
        skipped = set(skip)
        for field, messages in error.errors.items():
            for message in messages:
                if message not in skipped:
                    self.add(field, prefix + message)

    def raise_if_any(self) -> None:
        if self.errors:
            raise TemplateError(self.errors)


# ---------------------------------------------------------------------------------- declarations
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


def _output_errors(outputs: Any) -> list[str]:
    if not isinstance(outputs, list):
        return ["outputs must be a list"]
    messages = []
    for index, entry in enumerate(outputs):
        label = _label("output", entry, index)
        if not isinstance(entry, dict):
            messages.append(f"{label}: must be an object")
            continue
        messages += _unknown_keys(entry, _OUTPUT_KEYS, label)
        name = entry.get("name")
        if not isinstance(name, str) or not _NAME_RE.match(name):
            messages.append(f"{label}: name must match {NAME_PATTERN} (got {name!r})")
        if entry.get("description") is not None and not isinstance(entry.get("description"), str):
            messages.append(f"{label}: description must be a string")
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
        if not isinstance(entry, dict):
            messages.append(f"{label}: must be an object")
            continue
        messages += _unknown_keys(entry, _ACTION_KEYS, label)
        name = entry.get("name")
        if not isinstance(name, str) or not _NAME_RE.match(name):
            messages.append(f"{label}: name must match {NAME_PATTERN} (got {name!r})")
        if entry.get("description") is not None and not isinstance(entry.get("description"), str):
            messages.append(f"{label}: description must be a string")
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


def _cluster_list_problem(value: str) -> str | None:
    parts = [part.strip() for part in value.split(",")]
    if not all(parts):
        return "must be a comma-separated list of cluster names"
    return None


# -------------------------------------------------------------------------------- sample context
def _placeholder(entry: dict) -> Any:
    kind = entry.get("type")
    if kind == "select":
        options = entry.get("options")
        return options[0] if isinstance(options, list) and options else "sample"
    return _PLACEHOLDERS.get(kind, "sample")


def sample_context(
    inputs: Any,
    *,
    actions: Any = None,
    action: str | None = None,
    profile: dict | None = None,
) -> dict:
    """A render context for publish-time checks.

    Inputs take their default; a required input (or a generated secret) without one takes a
    typed placeholder; other inputs are ``None``.  With ``action`` (the name of one of
    ``actions``), ``action`` holds that action's variables at their defaults (placeholders when
    a variable has none).  Tolerates malformed declarations (they are reported elsewhere).
    """
    values: dict[str, Any] = {}
    for entry in inputs if isinstance(inputs, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            continue
        value = entry.get("default")
        if value is None and (entry.get("required") or entry.get("generate")):
            value = _placeholder(entry)
        values[entry["name"]] = value
    context: dict[str, Any] = {
        "inputs": values,
        "instance": dict(SAMPLE_INSTANCE),
        "profile": copy.deepcopy(profile if profile is not None else SAMPLE_PROFILE),
    }
    if action is not None:
        declared = [a for a in actions or [] if isinstance(a, dict) and a.get("name") == action]
        if not declared:
            raise ValueError(f"no action named {action!r}")
        variables: dict[str, Any] = {}
        for entry in declared[0].get("variables") or []:
            if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                default = entry.get("default")
                variables[entry["name"]] = _placeholder(entry) if default is None else default
        context["action"] = {"name": action, "variables": variables}
    return context


# ------------------------------------------------------------------------------------ the sandbox
class _LimitError(SecurityError):
    """A sandbox resource limit was hit."""


class _Budget:
    """Work done by one render: steps, text produced, data built, wall time."""

    def __init__(self) -> None:
        self.deadline = time.monotonic() + MAX_RENDER_SECONDS
        self.steps = 0
        self.produced = 0
        self.allocated = 0

    def tick(self, chars: int = 0) -> None:
        self.steps += 1
        self.produced += chars
        if self.steps > MAX_STEPS:
            raise _LimitError(
                f"the template does too much work (over {MAX_STEPS:,} loop iterations and calls)"
            )
        if self.produced > MAX_PRODUCED_CHARS:
            raise _LimitError(f"the template produces too much text (over {MAX_PRODUCED_CHARS:,} characters)")
        self.check_time()

    def allocate(self, size: int) -> None:
        self.allocated += size
        if self.allocated > MAX_ALLOCATED:
            raise _LimitError(f"the template builds too much data (over {MAX_ALLOCATED:,} characters/items)")

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise _LimitError(f"rendering took longer than {MAX_RENDER_SECONDS:g} s")


_CONTAINERS = (list, tuple, dict, set, frozenset)
_TEXTS = (str, bytes, bytearray)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _arg(args: tuple, kwargs: dict, index: int, name: str, default: Any = None) -> Any:
    return args[index] if len(args) > index else kwargs.get(name, default)


def _shallow(value: Any) -> int:
    return len(value) if isinstance(value, (*_TEXTS, *_CONTAINERS)) else 1


_PRINTF_SPEC_RE = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")
_FORMAT_FIELD_RE = re.compile(r"\{[^{}]*")
_NESTED_FORMAT_RE = re.compile(r"\{[^{}]*:[^{}]*\{")


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox plus a per-render budget (one instance per render).

    Sizes are *deep* (characters + items reachable), so that sharing cannot hide a blow-up
    (``[s] * n``, ``[x, x]`` nested in a loop): every string or container built is checked
    before it is built where that is possible, and before it is turned into text.  The
    immutable sandbox forbids changing lists and dicts, so a container's size, once computed,
    stays true; recent ones are remembered to keep the checks cheap in loops.
    """

    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def __init__(self) -> None:
        self.budget = _Budget()
        self._sizes: collections.OrderedDict[int, tuple[Any, int]] = collections.OrderedDict()
        super().__init__(
            undefined=StrictUndefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            finalize=self._finalize,
            cache_size=0,
            auto_reload=False,
        )
        self.globals.pop("lipsum", None)
        budget = self.budget

        def safe_range(*args: int) -> range:
            budget.tick()
            numbers = range(*args)
            try:
                size = len(numbers)
            except OverflowError:
                size = MAX_RANGE + 1
            if size > MAX_RANGE:
                raise _LimitError(f"range() of more than {MAX_RANGE:,} items is not allowed")
            return numbers

        self.globals["range"] = safe_range
        self.filters = {name: self._wrap_filter(name, func) for name, func in self.filters.items()}

    # -- sizes
    def _known_size(self, value: Any) -> int | None:
        entry = self._sizes.get(id(value))
        return entry[1] if entry is not None and entry[0] is value else None

    def _remember(self, value: Any, size: int) -> None:
        if isinstance(value, _CONTAINERS):
            self._sizes[id(value)] = (value, size)
            self._sizes.move_to_end(id(value))
            while len(self._sizes) > _SIZE_MEMORY:
                self._sizes.popitem(last=False)

    def _size(self, value: Any) -> int:
        """Characters + items reachable from ``value`` (counting stops past the limit)."""
        if isinstance(value, (*_TEXTS, range)):
            return len(value)
        if not isinstance(value, _CONTAINERS):
            return 1
        known = self._known_size(value)
        if known is not None:
            return known
        total, stack, visited = 0, [value], 0
        while stack and total <= MAX_VALUE_SIZE:
            item = stack.pop()
            visited += 1
            if visited % 65536 == 0:
                self.budget.check_time()
            if isinstance(item, _CONTAINERS):
                known = None if item is value else self._known_size(item)
                if known is not None:
                    total += known
                    continue
                total += len(item) + 1
                if isinstance(item, dict):
                    stack.extend(item.keys())
                    stack.extend(item.values())
                else:
                    stack.extend(item)
            elif isinstance(item, (*_TEXTS, range)):
                total += len(item) + 1
            else:
                total += 1
        self._remember(value, total)
        return total

    @staticmethod
    def _check_estimate(estimate: int, what: str) -> None:
        if estimate > MAX_VALUE_SIZE:
            raise _LimitError(f"{what} would be larger than {MAX_VALUE_SIZE:,} characters/items")

    def _check_value(self, value: Any, what: str) -> None:
        self._check_estimate(self._size(value), what)

    def _built(self, value: Any, what: str) -> Any:
        """Account for a value just built by the template and check its size."""
        self._check_value(value, what)
        self.budget.allocate(_shallow(value))
        return value

    @staticmethod
    def _check_count(number: Any, what: str) -> None:
        if _is_int(number) and number > MAX_VALUE_SIZE:
            raise _LimitError(f"{what} {number} is over the sandbox limit of {MAX_VALUE_SIZE:,}")

    def _materialize(self, value: Any) -> Any:
        """Turn an iterator into a list (bounded), so that its size can be checked."""
        if isinstance(value, (*_TEXTS, *_CONTAINERS, range)):
            return value
        items = []
        for item in value:
            items.append(item)
            if len(items) > MAX_VALUE_SIZE:
                raise _LimitError(f"a sequence of more than {MAX_VALUE_SIZE:,} items is not allowed")
        return items

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        """Fail at once (Jinja returns an undefined that fails only when used)."""
        raise SecurityError(f"access to attribute {attribute!r} of a {type(obj).__name__!r} object is unsafe")

    # -- format strings
    def _check_printf(self, fmt: str, args: Any) -> None:
        star = False
        for match in _PRINTF_SPEC_RE.finditer(fmt):
            for group in match.groups():
                if group == "*":
                    star = True
                elif group and int(group) > MAX_VALUE_SIZE:
                    raise _LimitError(f"a format width of {group} is over the sandbox limit")
        values = args if isinstance(args, tuple) else (args,)
        for value in values:
            self._check_value(value, "a formatted value")
            if star:
                self._check_count(value, "a format width of")

    def _check_brace_format(self, fmt: str, args: tuple, kwargs: dict) -> None:
        for field in _FORMAT_FIELD_RE.findall(fmt):
            for digits in re.findall(r"\d+", field):
                if int(digits) > MAX_VALUE_SIZE:
                    raise _LimitError(f"a format width of {digits} is over the sandbox limit")
        values = list(args) + list(kwargs.values())
        if len(args) == 1 and isinstance(args[0], Mapping):
            values += list(args[0].values())
        nested = _NESTED_FORMAT_RE.search(fmt) is not None
        for value in values:
            self._check_value(value, "a formatted value")
            if nested:
                self._check_count(value, "a format width of")

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        fmt = value.__self__
        env = self

        def checked(*args: Any, **kwargs: Any) -> str:
            env._check_brace_format(fmt, args, kwargs)
            return env._built(wrapper(*args, **kwargs), "a formatted string")

        return checked

    # -- operators
    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        self.budget.tick()
        estimate = None
        if operator == "**":
            big = _is_int(left) and _is_int(right) and right > 0 and abs(left) > 1
            if big and right * left.bit_length() > MAX_INT_BITS:
                raise _LimitError(f"the number {left} ** {right} is too large for the sandbox")
        elif operator == "*":
            for sequence, count in ((left, right), (right, left)):
                if isinstance(sequence, (str, list, tuple)) and isinstance(count, int):
                    estimate = max(count, 0) * self._size(sequence)
                    self._check_estimate(estimate, "a repeated string or list")
                    self.budget.allocate(max(count, 0) * len(sequence))
                    break
            else:
                if _is_int(left) and _is_int(right) and left.bit_length() + right.bit_length() > MAX_INT_BITS:
                    raise _LimitError("the product is too large a number for the sandbox")
        elif operator == "+":
            if isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
                estimate = self._size(left) + self._size(right)
                self._check_estimate(estimate, "a concatenated string or list")
                self.budget.allocate(len(left) + len(right))
        elif operator == "%" and isinstance(left, str):
            self._check_printf(left, right)
        result = self.binop_table[operator](left, right)
        if estimate is not None:
            self._remember(result, estimate)
        elif operator == "%" and isinstance(result, str):
            self._built(result, "a formatted string")
        return result

    # -- calls and filters
    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        self.budget.tick()
        if getattr(obj, "__self__", None) is self:  # a budget hook (templates cannot name them)
            return obj(*args)
        args = self._precheck_call(obj, args, kwargs)
        return self._built(super().call(context, obj, *args, **kwargs), "the result of a call")

    def _precheck_call(self, obj: Any, args: tuple, kwargs: dict) -> tuple:
        if not isinstance(obj, types.BuiltinMethodType):
            return args
        owner, name = obj.__self__, obj.__name__
        if name in ("translate", "maketrans"):
            raise SecurityError(f"{name}() is not available in templates")
        if isinstance(owner, _TEXTS):
            if name in ("ljust", "rjust", "center", "zfill"):
                self._check_count(_arg(args, kwargs, 0, "width"), "a width of")
            elif name == "expandtabs":
                size = _arg(args, kwargs, 0, "tabsize", 8)
                if _is_int(size):
                    self._check_estimate(len(owner) * max(size, 1), "the expanded string")
            elif name == "replace":
                old, new = _arg(args, kwargs, 0, "old"), _arg(args, kwargs, 1, "new")
                count = _arg(args, kwargs, 2, "count", -1)
                self._check_estimate(_replace_estimate(owner, old, new, count), "the replaced string")
            elif name == "join" and args:
                items = self._materialize(args[0])
                self._check_estimate(self._size(items) + len(owner) * len(items), "the joined string")
                args = (items, *args[1:])
        elif _is_int(owner) and name == "to_bytes":
            self._check_count(_arg(args, kwargs, 0, "length", 1), "a length of")
        return args

    def _wrap_filter(self, name: str, func: Callable[..., Any]) -> Callable[..., Any]:
        skip = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0
        env = self

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            env.budget.tick()
            if len(args) > skip:
                value = env._precheck_filter(name, args[skip], args[skip + 1 :], kwargs)
                args = (*args[:skip], value, *args[skip + 1 :])
            return env._built(func(*args, **kwargs), f"the result of the '{name}' filter")

        return wrapper

    def _precheck_filter(self, name: str, value: Any, args: tuple, kwargs: dict) -> Any:
        if name == "join":
            value = self._materialize(value)
        self._check_value(value, f"the value given to the '{name}' filter")
        text = value if isinstance(value, str) else None
        if name == "center":
            self._check_count(_arg(args, kwargs, 0, "width", 80), "a width of")
        elif name == "indent" and text is not None:
            width = _arg(args, kwargs, 0, "width", 4)
            per_line = len(width) if isinstance(width, str) else width if _is_int(width) else 0
            self._check_estimate(len(text) + per_line * (text.count("\n") + 1), "the indented string")
        elif name == "wordwrap" and text is not None:
            wrapstring = _arg(args, kwargs, 2, "wrapstring")
            if isinstance(wrapstring, str):
                self._check_estimate(len(text) + len(wrapstring) * (len(text) + 1), "the wrapped string")
        elif name in ("batch", "slice"):
            count = _arg(args, kwargs, 0, "linecount" if name == "batch" else "slices")
            self._check_count(count, "a count of")
        elif name == "format" and text is not None:
            self._check_printf(text, tuple(args) if args else kwargs)
        elif name == "replace" and text is not None:
            old, new = _arg(args, kwargs, 0, "old"), _arg(args, kwargs, 1, "new")
            count = _arg(args, kwargs, 2, "count")
            self._check_estimate(
                _replace_estimate(text, old, new, -1 if count is None else count), "the replaced string"
            )
        elif name == "join":
            separator = _arg(args, kwargs, 0, "d", "")
            length = len(separator) if isinstance(separator, str) else 0
            self._check_estimate(self._size(value) + length * len(value), "the joined string")
        elif name == "tojson":
            indent = _arg(args, kwargs, 0, "indent")
            if (_is_int(indent) and indent > MAX_JSON_INDENT) or (
                isinstance(indent, str) and len(indent) > MAX_JSON_INDENT
            ):
                raise _LimitError(f"tojson indent is limited to {MAX_JSON_INDENT}")
        return value

    # -- hooks called by instrumented templates (see _instrument)
    def _finalize(self, value: Any) -> str:
        if not isinstance(value, str):
            self._check_value(value, "an output value")
            value = str(value)
        self.budget.tick(len(value))
        return value

    def paas_tick(self, chars: int = 0) -> None:
        self.budget.tick(chars)

    def paas_tick_true(self) -> bool:
        self.budget.tick()
        return True

    def paas_check(self, value: Any) -> Any:
        return self._built(value, "a list or dict literal")

    def paas_concat(self, *parts: Any) -> str:
        strings, total = [], 0
        for part in parts:
            if not isinstance(part, str):
                self._check_value(part, "a concatenated value")
                part = str(part)
            total += len(part)
            self._check_estimate(total, "a concatenated string")
            strings.append(part)
        return self._built("".join(strings), "a concatenated string")


def _replace_estimate(text: Any, old: Any, new: Any, count: Any) -> int:
    if not (isinstance(text, str) and isinstance(old, str) and isinstance(new, str)):
        return 0
    occurrences = len(text) + 1 if old == "" else text.count(old)
    if _is_int(count) and count >= 0:
        occurrences = min(occurrences, count)
    return len(text) + occurrences * max(len(new) - len(old), 0)


_REFUSED_TAGS = {
    nodes.Extends: "extends",
    nodes.Include: "include",
    nodes.Import: "import",
    nodes.FromImport: "from ... import",
}
_BUDGETED_BODIES = (nodes.For, nodes.Macro, nodes.CallBlock)


def _syntax_message(exc: TemplateSyntaxError) -> str:
    return f"line {exc.lineno}: syntax error: {exc.message}"


_ATTRIBUTE_FILTERS = frozenset({"attr", "selectattr", "rejectattr", "groupby"})  # attribute as 1st argument


def _attribute_arguments(node: nodes.Node) -> list[Any]:
    """Attribute names a node reads: ``x.a``, ``x['a']``, ``|attr('a')``, ``|map(attribute='a.b')``."""
    if isinstance(node, nodes.Getattr):
        return [node.attr]
    if isinstance(node, nodes.Getitem):
        return [node.arg.value] if isinstance(node.arg, nodes.Const) else []
    names = []
    if isinstance(node, (nodes.Filter, nodes.Test)):
        if node.name in _ATTRIBUTE_FILTERS and node.args and isinstance(node.args[0], nodes.Const):
            names.append(node.args[0].value)
        for keyword in node.kwargs:
            if keyword.key == "attribute" and isinstance(keyword.value, nodes.Const):
                names.append(keyword.value.value)
        names = [part for name in names if isinstance(name, str) for part in name.split(".")]
    return names


def _static_problems(ast: nodes.Template) -> list[str]:
    """Sandbox escapes that can be seen without running the template."""
    problems: list[tuple[int, str]] = []
    for node in ast.find_all(tuple(_REFUSED_TAGS)):
        tag = _REFUSED_TAGS[type(node)]
        problems.append((node.lineno, f"{{% {tag} %}} is not allowed: a template is self-contained"))
    for node in ast.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter, nodes.Test)):
        for attribute in _attribute_arguments(node):
            if isinstance(attribute, str) and (
                attribute.startswith("_") or attribute in _INTERNAL_ATTRIBUTES
            ):
                message = f"access to the attribute '{attribute}' is not allowed (sandbox)"
                problems.append((node.lineno, message))
    return [f"line {line}: {message}" for line, message in sorted(set(problems))]


def _assigned_names(ast: nodes.Template) -> set[str]:
    names = {node.name for node in ast.find_all(nodes.Name) if node.ctx in ("store", "param")}
    names |= {node.name for node in ast.find_all(nodes.NSRef)}
    names |= {node.name for node in ast.find_all(nodes.Macro)}
    return names


def _name_problems(ast: nodes.Template, context: Mapping[str, Any], env: _Sandbox) -> list[str]:
    """Undefined top-level names, and unknown keys of inputs/instance/profile, in every branch."""
    assigned = _assigned_names(ast)
    known = set(context) | set(env.globals) | {"action"}
    problems: list[tuple[int, str]] = []
    loads: dict[str, int] = {}
    for node in ast.find_all(nodes.Name):
        if node.ctx == "load":
            loads[node.name] = min(loads.get(node.name, node.lineno), node.lineno)
    for name in sorted(meta.find_undeclared_variables(ast) - known - assigned):
        problems.append((loads.get(name, 1), f"'{name}' is undefined"))
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        base = node.node
        if not isinstance(base, nodes.Name) or base.ctx != "load":
            continue
        if base.name not in ("inputs", "instance", "profile"):
            continue
        if base.name in assigned or not isinstance(context.get(base.name), Mapping):
            continue
        key = node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", None)
        if isinstance(key, str) and key not in context[base.name] and key not in _DICT_ATTRIBUTES:
            noun = "a declared input" if base.name == "inputs" else f"a key of {base.name}"
            problems.append((node.lineno, f"'{base.name}.{key}' is undefined: '{key}' is not {noun}"))
    return [f"line {line}: {message}" for line, message in sorted(set(problems))]


def _literal_chars(body: list[nodes.Node]) -> int:
    """Template text directly in ``body`` (nested loops and macros count their own)."""
    total, stack = 0, list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, nodes.TemplateData):
            total += len(node.data)
        elif not isinstance(node, _BUDGETED_BODIES):
            stack.extend(node.iter_child_nodes())
    return total


def _hook(name: str, args: list[nodes.Expr], lineno: int) -> nodes.Call:
    call = nodes.Call(nodes.EnvironmentAttribute(name), args, [], None, None)
    return call.set_lineno(lineno)


def _instrument(node: nodes.Node) -> nodes.Node:
    """Rewrite the template so that loops, macros, literals and ``~`` go through the budget."""
    for field in node.fields:
        value = getattr(node, field, None)
        if isinstance(value, list):
            value = [_instrument(item) if isinstance(item, nodes.Node) else item for item in value]
            setattr(node, field, value)
        elif isinstance(value, nodes.Node):
            setattr(node, field, _instrument(value))
    lineno = node.lineno or 1
    if isinstance(node, _BUDGETED_BODIES):
        tick = nodes.ExprStmt(_hook("paas_tick", [nodes.Const(_literal_chars(node.body))], lineno))
        node.body = [tick.set_lineno(lineno), *node.body]
        if isinstance(node, nodes.For) and node.test is not None:
            node.test = nodes.And(_hook("paas_tick_true", [], lineno), node.test).set_lineno(lineno)
        return node
    if isinstance(node, nodes.Concat):
        return _hook("paas_concat", list(node.nodes), lineno)
    if isinstance(node, (nodes.List, nodes.Dict)) or (isinstance(node, nodes.Tuple) and node.ctx == "load"):
        return _hook("paas_check", [node], lineno)
    return node


def _template_line(exc: BaseException) -> int | None:
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename == "<template>":
            return frame.lineno
    return None


def _runtime_message(exc: BaseException) -> str:
    line = _template_line(exc)
    prefix = f"line {line}: " if line else ""
    if isinstance(exc, _LimitError):
        return f"{prefix}sandbox limit: {exc}"
    if isinstance(exc, SecurityError):
        return f"{prefix}refused by the sandbox: {exc}"
    if isinstance(exc, UndefinedError):
        return f"{prefix}undefined variable: {exc.message}"
    if isinstance(exc, TemplateSyntaxError):
        return _syntax_message(exc)
    if isinstance(exc, RecursionError):
        return f"{prefix}sandbox limit: recursion too deep"
    if isinstance(exc, MemoryError):
        return f"{prefix}sandbox limit: out of memory"
    return _truncate(f"{prefix}{type(exc).__name__}: {exc}", 300)


def _compile(source: Any, context: Mapping[str, Any] | None) -> tuple[Any, _Sandbox | None, list[str]]:
    """Parse, check statically and compile ``source``; ``context`` enables the name checks."""
    if not isinstance(source, str):
        return None, None, ["the template must be a string"]
    if len(source) > MAX_TEMPLATE_CHARS:
        return None, None, [f"the template is larger than {MAX_TEMPLATE_CHARS // 1024} KiB"]
    try:
        return _compile_checked(source, context)
    except RecursionError:
        # Jinja's parser, our AST checks and its compiler recurse once per nesting level: thousands
        # of "(" or nested blocks exhaust Python's stack. That is the author's error, said plainly.
        return None, None, ["the template is nested too deeply (brackets, expressions or blocks)"]


def _compile_checked(
    source: str, context: Mapping[str, Any] | None
) -> tuple[Any, _Sandbox | None, list[str]]:
    env = _Sandbox()
    try:
        ast = env.parse(source)
    except TemplateSyntaxError as exc:
        return None, None, [_syntax_message(exc)]
    problems = _static_problems(ast)
    if problems:
        return None, None, problems
    if context is not None:
        try:
            problems = _name_problems(ast, context, env)
        except TemplateSyntaxError as exc:  # e.g. an unknown filter (TemplateAssertionError)
            return None, None, [_syntax_message(exc)]
        if problems:
            return None, None, problems
    ast = _instrument(ast)
    ast.set_environment(env)
    try:
        template = env.from_string(ast)
    except TemplateSyntaxError as exc:  # e.g. an unknown filter (TemplateAssertionError)
        return None, None, [_syntax_message(exc)]
    except Exception as exc:  # constant folding at compile time can hit a limit
        return None, None, [_runtime_message(exc)]
    return template, env, []


def _template_problems(source: str) -> list[str]:
    """Syntax and sandbox problems of a small template (output sources), without rendering."""
    return _compile(source, None)[2]


def render(manifests: str, context: Mapping[str, Any], *, field: str = "manifests") -> str:
    """Render ``manifests`` with ``context`` in the sandbox; errors are keyed by ``field``."""
    template, _env, problems = _compile(manifests, context)
    if problems:
        raise TemplateError({field: problems})
    chunks: list[str] = []
    total = 0
    try:
        for chunk in template.generate(dict(context)):
            total += len(chunk)
            if total > MAX_OUTPUT_CHARS:
                raise _LimitError(f"the rendered text is larger than {MAX_OUTPUT_CHARS // 1024} KiB")
            chunks.append(chunk)
    except Exception as exc:  # any failure of a user's template is the user's error
        raise TemplateError({field: [_runtime_message(exc)]}) from exc
    return "".join(chunks)


# ------------------------------------------------------------------------------------------ YAML
class _YamlLoader(yamlsafe.LimitedLoaderMixin, yaml.SafeLoader):
    """Safe YAML without aliases (no expansion bombs), nested at most ``yamlsafe.MAX_DEPTH`` levels
    (no stack exhaustion), and without timestamps (they stay strings)."""


_YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_YamlLoader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


def _yaml_message(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    return f"YAML error{where}: {problem}" + (f" ({context})" if context else "")


def _json_problem(value: Any) -> str | None:
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    return f"{path or '(top)'}: the key {key!r} must be a string"
                stack.append((child, _join_path(path, key)))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{index}]") for index, child in enumerate(item))
        elif isinstance(item, float) and not math.isfinite(item):
            return f"{path}: {item} is not a valid number"
        elif item is not None and not isinstance(item, (str, int, float, bool)):
            return f"{path}: a {type(item).__name__} value is not allowed (JSON types only)"
    return None


def _object_label(obj: Any) -> str | None:
    if not isinstance(obj, dict):
        return None
    kind = obj.get("kind")
    metadata = obj.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if isinstance(kind, str) and kind and isinstance(name, str) and name:
        return f"{kind}/{name}"
    return None


def _shape_problems(obj: Any) -> list[str]:
    if not isinstance(obj, dict):
        return [f"must be a mapping (got {type(obj).__name__})"]
    problems = []
    for key in ("apiVersion", "kind"):
        if not isinstance(obj.get(key), str) or not obj.get(key):
            problems.append(f"{key} is required and must be a string")
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        problems.append("metadata is required and must be a mapping")
    else:
        name = metadata.get("name")
        if not isinstance(name, str) or not name:
            problems.append("metadata.name is required and must be a string (generateName is not supported)")
        elif len(name) > 253 or "/" in name or "%" in name or name in (".", ".."):
            problems.append(f"metadata.name {name!r} is not a valid object name")
    problem = _json_problem(obj)
    if problem:
        problems.append(problem)
    return problems


def parse(rendered: str) -> list[dict]:
    """The objects of a rendered template (``kind: List`` flattened, empty documents skipped)."""
    loader = _YamlLoader(rendered)
    found: list[tuple[Any, str]] = []
    try:
        number = 0
        while loader.check_node():
            node = loader.get_node()
            number += 1
            document = loader.construct_document(node)
            if document is None or document == {} or document == []:
                continue
            found.append((document, f"document {number}, line {node.start_mark.line + 1}"))
    except yaml.YAMLError as exc:
        raise TemplateError({"manifests": [_yaml_message(exc)]}) from exc
    finally:
        loader.dispose()
    objects: list[dict] = []
    problems: list[str] = []
    while found:
        document, where = found.pop(0)
        if isinstance(document, dict) and document.get("kind") == "List" and "items" in document:
            items = document.get("items")
            if document.get("apiVersion") != "v1" or not isinstance(items, list):
                problems.append(f"{where}: a List needs apiVersion v1 and a list of items")
                continue
            found[:0] = [(item, f"{where}, item {index + 1}") for index, item in enumerate(items)]
            continue
        shape = _shape_problems(document)
        label = _object_label(document)
        problems += [f"{label + ' (' + where + ')' if label else where}: {problem}" for problem in shape]
        if not shape:
            objects.append(document)
    if len(objects) > MAX_OBJECTS:
        problems.append(f"a template may create at most {MAX_OBJECTS} objects (got {len(objects)})")
    if problems:
        raise TemplateError({"manifests": problems})
    return objects


# ---------------------------------------------------------------------------- object validation
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


def _join_path(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    key = str(key)
    if re.fullmatch(r"[A-Za-z0-9_-]+", key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


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


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


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


# ---------------------------------------------------------------------------------- publish check
def check_version(
    *,
    manifests: str,
    inputs: Any,
    outputs: Any,
    actions: Any,
    custom_resources: Any,
    kubernetes_version: str = DEFAULT_KUBERNETES_VERSION,
    allowed_custom_resources: Collection[tuple[str, str]] = frozenset(),
) -> list[dict]:
    """The publish-time check; returns the objects rendered with the defaults (a preview).

    Declarations are validated; the manifests are rendered with :func:`sample_context`, parsed and
    validated (namespace ``sample-namespace``), then rendered and validated once per action with
    that action's variable defaults; output templates (and Jinja in output source names) are
    rendered too.  All problems are collected into one :class:`TemplateError`.
    """
    _schema_version(kubernetes_version)  # a platform misconfiguration is not the author's error
    errors = _Errors()
    try:
        validate_declarations(
            inputs=inputs, outputs=outputs, actions=actions, custom_resources=custom_resources
        )
    except TemplateError as exc:
        errors.merge(exc)

    def build(context: dict) -> list[dict]:
        objects = parse(render(manifests, context))
        validate_objects(
            objects,
            namespace=SAMPLE_NAMESPACE,
            kubernetes_version=kubernetes_version,
            custom_resources=custom_resources,
            host_suffix=SAMPLE_HOST_SUFFIX,
            allowed_custom_resources=allowed_custom_resources,
        )
        return objects

    context = sample_context(inputs, actions=actions)
    preview: list[dict] = []
    try:
        preview = build(context)
    except TemplateError as exc:
        errors.merge(exc)
    default_messages = list(errors.errors.get("manifests", []))
    declared_actions = actions if isinstance(actions, list) else []
    action_names = [a.get("name") for a in declared_actions if isinstance(a, dict)]
    for name in dict.fromkeys(n for n in action_names if isinstance(n, str) and n):
        try:
            build(sample_context(inputs, actions=actions, action=name))
        except TemplateError as exc:
            errors.merge(exc, prefix=f"when rendered for action '{name}': ", skip=default_messages)

    declared = _declared_resources(custom_resources)
    for index, output in enumerate(outputs if isinstance(outputs, list) else []):
        source = output.get("source") if isinstance(output, dict) else None
        if not isinstance(source, dict):
            continue
        label = _label("output", output, index)
        texts = []
        if source.get("type") == "template" and isinstance(source.get("value"), str):
            texts.append(("value", source["value"]))
        if source.get("type") in ("field", "secret") and isinstance(source.get("name"), str):
            texts.append(("source name", source["name"]))
        for what, text in texts:
            if _template_problems(text):
                continue  # already reported by validate_declarations
            try:
                render(text, context, field="outputs")
            except TemplateError as exc:
                errors.merge(exc, prefix=f"{label}: {what}: ")
        api_version, kind = source.get("apiVersion"), source.get("kind")
        checkable = isinstance(api_version, str) and isinstance(kind, str) and _split_api_version(api_version)
        if source.get("type") == "field" and checkable:
            problem, _ = _kind_problem(api_version, kind, declared, kubernetes_version)
            if problem:
                errors.add("outputs", f"{label}: source: {problem}")
    errors.raise_if_any()
    return preview


# ------------------------------------------------------------------------------------ deploy time
def _coerce(kind: str, value: Any, options: list[str], *, strict: bool = False) -> tuple[Any, str | None]:
    """``(value, None)`` or ``(None, problem)``; ``strict`` (declared defaults) refuses strings for
    numbers and booleans."""
    if kind == "number":
        if _is_int(value) or (isinstance(value, float) and math.isfinite(value)):
            return value, None
        if isinstance(value, str) and not strict:
            text = value.strip()
            # ASCII digits only: int() and float() also take Arabic-Indic or fullwidth digits.
            if re.fullmatch(r"[+-]?[0-9]{1,30}", text):
                return int(text), None
            if re.fullmatch(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", text):
                number = float(text)
                if math.isfinite(number):
                    return number, None
        return None, "must be a number"
    if kind == "boolean":
        if isinstance(value, bool):
            return value, None
        if isinstance(value, str) and not strict and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true", None
        return None, "must be true or false"
    if not isinstance(value, str):
        return None, "must be a string"
    if kind == "select":
        if value not in options:
            return None, f"must be one of: {', '.join(options)}"
        return value, None
    if kind == "text":
        if "\n" in value or "\r" in value:
            return None, "must be a single line of text"
        if len(value) > MAX_TEXT_CHARS:
            return None, f"must be at most {MAX_TEXT_CHARS} characters"
        return value, None
    if len(value) > MAX_LONG_TEXT_CHARS:
        return None, f"must be at most {MAX_LONG_TEXT_CHARS} characters"
    return value, None


def _resolve(declared: list[dict], given: Any, *, noun: str) -> dict:
    if given is None:
        given = {}
    if not isinstance(given, Mapping):
        raise TemplateError({"inputs": [f"{noun}s must be an object"]})
    errors: dict[str, list[str]] = {}
    names = {entry["name"] for entry in declared}
    for name in given:
        if name not in names:
            errors.setdefault(str(name), []).append(f"is not a declared {noun}")
    resolved: dict[str, Any] = {}
    for entry in declared:
        name, kind = entry["name"], entry["type"]
        value = given.get(name)
        if value is None or (isinstance(value, str) and value == ""):
            value = entry.get("default")
        if value is None and kind == "secret" and entry.get("generate"):
            value = secrets.token_urlsafe(18)
        if value is None:
            if entry.get("required"):
                errors.setdefault(name, []).append("is required")
            resolved[name] = None
            continue
        value, problem = _coerce(kind, value, entry.get("options") or [])
        if problem is None and name == CLUSTER_DETAILS and noun == "input":
            problem = _cluster_list_problem(value) if value else None
        if problem:
            errors.setdefault(name, []).append(problem)
            continue
        resolved[name] = value
    if errors:
        raise TemplateError(errors)
    return resolved


def resolve_inputs(declared: list[dict], given: Mapping[str, Any] | None) -> dict:
    """The ``inputs`` of a launch: given values coerced and checked, defaults applied.

    Numbers accept numbers or numeric strings; booleans accept booleans or "true"/"false"; a
    select value must be one of its options; text is single-line; a required input must end up
    with a value; undeclared names are refused; a secret with ``generate`` and no value gets
    ``secrets.token_urlsafe(18)``.  Raises :class:`TemplateError` keyed by input name.
    """
    return _resolve(declared, given, noun="input")


def resolve_action_variables(action: dict, given: Mapping[str, Any] | None) -> dict:
    """The ``action["variables"]`` of an action run (same rules as inputs; nothing is required)."""
    return _resolve(list(action.get("variables") or []), given, noun="variable")


# -------------------------------------------------------------------------------- output reading
_PATH_KEY_RE = re.compile(r"[^.\[\]\"']+")
_PATH_BRACKET_RE = re.compile(r"""\[(?:(\d+)|"([^"]*)"|'([^']*)')\]""")


def _parse_path(path: Any) -> list[str | int]:
    """``spec.rules[0].host`` -> ``["spec", "rules", 0, "host"]``; ``a["b.c/d"]`` for odd keys."""
    if not isinstance(path, str) or not path:
        raise ValueError("path must be a non-empty string such as spec.rules[0].host")
    parts: list[str | int] = []
    position = 0
    while position < len(path):
        if path[position] == "[":
            match = _PATH_BRACKET_RE.match(path, position)
            if not match:
                raise ValueError(f"invalid path {path!r} at position {position + 1}")
            index, double, single = match.groups()
            parts.append(int(index) if index is not None else double if double is not None else single)
        else:
            if parts:
                if path[position] != ".":
                    raise ValueError(f"invalid path {path!r} at position {position + 1}")
                position += 1
            match = _PATH_KEY_RE.match(path, position)
            if not match:
                raise ValueError(f"invalid path {path!r} at position {position + 1}")
            parts.append(match.group())
        position = match.end()
    return parts


def read_path(obj: Any, path: str) -> Any:
    """The value at ``path`` in ``obj`` (e.g. ``spec.rules[0].host``), or ``None`` if absent."""
    value = obj
    for part in _parse_path(path):
        if isinstance(part, int):
            if not isinstance(value, list) or part >= len(value):
                return None
            value = value[part]
        else:
            if not isinstance(value, dict) or part not in value:
                return None
            value = value[part]
    return value
