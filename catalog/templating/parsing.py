"""Parsing rendered manifests: bounded safe YAML into plain JSON-compatible objects."""

from __future__ import annotations

import math
from typing import Any

import yaml

from catalog.templating.base import MAX_OBJECTS, TemplateError
from catalog.templating.paths import _join_path
from paas import yamlsafe


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
