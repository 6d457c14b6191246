"""Forms of the portal's service pages (services deployed onto compute instances).

The fields of a profile's inputs are built from ``catalog.service_inputs.input_fields`` (what the
admin exposes): selects as selects, multi-line text as text areas, numbers as number inputs, booleans
as checkboxes, secrets as password inputs (never rendered back); an input the admin exposes but does
not let users override is shown read-only (a disabled field, never sent). Every rule is checked again
by the service layer (``catalog.service_inputs.resolve_inputs``); these forms only shape the page.
"""

from decimal import Decimal

from django import forms

from instances.states import State

INPUT_PREFIX = "input_"

STATE_CHOICES = [("", "Active (not deleted)"), *State.choices, ("all", "All, with deleted")]


def input_key(name: str) -> str:
    """The form field of a profile input (kept apart from name, description and the other fields)."""
    return f"{INPUT_PREFIX}{name}"


def _field_for(spec) -> forms.Field:
    """One form field for an ``InputField`` of the service layer."""
    kind = getattr(spec, "type", "text")
    label = getattr(spec, "label", "") or spec.name
    common = {
        "label": label,
        "help_text": getattr(spec, "description", "") or "",
        "required": bool(spec.required) and spec.overridable and kind != "boolean",
        "disabled": not spec.overridable,
        "initial": spec.default,
    }
    widget_attrs = {"autocomplete": "off", "spellcheck": "false", "data-input": spec.name}
    if kind == "select":
        choices = [(str(o), str(o)) for o in (spec.options or [])]
        if not common["required"]:
            choices = [("", "—"), *choices]
        return forms.ChoiceField(
            choices=choices, widget=forms.Select(attrs={"data-input": spec.name}), **common
        )
    if kind == "number":
        return forms.DecimalField(widget=forms.NumberInput(attrs={**widget_attrs, "step": "any"}), **common)
    if kind == "boolean":
        return forms.BooleanField(widget=forms.CheckboxInput(attrs={"data-input": spec.name}), **common)
    if kind == "multiline":
        return forms.CharField(
            widget=forms.Textarea(attrs={**widget_attrs, "rows": 4}), strip=False, **common
        )
    if kind == "secret" or getattr(spec, "secret", False):
        common["initial"] = None  # a secret default is never sent to the browser
        common["required"] = False  # left empty: the profile's value (or a generated one) is used
        if getattr(spec, "generated", False):
            common["help_text"] = f"{common['help_text']} Leave empty to have one generated.".strip()
        return forms.CharField(
            widget=forms.PasswordInput(attrs={**widget_attrs, "autocomplete": "new-password"}), **common
        )
    return forms.CharField(widget=forms.TextInput(attrs=widget_attrs), **common)


def _number(value: Decimal):
    return int(value) if value == value.to_integral_value() else float(value)


class InputsMixin:
    """Adds a profile's inputs to a form and reads the values the user may set back out of it."""

    def add_inputs(self, specs, *, values: dict | None = None) -> None:
        self.input_specs = list(specs)
        for spec in self.input_specs:
            field = _field_for(spec)
            if (
                values
                and spec.name in values
                and not (spec.type == "secret" or getattr(spec, "secret", False))
            ):
                field.initial = values[spec.name]
            self.fields[input_key(spec.name)] = field

    @property
    def input_bound_fields(self) -> list:
        return [self[input_key(spec.name)] for spec in self.input_specs]

    def input_values(self) -> dict:
        """The values to send: overridable inputs only; an empty optional one is left out (the default
        applies), as is an empty secret (the profile's or the generated value applies)."""
        values = {}
        for spec in self.input_specs:
            if not spec.overridable:
                continue
            value = self.cleaned_data.get(input_key(spec.name))
            if spec.type == "boolean":
                values[spec.name] = bool(value)
            elif value is None or value == "":
                continue
            elif isinstance(value, Decimal):
                values[spec.name] = _number(value)
            else:
                values[spec.name] = value
        return values


