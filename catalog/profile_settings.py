"""A service profile's decisions about its template version, checked (``check_service``) and laid out
as the studio wizard's tables (``settings_rows``).

The settings are keyed by what the template version declares:

* ``input_settings``: ``{input: {default, required, exposed, overridable}}``
* ``output_settings``: ``{output: {shown, label}}``
* ``action_settings``: ``{action: {variable: {alias, tooltip, allow_override, default}}}``

A default must be a valid value of the input's (or variable's) type and options: it is stored coerced
(``"3"`` for a number input becomes ``3``). A profile stores no secret: a secret input's value comes
from the user at launch or is generated. A required input without a default must be exposed and
overridable, or no one could ever give it a value. Extra configuration reaches pods as environment
variables, so its keys must be environment variable names.
"""

import re
from dataclasses import dataclass, field
from typing import Any

from catalog.models import TemplateVersion
from catalog.templating.inputs import _coerce
from inventory.models import Storage
from inventory.selectors import storage_for_datacenter
from paas.errors import ValidationFailed

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,252}\Z")
INPUT_KEYS = {"default", "required", "exposed", "overridable"}
OUTPUT_KEYS = {"shown", "label"}
VARIABLE_KEYS = {"alias", "tooltip", "allow_override", "default"}
MAX_LABEL_CHARS = 200
MAX_TOOLTIP_CHARS = 500


def check_value(kind: str, value: Any, options: list | None) -> tuple[Any, str | None]:
    """``(coerced, None)`` or ``(None, problem)`` for a default of an input or variable of ``kind``."""
    if kind == "secret":
        return None, "a secret is given at launch (or generated), never stored in the profile"
    return _coerce(kind, value, list(options or []))


def _is_blank(value) -> bool:
    return value is None or value == ""


def _check_flags(setting: dict, keys: tuple[str, ...], where: str, errors: list[str]) -> None:
    for key in keys:
        if key in setting and not isinstance(setting[key], bool):
            errors.append(f"{where}: {key} must be true or false.")


def _check_text(setting: dict, key: str, limit: int, where: str, errors: list[str]) -> None:
    value = setting.get(key)
    if value is not None and (not isinstance(value, str) or len(value) > limit or "\n" in value):
        errors.append(f"{where}: {key} must be one line of at most {limit} characters.")


def _check_inputs(version: TemplateVersion, settings: Any) -> tuple[dict, list[str]]:
    errors: list[str] = []
    if not isinstance(settings, dict):
        return {}, ["Settings per input: an object."]
    declared = {item["name"]: item for item in version.inputs}
    cleaned: dict[str, dict] = {}
    for name, setting in settings.items():
        if name not in declared:
            errors.append(f"{name}: not an input of {version}.")
            continue
        if not isinstance(setting, dict) or set(setting) - INPUT_KEYS:
            errors.append(f"{name}: settings are default, required, exposed and overridable.")
            continue
        setting = dict(setting)
        _check_flags(setting, ("required", "exposed", "overridable"), name, errors)
        item = declared[name]
        if not _is_blank(setting.get("default")):
            value, problem = check_value(item["type"], setting["default"], item.get("options"))
            if problem:
                errors.append(f"{name}: the default {problem}.")
            else:
                setting["default"] = value
        elif "default" in setting:
            setting["default"] = None
        cleaned[name] = setting
    for name, item in declared.items():
        setting = cleaned.get(name, {})
        required = setting.get("required", item.get("required", False))
        default = setting["default"] if "default" in setting else item.get("default")
        generated = item.get("type") == "secret" and item.get("generate")
        if (
            required
            and _is_blank(default)
            and not generated
            and not (setting.get("exposed") and setting.get("overridable"))
        ):
            errors.append(
                f"{name}: required without a default, so end users must be able to see and set it "
                f"(exposed and overridable)."
            )
    return cleaned, errors


def _check_outputs(version: TemplateVersion, settings: Any) -> tuple[dict, list[str]]:
    if not isinstance(settings, dict):
        return {}, ["Settings per output: an object."]
    errors: list[str] = []
    outputs = {item["name"] for item in version.outputs}
    for name, setting in settings.items():
        if name not in outputs:
            errors.append(f"{name}: not an output of {version}.")
        elif not isinstance(setting, dict) or set(setting) - OUTPUT_KEYS:
            errors.append(f"{name}: settings are shown and label.")
        else:
            _check_flags(setting, ("shown",), name, errors)
            _check_text(setting, "label", MAX_LABEL_CHARS, name, errors)
    return settings, errors


def _check_actions(version: TemplateVersion, settings: Any) -> tuple[dict, list[str]]:
    if not isinstance(settings, dict):
        return {}, ["Settings per action: an object."]
    errors: list[str] = []
    actions = {a["name"]: {v["name"]: v for v in a.get("variables", [])} for a in version.actions}
    cleaned: dict[str, dict] = {}
    for action, variables in settings.items():
        if action not in actions:
            errors.append(f"{action}: not an action of {version}.")
            continue
        if not isinstance(variables, dict):
            errors.append(f"{action}: settings per variable: an object.")
            continue
        cleaned[action] = {}
        for variable, setting in variables.items():
            where = f"{action}.{variable}"
            if variable not in actions[action]:
                errors.append(f"{where}: not a variable of {action}.")
            elif not isinstance(setting, dict) or set(setting) - VARIABLE_KEYS:
                errors.append(f"{where}: settings are alias, tooltip, allow_override and default.")
            else:
                setting = dict(setting)
                _check_flags(setting, ("allow_override",), where, errors)
                _check_text(setting, "alias", MAX_LABEL_CHARS, where, errors)
                _check_text(setting, "tooltip", MAX_TOOLTIP_CHARS, where, errors)
                declared = actions[action][variable]
                if not _is_blank(setting.get("default")):
                    value, problem = check_value(
                        declared["type"], setting["default"], declared.get("options")
                    )
                    if problem:
                        errors.append(f"{where}: the default {problem}.")
                    else:
                        setting["default"] = value
                elif "default" in setting:
                    setting["default"] = None
                cleaned[action][variable] = setting
    return cleaned, errors


