"""The publish-time check of a template version, rendered with a sample context."""

from __future__ import annotations

import copy
from collections.abc import Collection
from typing import Any

from catalog.templating.base import DEFAULT_KUBERNETES_VERSION, TemplateError, _Errors
from catalog.templating.declarations import _label, validate_declarations
from catalog.templating.objects import (
    _declared_resources,
    _kind_problem,
    _schema_version,
    _split_api_version,
    validate_objects,
)
from catalog.templating.parsing import parse
from catalog.templating.rendering import _template_problems, render

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
    "host": f"sample-instance.{SAMPLE_HOST_SUFFIX}",
}
#: What a service template sees besides (instances.service_render.service_context; CONTRACTS13.md).
SAMPLE_SERVICE_KEYS = {
    "service": {**SAMPLE_INSTANCE, "type": "custom", "url": f"https://sample-instance.{SAMPLE_HOST_SUFFIX}"},
    "compute_instance": {
        "name": "sample-compute",
        "namespace": SAMPLE_NAMESPACE,
        "profile": "sample-profile",
        "resource_groups": [],
    },
    "ingress": {
        "host": f"sample-instance.{SAMPLE_HOST_SUFFIX}",
        "class_name": "",
        "tls": True,
        "scheme": "https",
        "url": f"https://sample-instance.{SAMPLE_HOST_SUFFIX}",
    },
    "extra": {},
    "storage": [],
    "storage_class": "",
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
        **copy.deepcopy(SAMPLE_SERVICE_KEYS),
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
