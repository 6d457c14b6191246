"""Shared by the template modules: the declared names and limits, and :class:`TemplateError`."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from jinja2.sandbox import (
    UNSAFE_ASYNC_GENERATOR_ATTRIBUTES,
    UNSAFE_COROUTINE_ATTRIBUTES,
    UNSAFE_FUNCTION_ATTRIBUTES,
    UNSAFE_GENERATOR_ATTRIBUTES,
    UNSAFE_METHOD_ATTRIBUTES,
)

DEFAULT_KUBERNETES_VERSION = "1.37.0"
FIELDS = ("manifests", "inputs", "outputs", "actions", "custom_resources")
INPUT_TYPES = ("text", "number", "boolean", "select", "secret", "multiline")
OUTPUT_SOURCE_TYPES = ("field", "secret", "template")
CR_SCOPES = ("Namespaced", "Cluster")
CLUSTER_DETAILS = "cluster_details"
NAME_PATTERN = r"^[a-z_][a-z0-9_]{0,62}$"
_NAME_RE = re.compile(NAME_PATTERN.replace("$", r"\Z"))


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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
