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

Modules (this package re-exports their public names: ``from catalog import templating`` is the way in)
    ``base`` names, limits and :class:`TemplateError`; ``sandbox`` the Jinja2 sandbox and its work
    budget and ``rendering`` the static checks and :func:`render` (security code, both);
    ``declarations``; ``parsing`` (bounded YAML); ``objects`` (kinds, schemas, then
    :mod:`catalog.template_policy`); ``inputs`` (deploy-time values); ``paths`` (output field paths);
    ``publish`` (:func:`check_version`, :func:`sample_context`).
"""

from __future__ import annotations

from catalog.templating.base import (
    CLUSTER_DETAILS,
    CR_SCOPES,
    DEFAULT_KUBERNETES_VERSION,
    FIELDS,
    INPUT_TYPES,
    MAX_ALLOCATED,
    MAX_INT_BITS,
    MAX_JSON_INDENT,
    MAX_LONG_TEXT_CHARS,
    MAX_OBJECTS,
    MAX_OUTPUT_CHARS,
    MAX_PRODUCED_CHARS,
    MAX_RANGE,
    MAX_RENDER_SECONDS,
    MAX_STEPS,
    MAX_TEMPLATE_CHARS,
    MAX_TEXT_CHARS,
    MAX_VALUE_SIZE,
    NAME_PATTERN,
    OUTPUT_SOURCE_TYPES,
    TemplateError,
)
from catalog.templating.declarations import (
    validate_declarations,
)
from catalog.templating.inputs import (
    resolve_action_variables,
    resolve_inputs,
)
from catalog.templating.objects import (
    custom_kind_errors,
    validate_objects,
)
from catalog.templating.parsing import (
    parse,
)
from catalog.templating.paths import (
    read_path,
)
from catalog.templating.publish import (
    SAMPLE_HOST_SUFFIX,
    SAMPLE_INSTANCE,
    SAMPLE_NAMESPACE,
    SAMPLE_PROFILE,
    check_version,
    sample_context,
)
from catalog.templating.rendering import (
    render,
)

__all__ = [
    "CLUSTER_DETAILS",
    "CR_SCOPES",
    "DEFAULT_KUBERNETES_VERSION",
    "FIELDS",
    "INPUT_TYPES",
    "MAX_ALLOCATED",
    "MAX_INT_BITS",
    "MAX_JSON_INDENT",
    "MAX_LONG_TEXT_CHARS",
    "MAX_OBJECTS",
    "MAX_OUTPUT_CHARS",
    "MAX_PRODUCED_CHARS",
    "MAX_RANGE",
    "MAX_RENDER_SECONDS",
    "MAX_STEPS",
    "MAX_TEMPLATE_CHARS",
    "MAX_TEXT_CHARS",
    "MAX_VALUE_SIZE",
    "NAME_PATTERN",
    "OUTPUT_SOURCE_TYPES",
    "SAMPLE_HOST_SUFFIX",
    "SAMPLE_INSTANCE",
    "SAMPLE_NAMESPACE",
    "SAMPLE_PROFILE",
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
