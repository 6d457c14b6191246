"""Deploy time: the values of a launch's inputs and an action run's variables, coerced and checked."""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Mapping
from typing import Any

from catalog.templating.base import (
    CLUSTER_DETAILS,
    MAX_LONG_TEXT_CHARS,
    MAX_TEXT_CHARS,
    TemplateError,
    _is_int,
)


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


def _cluster_list_problem(value: str) -> str | None:
    parts = [part.strip() for part in value.split(",")]
    if not all(parts):
        return "must be a comma-separated list of cluster names"
    return None
