"""The inputs of a service launch: the admin's per-input decisions applied to what the user sends.

A service profile's ``input_settings`` holds, per declared template input, the admin's decisions
(service profiles reference, "Input Settings"):

``default``      the value used when the user gives none (else the template's own default);
``required``     the input must end up with a value (else the template's ``required``);
``exposed``      the user is shown the input (and may send it);
``overridable``  the user may change it (an exposed, non-overridable input is shown read-only).

An input without settings is neither exposed nor overridable: the template's default applies (the
studio refuses a required input without a default that users cannot set). What the user sends is
checked here, each refusal a ``ValidationFailed`` naming the field: an unknown input, an input that is
not exposed, a non-overridable input changed from its default, a bad value (the template input rules
of ``catalog.templating``: numbers, booleans, select options, single-line text), a required input
missing after defaults. A secret input (``type: secret``) with ``generate: true`` gets a random value
when none is given; secrets are stored sealed (``catalog.secret_inputs``) and never shown.

Works on a ``ServiceProfile`` or on a service's launch snapshot (what a redeploy sees), alike.
"""

from __future__ import annotations

import secrets as random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from catalog import secret_inputs, templating
from catalog.templating.inputs import _coerce
from paas.errors import ValidationFailed


@dataclass(frozen=True)
class InputField:
    """One input as the user is shown it (exposed inputs only)."""

    name: str
    type: str
    label: str
    description: str = ""
    options: list[str] = field(default_factory=list)
    default: Any = None
    required: bool = False
    overridable: bool = True
    secret: bool = False
    generated: bool = False  # a secret the platform generates when none is given


def _declared_and_settings(source) -> tuple[list[dict], dict]:
    """(declared inputs, input settings) of a ServiceProfile or of a service snapshot."""
    if isinstance(source, Mapping):
        return list((source.get("template") or {}).get("inputs") or []), dict(
            source.get("input_settings") or {}
        )
    return list(source.template_version.inputs or []), dict(source.input_settings or {})


@dataclass(frozen=True)
class _Rule:
    entry: dict
    default: Any
    required: bool
    exposed: bool
    overridable: bool


def _rules(source) -> dict[str, _Rule]:
    declared, settings = _declared_and_settings(source)
    rules = {}
    for entry in declared:
        setting = settings.get(entry["name"]) if isinstance(settings.get(entry["name"]), Mapping) else {}
        default = setting.get("default")
        if default is None:
            default = entry.get("default")
        required = setting.get("required")
        exposed = bool(setting.get("exposed", False))
        rules[entry["name"]] = _Rule(
            entry=entry,
            default=default,
            required=bool(entry.get("required", False) if required is None else required),
            exposed=exposed,
            overridable=exposed and bool(setting.get("overridable", False)),
        )
    return rules


def _label(name: str) -> str:
    return name.replace("_", " ").strip().capitalize()


def input_fields(profile_or_snapshot) -> list[InputField]:
    """The inputs the user is shown (exposed ones), in the template's order; a secret's default is
    never shown."""
    fields = []
    for name, rule in _rules(profile_or_snapshot).items():
        if not rule.exposed:
            continue
        secret = rule.entry.get("type") == "secret"
        fields.append(
            InputField(
                name=name,
                type=rule.entry.get("type", "text"),
                label=_label(name),
                description=rule.entry.get("description") or "",
                options=list(rule.entry.get("options") or []),
                default=None if secret else rule.default,
                required=rule.required,
                overridable=rule.overridable,
                secret=secret,
                generated=secret and bool(rule.entry.get("generate")),
            )
        )
    return fields


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value == "")


def resolve_inputs(
    *, snapshot, given: Mapping | None, org_id: int | None, previous: Mapping | None = None
) -> dict:
    """The values a service deploys with: template defaults < the settings' defaults < the user's
    values, each user value checked against the settings; secrets sealed (a generated one included).

    ``given`` is what the user sent (the launch form or API body: only exposed inputs, only changed
    when overridable). ``org_id``: the org whose data key seals the secrets. ``previous`` (a redeploy:
    the stored values) is what a value not given keeps, instead of the default; a sealed secret stays
    as it was. Raises ``ValidationFailed`` with ``fields`` keyed by input name.
    """
    if given is None:
        given = {}
    if not isinstance(given, Mapping):
        raise ValidationFailed("Invalid inputs.", fields={"inputs": "An object of input names and values."})
    rules = _rules(snapshot)
    previous = dict(previous or {})
    errors: dict[str, str] = {}
    for name in given:
        if name not in rules:
            errors[str(name)] = f"{name!r} is not an input of this service profile."
    values: dict[str, Any] = {}
    for name, rule in rules.items():
        kind, options = rule.entry.get("type"), rule.entry.get("options") or []
        value = given.get(name)
        if not _blank(value):
            if not rule.exposed:
                errors[name] = "This input is set by the service profile and cannot be given."
                continue
            if kind == "secret" and secret_inputs.is_sealed(value):
                errors[name] = "An encrypted value cannot be given; give the secret's value."
                continue
            if not rule.overridable:
                default = _coerce(kind, rule.default, options)[0] if rule.default is not None else None
                if _coerce(kind, value, options)[0] != default or default is None:
                    errors[name] = "This input cannot be changed (it is fixed by the service profile)."
                    continue
        elif name in previous and not _blank(previous[name]):
            value = previous[name]
        else:
            value = rule.default
        if secret_inputs.is_sealed(value):
            values[name] = value  # a stored secret (redeploy) is kept as it is
            continue
        if _blank(value) and kind == "secret" and rule.entry.get("generate"):
            value = random.token_urlsafe(18)
        if _blank(value):
            if rule.required:
                errors[name] = "This input is required."
            values[name] = None
            continue
        coerced, problem = _coerce(kind, value, options)
        if problem is None and name == templating.CLUSTER_DETAILS:
            from catalog.templating.inputs import _cluster_list_problem

            problem = _cluster_list_problem(coerced) if coerced else None
        if problem:
            errors[name] = f"The value {problem}."
            continue
        values[name] = coerced
    if errors:
        first = next(iter(errors))
        raise ValidationFailed(f"Invalid input {first!r}: {errors[first]}", fields=errors)
    return secret_inputs.seal(
        [rule.entry for rule in rules.values()],
        {k: v for k, v in values.items() if not secret_inputs.is_sealed(v)},
        org_id=org_id,
    ) | {k: v for k, v in values.items() if secret_inputs.is_sealed(v)}


def shown_values(snapshot, values: Mapping | None) -> dict:
    """Input values for display: secrets masked, inputs that are not exposed left out."""
    rules = _rules(snapshot)
    return {
        name: value
        for name, value in secret_inputs.masked(dict(values or {})).items()
        if name in rules and rules[name].exposed
    }