def check_extra_config(value: Any) -> tuple[dict, list[str]]:
    """Extra configuration: environment variable names to text values (they become pods' environment)."""
    if value in (None, ""):
        return {}, []
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        return {}, ["A mapping of names to text values."]
    bad = [str(k) for k in value if not isinstance(k, str) or not ENV_NAME.match(k)]
    if bad:
        return {}, [
            f"Not environment variable names (letters, digits, _; no leading digit): {', '.join(bad)}."
        ]
    return value, []


def check_service(data: dict, storages: list[Storage] | None) -> None:
    """Check a service profile's settings against its template version; coerce the defaults in
    ``data``. Raises ``ValidationFailed`` with every problem, by field."""
    version: TemplateVersion = data["template_version"]
    errors: dict[str, list[str]] = {}
    if "extra_config" in data:
        extra, problems = check_extra_config(data["extra_config"])
        if problems:
            errors["extra_config"] = problems
        else:
            data["extra_config"] = extra
    for key, check in (
        ("input_settings", _check_inputs),
        ("output_settings", _check_outputs),
        ("action_settings", _check_actions),
    ):
        cleaned, problems = check(version, data.get(key) or {})
        if problems:
            errors[key] = problems
        else:
            data[key] = cleaned
    if storages:
        visible = set(
            storage_for_datacenter(Storage.objects.all(), data.get("datacenter")).values_list("pk", flat=True)
        )
        outside = [s.name for s in storages if s.pk not in visible]
        if outside:
            where = data["datacenter"].name if data.get("datacenter") else "no datacenter (open storage only)"
            errors.setdefault("storages", []).append(f"Not available with {where}: {', '.join(outside)}.")
    if data.get("datacenter_overridable") and not data.get("datacenter_exposed"):
        errors.setdefault("datacenter_overridable", []).append(
            "Only an exposed datacenter can be overridden."
        )
    if data.get("storage_overridable") and not data.get("storage_exposed"):
        errors.setdefault("storage_overridable", []).append("Only exposed storage can be overridden.")
    if errors:
        raise ValidationFailed("Invalid service profile.", fields=errors)


# --- the wizard's tables ------------------------------------------------------------------------------


@dataclass
class InputRow:
    name: str
    type: str
    description: str
    options: list
    declared_required: bool
    generated: bool
    default: Any
    required: bool
    exposed: bool
    overridable: bool


@dataclass
class OutputRow:
    name: str
    description: str
    shown: bool
    label: str


@dataclass
class VariableRow:
    action: str
    name: str
    type: str
    description: str
    options: list
    alias: str
    tooltip: str
    allow_override: bool
    default: Any


@dataclass
class Tables:
    inputs: list[InputRow] = field(default_factory=list)
    outputs: list[OutputRow] = field(default_factory=list)
    variables: list[VariableRow] = field(default_factory=list)
    actions: list[dict] = field(default_factory=list)  # every declared action, with or without variables


def settings_rows(
    version: TemplateVersion | None, input_settings=None, output_settings=None, action_settings=None
) -> Tables:
    """One row per declared input, output and action variable of ``version``, filled from the given
    settings where a name still exists, else from the declaration (new rows are shown and overridable:
    the admin hides what they decide to)."""
    if version is None:
        return Tables()
    inputs_set = input_settings if isinstance(input_settings, dict) else {}
    outputs_set = output_settings if isinstance(output_settings, dict) else {}
    actions_set = action_settings if isinstance(action_settings, dict) else {}
    tables = Tables()
    for item in version.inputs:
        setting = inputs_set.get(item["name"])
        setting = setting if isinstance(setting, dict) else None
        known = setting is not None
        setting = setting or {}
        tables.inputs.append(
            InputRow(
                name=item["name"],
                type=item.get("type", "text"),
                description=item.get("description") or "",
                options=list(item.get("options") or []),
                declared_required=bool(item.get("required")),
                generated=bool(item.get("generate")),
                default=setting.get("default") if known and "default" in setting else item.get("default"),
                required=bool(setting.get("required", item.get("required", False))),
                exposed=bool(setting.get("exposed", not known)),
                overridable=bool(setting.get("overridable", not known)),
            )
        )
    for item in version.outputs:
        setting = outputs_set.get(item["name"])
        setting = setting if isinstance(setting, dict) else {}
        tables.outputs.append(
            OutputRow(
                name=item["name"],
                description=item.get("description") or "",
                shown=bool(setting.get("shown", True)),
                label=str(setting.get("label") or ""),
            )
        )
    for action in version.actions:
        tables.actions.append({"name": action["name"], "description": action.get("description") or ""})
        chosen = actions_set.get(action["name"])
        chosen = chosen if isinstance(chosen, dict) else {}
        for variable in action.get("variables") or []:
            setting = chosen.get(variable["name"])
            setting = setting if isinstance(setting, dict) else {}
            tables.variables.append(
                VariableRow(
                    action=action["name"],
                    name=variable["name"],
                    type=variable.get("type", "text"),
                    description=variable.get("description") or "",
                    options=list(variable.get("options") or []),
                    alias=str(setting.get("alias") or ""),
                    tooltip=str(setting.get("tooltip") or ""),
                    allow_override=bool(setting.get("allow_override", True)),
                    default=setting.get("default", variable.get("default")),
                )
            )
    return tables