class ServiceLaunchForm(InputsMixin, forms.Form):
    """The new-service page: configuration (name, description, type, compute instance), then the
    chosen profile's inputs, then datacenter and storage when the profile exposes them."""

    name = forms.CharField(
        label="Name",
        max_length=63,
        help_text="Lowercase letters, digits and hyphens; unique on the compute instance.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    description = forms.CharField(
        label="Description (optional)",
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    profile = forms.TypedChoiceField(label="Type", coerce=int, error_messages={"required": "Choose a type."})
    compute_instance = forms.TypedChoiceField(
        label="Compute instance",
        coerce=int,
        error_messages={"required": "Choose a compute instance."},
        help_text="A ready instance you may deploy onto; the service runs in its namespace and quota.",
    )

    def __init__(self, *args, profiles=(), instances=(), profile=None, datacenters=(), storages=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["profile"].choices = [(p.pk, p.display_name) for p in profiles]
        self.fields["compute_instance"].choices = [("", "Choose…")] + [(i.pk, i.name) for i in instances]
        self.input_specs = []
        self.profile_obj = profile
        if profile is not None and getattr(profile, "datacenter_exposed", False):
            self.fields["datacenter"] = forms.TypedChoiceField(
                label="Datacenter",
                coerce=int,
                required=False,
                empty_value=None,
                choices=[("", "—"), *((d.pk, d.display_name) for d in datacenters)],
                initial=profile.datacenter_id,
                disabled=not profile.datacenter_overridable,
                help_text="Storage shown below follows the datacenter (open storage is always listed).",
            )
        if profile is not None and getattr(profile, "storage_exposed", False):
            self.fields["storage"] = forms.TypedMultipleChoiceField(
                label="Storage",
                coerce=str,
                required=False,
                choices=[(s.name, f"{s.name} ({s.get_kind_display()})") for s in storages],
                initial=[s.name for s in profile.storages.all()],
                disabled=not profile.storage_overridable,
                widget=forms.CheckboxSelectMultiple,
            )


class ServiceInputsForm(InputsMixin, forms.Form):
    """A redeploy: the service's inputs again, with its current values."""


class ActionForm(forms.Form):
    """An action's variables that the admin lets users override, each under its alias and tooltip."""

    def __init__(self, *args, variables=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.variable_names = []
        for var in variables:
            key = f"var_{var.name}"
            self.variable_names.append((key, var.name))
            options = list(getattr(var, "options", None) or [])
            common = {
                "label": getattr(var, "alias", "") or var.name,
                "help_text": getattr(var, "tooltip", "") or "",
                "required": False,
                "initial": getattr(var, "default", None),
            }
            attrs = {"title": common["help_text"]} if common["help_text"] else {}
            kind = getattr(var, "type", "text")
            if options:
                self.fields[key] = forms.ChoiceField(
                    choices=[(str(o), str(o)) for o in options], widget=forms.Select(attrs=attrs), **common
                )
            elif kind == "number":
                self.fields[key] = forms.DecimalField(
                    widget=forms.NumberInput(attrs={**attrs, "step": "any"}), **common
                )
            elif kind == "boolean":
                self.fields[key] = forms.BooleanField(widget=forms.CheckboxInput(attrs=attrs), **common)
            else:
                self.fields[key] = forms.CharField(widget=forms.TextInput(attrs=attrs), **common)

    def variables(self) -> dict:
        values = {}
        for key, name in self.variable_names:
            value = self.cleaned_data.get(key)
            if value is None or value == "":
                continue
            values[name] = _number(value) if isinstance(value, Decimal) else value
        return values


class ServiceFilterForm(forms.Form):
    """Filters of a deployments list: compute instance and state."""

    instance = forms.TypedChoiceField(label="Compute instance", coerce=int, required=False, empty_value=None)
    state = forms.ChoiceField(label="Status", choices=STATE_CHOICES, required=False)

    def __init__(self, *args, instances=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["instance"].choices = [("", "Any instance"), *((i.pk, i.name) for i in instances)]
