"""The forms of the service profile wizard (catalog/admin_service_profiles.py): the profile's own fields
by section, key/value rows (labels, annotations, extra configuration) and the input, output and action
settings as tables whose rows the chosen template version declares (catalog/profile_settings.py)."""

from django import forms
from django.forms import formset_factory
from django.urls import reverse

from catalog import profile_settings, selectors
from catalog.models import ServiceProfile, TemplateVersion
from catalog.pricing import COST_DEFAULTS, COST_FIELDS, check_cost_form, cost_defaults
from inventory.selectors import datacenter_list_for, storage_for_datacenter, storage_list_for
from paas import authz

# The reference's sections, in order: (anchor, title, the main form's fields in it, what it explains).
SECTIONS = [
    (
        "general",
        "General",
        ["project", "name", "display_name", "description", "template", "template_version", "service_type"],
        "What end users see, and the environment template version that deploys it.",
    ),
    (
        "datacenters",
        "Datacenters",
        ["datacenter", "datacenter_exposed", "datacenter_overridable"],
        "One datacenter at most: it decides which storage is listed below. Exposed: shown when a service "
        "is launched; overridable: the user may change it.",
    ),
    (
        "storage",
        "Storage",
        ["storages", "storage_exposed", "storage_overridable"],
        "The datacenter's storage plus open storage (no datacenter); without a datacenter, open storage "
        "only. Open storage chosen with a datacenter becomes that datacenter's after a deploy.",
    ),
    (
        "labels",
        "Labels",
        [],
        "Kubernetes labels put on every object a service creates. "
        "ALLOW_DAY2_OPERATIONS: true lets users redeploy a running service with changed inputs.",
    ),
    ("annotations", "Annotations", [], "Kubernetes annotations put on every object a service creates."),
    (
        "extra",
        "Extra configuration",
        [],
        "Environment variables of every container the service runs (and `extra` in its template).",
    ),
    ("design", "Design", ["icon_url", "readme"], "The catalog card: an icon and a readme (markdown)."),
    (
        "price",
        "Price",
        list(COST_FIELDS),
        "What a service of this profile costs its workspace (on top of its compute instance), kept from "
        "its launch: on demand bills the running time and, while stopped, the stopped price (storage "
        "only); reserved bills the price for the whole term, whatever runs.",
    ),
    ("inputs", "Input settings", [], ""),
    ("outputs", "Output settings", [], ""),
    ("actions", "Action settings", [], ""),
]
KEY_VALUE_SECTIONS = {"labels": "labels", "annotations": "annotations", "extra": "extra_config"}


def as_text(value) -> str:
    """A stored default as the text a form field shows."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def versions_of(user):
    return TemplateVersion.objects.filter(
        template__in=selectors.template_list_for(user), state=TemplateVersion.State.PUBLISHED
    ).select_related("template")


class ProfileForm(forms.Form):
    """The profile's own fields (sections general, datacenters, storage, design, and publishing)."""

    project = forms.ModelChoiceField(queryset=None, required=False, label="Project")
    name = forms.SlugField(
        max_length=63, label="Unique name", help_text="e.g. jupyter-notebook. Cannot be changed later."
    )
    display_name = forms.CharField(max_length=200, required=False, label="Display name")
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    template = forms.ModelChoiceField(queryset=None, label="Environment template", required=False)
    template_version = forms.ModelChoiceField(queryset=None, label="Environment template version")
    service_type = forms.ChoiceField(choices=ServiceProfile.ServiceType.choices, label="Service type")
    datacenter = forms.ModelChoiceField(queryset=None, required=False, label="Datacenter")
    datacenter_exposed = forms.BooleanField(required=False, label="Exposed")
    datacenter_overridable = forms.BooleanField(required=False, label="Overridable")
    storages = forms.ModelMultipleChoiceField(queryset=None, required=False, label="Storage")
    storage_exposed = forms.BooleanField(required=False, label="Exposed")
    storage_overridable = forms.BooleanField(required=False, label="Overridable")
    icon_url = forms.URLField(required=False, assume_scheme="https", label="Icon URL", max_length=500)
    readme = forms.CharField(widget=forms.Textarea(attrs={"rows": 8}), required=False, label="Readme")
    cost_currency = forms.CharField(
        max_length=3, initial="USD", label="Currency", help_text="ISO 4217, e.g. USD."
    )
    cost_amount = forms.DecimalField(max_digits=12, decimal_places=4, min_value=0, initial=0, label="Price")
    cost_period = forms.ChoiceField(
        choices=ServiceProfile.CostPeriod.choices, initial=ServiceProfile.CostPeriod.HOUR, label="Price unit"
    )
    cost_billing_model = forms.ChoiceField(
        choices=ServiceProfile.BillingModel.choices,
        initial=ServiceProfile.BillingModel.ON_DEMAND,
        label="Billing model",
    )
    cost_stopped_amount = forms.DecimalField(
        max_digits=12,
        decimal_places=4,
        min_value=0,
        initial=0,
        label="Price while stopped",
        help_text="Per the same unit, while stopped (storage only). On demand only.",
    )
    published = forms.BooleanField(required=False, label="Published (shown in catalogs)")
    # the template version the settings tables below were built for (a changed version rebuilds them)
    tables_version = forms.IntegerField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, user, instance: ServiceProfile | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        operator = authz.is_operator(user)
        self.fields["project"].queryset = selectors.managed_projects(user).select_related("org")
        self.fields["project"].required = not operator
        self.fields["project"].empty_label = "— the system catalog —" if operator else "—"
        self.fields["template"].queryset = selectors.template_list_for(user)
        self.fields["template_version"].queryset = versions_of(user)
        self.fields["datacenter"].queryset = datacenter_list_for(user)
        self.fields["datacenter"].empty_label = "— none (open storage only) —"
        self.fields["storages"].queryset = storage_list_for(user)
        htmx = {"hx-trigger": "change", "hx-target": "#version-choice", "hx-swap": "outerHTML"}
        self.fields["template"].widget.attrs.update(
            {"hx-post": reverse("admin:catalog_serviceprofile_wizardtables"), **htmx}
        )
        self.fields["datacenter"].widget.attrs.update(
            {
                "hx-get": reverse("admin:catalog_serviceprofile_wizardstorage"),
                "hx-trigger": "change",
                "hx-target": "#storage-choices",
                "hx-include": "[name='datacenter'],[name='storages']",
            }
        )
        for name in COST_DEFAULTS:  # a form posted without them keeps the default
            self.fields[name].required = False
        if instance is not None:
            self.fields["project"].disabled = self.fields["name"].disabled = True
            self.fields["project"].required = False  # kept as it is (a system profile has none)
            self.fields["name"].help_text = "Cannot be changed after creation."
            if instance.project_id is None:
                self.fields["project"].empty_label = f"— {instance.scope_label} —"

    def clean(self):
        data = super().clean()
        cost_defaults(self.cleaned_data)
        check_cost_form(self)
        template, version = data.get("template"), data.get("template_version")
        if version and not template:
            data["template"] = template = version.template
        if not version and not template and "template" not in self.errors:
            self.add_error("template", "Choose an environment template.")
        if template and version and version.template_id != template.pk:
            self.add_error("template_version", f"Not a version of {template.name}.")
        return data

    def storage_choices(self, user) -> list[tuple]:
        """The storage the chosen datacenter allows (its own plus open), each with whether it is ticked."""
        datacenter = _chosen(self, "datacenter")
        chosen = {str(pk) for pk in (_raw_list(self, "storages") or [])}
        rows = storage_for_datacenter(storage_list_for(user), datacenter).order_by("name")
        return [(s, str(s.pk) in chosen) for s in rows]


def _chosen(form, name):
    """The bound (or initial) object of a model choice field, None when empty or not valid."""
    field = form.fields[name]
    raw = form[name].value()
    if raw in (None, ""):
        return None
    if hasattr(raw, "pk"):
        return raw
    try:
        return field.queryset.filter(pk=raw).first()
    except (TypeError, ValueError):
        return None


def _raw_list(form, name) -> list:
    value = form[name].value() or []
    return [getattr(v, "pk", v) for v in value]


class KeyValueForm(forms.Form):
    key = forms.CharField(required=False, max_length=317, widget=forms.TextInput(attrs={"size": 30}))
    value = forms.CharField(
        required=False, max_length=8192, strip=False, widget=forms.TextInput(attrs={"size": 40})
    )


class BaseKeyValueFormSet(forms.BaseFormSet):
    def clean(self):
        seen = set()
        for form in self.forms:
            key = (form.cleaned_data or {}).get("key", "").strip()
            value = (form.cleaned_data or {}).get("value", "")
            if not key and value:
                form.add_error("key", "A value needs a key.")
            elif key and key in seen:
                form.add_error("key", f"{key} is given twice.")
            seen.add(key)

    def mapping(self) -> dict:
        return {
            form.cleaned_data["key"].strip(): form.cleaned_data.get("value", "")
            for form in self.forms
            if (form.cleaned_data or {}).get("key", "").strip()
        }


KeyValueFormSet = formset_factory(KeyValueForm, formset=BaseKeyValueFormSet, extra=2)


def key_value_formset(prefix: str, *, data=None, mapping: dict | None = None, more: int = 0):
    if data is not None:
        if more:
            data = data.copy()
            total = f"{prefix}-TOTAL_FORMS"
            data[total] = str(int(data.get(total) or 0) + more)
        return KeyValueFormSet(data, prefix=prefix)
    initial = [{"key": k, "value": v} for k, v in (mapping or {}).items()]
    return KeyValueFormSet(prefix=prefix, initial=initial)


def _default_field(kind: str, options: list) -> forms.Field:
    """A default's field, by the input's type (a secret has none: the profile stores no secret)."""
    if kind == "select":
        return forms.ChoiceField(choices=[("", "— no default —"), *[(o, o) for o in options]], required=False)
    if kind == "boolean":
        return forms.ChoiceField(
            choices=[("", "— no default —"), ("true", "true"), ("false", "false")], required=False
        )
    if kind == "multiline":
        return forms.CharField(
            required=False, strip=False, widget=forms.Textarea(attrs={"rows": 2, "cols": 30})
        )
    if kind == "secret":
        return forms.CharField(
            required=False, disabled=True, widget=forms.TextInput(attrs={"placeholder": "given at launch"})
        )
    attrs = {"size": 20, "inputmode": "decimal"} if kind == "number" else {"size": 24}
    return forms.CharField(required=False, widget=forms.TextInput(attrs=attrs))


class InputRowForm(forms.Form):
    name = forms.CharField(widget=forms.HiddenInput)
    default = forms.CharField(required=False)
    required = forms.BooleanField(required=False)
    exposed = forms.BooleanField(required=False)
    overridable = forms.BooleanField(required=False)

    def __init__(self, *args, declared: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.row = (declared or {}).get(self["name"].value())
        if self.row is not None:
            self.fields["default"] = _default_field(self.row.type, self.row.options)
        self.row_errors: list[str] = []


class OutputRowForm(forms.Form):
    name = forms.CharField(widget=forms.HiddenInput)
    shown = forms.BooleanField(required=False)
    label = forms.CharField(required=False, max_length=profile_settings.MAX_LABEL_CHARS)

    def __init__(self, *args, declared: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.row = (declared or {}).get(self["name"].value())
        self.row_errors: list[str] = []


class VariableRowForm(forms.Form):
    action = forms.CharField(widget=forms.HiddenInput)
    name = forms.CharField(widget=forms.HiddenInput)
    alias = forms.CharField(required=False, max_length=profile_settings.MAX_LABEL_CHARS)
    tooltip = forms.CharField(required=False, max_length=profile_settings.MAX_TOOLTIP_CHARS)
    allow_override = forms.BooleanField(required=False)
    default = forms.CharField(required=False)

    def __init__(self, *args, declared: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.row = (declared or {}).get((self["action"].value(), self["name"].value()))
        if self.row is not None:
            self.fields["default"] = _default_field(self.row.type, self.row.options)
        self.row_errors: list[str] = []


InputFormSet = formset_factory(InputRowForm, extra=0)
OutputFormSet = formset_factory(OutputRowForm, extra=0)
VariableFormSet = formset_factory(VariableRowForm, extra=0)


class SettingsTables:
    """The three tables for one template version: bound to what was posted (a save) or built from
    settings (a new page, or a changed version keeping the values of names that still exist)."""

    def __init__(self, version: TemplateVersion | None, *, data=None, settings: tuple | None = None):
        self.version = version
        self.bound = data is not None
        tables = profile_settings.settings_rows(version, *(settings or ({}, {}, {})))
        self.actions = tables.actions
        declared_inputs = {row.name: row for row in tables.inputs}
        declared_outputs = {row.name: row for row in tables.outputs}
        declared_variables = {(row.action, row.name): row for row in tables.variables}
        if data is not None:
            self.inputs = InputFormSet(data, prefix="in", form_kwargs={"declared": declared_inputs})
            self.outputs = OutputFormSet(data, prefix="out", form_kwargs={"declared": declared_outputs})
            self.variables = VariableFormSet(data, prefix="var", form_kwargs={"declared": declared_variables})
            return
        self.inputs = InputFormSet(
            prefix="in",
            initial=[
                {
                    "name": r.name,
                    "default": "" if r.type == "secret" else as_text(r.default),
                    "required": r.required,
                    "exposed": r.exposed,
                    "overridable": r.overridable,
                }
                for r in tables.inputs
            ],
            form_kwargs={"declared": declared_inputs},
        )
        self.outputs = OutputFormSet(
            prefix="out",
            initial=[{"name": r.name, "shown": r.shown, "label": r.label} for r in tables.outputs],
            form_kwargs={"declared": declared_outputs},
        )
        self.variables = VariableFormSet(
            prefix="var",
            initial=[
                {
                    "action": r.action,
                    "name": r.name,
                    "alias": r.alias,
                    "tooltip": r.tooltip,
                    "allow_override": r.allow_override,
                    "default": as_text(r.default),
                }
                for r in tables.variables
            ],
            form_kwargs={"declared": declared_variables},
        )

    @property
    def action_groups(self) -> list[dict]:
        """Each declared action with its variables' rows (the action settings table, by action)."""
        return [
            action | {"forms": [f for f in self.variables.forms if f["action"].value() == action["name"]]}
            for action in self.actions
        ]

    def has_rows(self) -> bool:
        return bool(self.inputs.forms or self.outputs.forms or self.variables.forms or self.actions)

    def is_valid(self) -> bool:
        if not self.bound:
            return not self.has_rows()  # nothing to decide: a version declaring nothing
        return all([self.inputs.is_valid(), self.outputs.is_valid(), self.variables.is_valid()])

    def settings(self) -> tuple[dict, dict, dict]:
        """``(input_settings, output_settings, action_settings)`` from the bound, valid tables: rows of
        names the version does not declare are kept, for the service to refuse by name."""
        inputs = {}
        for form in self.inputs.forms:
            data = form.cleaned_data
            setting = {k: data.get(k, False) for k in ("required", "exposed", "overridable")}
            if form.row is None or form.row.type != "secret":
                setting["default"] = data.get("default") if data.get("default") not in (None, "") else None
            inputs[data["name"]] = setting
        outputs = {}
        for form in self.outputs.forms:
            data = form.cleaned_data
            outputs[data["name"]] = {"shown": data.get("shown", False)} | (
                {"label": data["label"]} if data.get("label") else {}
            )
        actions: dict[str, dict] = {}
        for form in self.variables.forms:
            data = form.cleaned_data
            setting = {"allow_override": data.get("allow_override", False)}
            for key in ("alias", "tooltip"):
                if data.get(key):
                    setting[key] = data[key]
            setting["default"] = data.get("default") if data.get("default") not in (None, "") else None
            actions.setdefault(data["action"], {})[data["name"]] = setting
        return inputs, outputs, actions

    def raw_settings(self) -> tuple[dict, dict, dict]:
        """What was posted, as settings, without validation (to keep values across a version change)."""

        def value(form, name):
            return form[name].value()

        inputs = {
            value(f, "name"): {
                "default": value(f, "default") or None,
                "required": bool(value(f, "required")),
                "exposed": bool(value(f, "exposed")),
                "overridable": bool(value(f, "overridable")),
            }
            for f in self.inputs.forms
            if value(f, "name")
        }
        outputs = {
            value(f, "name"): {"shown": bool(value(f, "shown")), "label": value(f, "label") or ""}
            for f in self.outputs.forms
            if value(f, "name")
        }
        actions: dict[str, dict] = {}
        for f in self.variables.forms:
            if value(f, "action") and value(f, "name"):
                actions.setdefault(value(f, "action"), {})[value(f, "name")] = {
                    "alias": value(f, "alias") or "",
                    "tooltip": value(f, "tooltip") or "",
                    "allow_override": bool(value(f, "allow_override")),
                    "default": value(f, "default") or None,
                }
        return inputs, outputs, actions

    def place_errors(self, key: str, messages: list[str]) -> list[str]:
        """Put a service's messages (``"name: ..."``, ``"action.variable: ..."``) on their rows; return
        those that name no row."""
        formset = {"input_settings": self.inputs, "output_settings": self.outputs}.get(key)
        left = []
        for message in messages:
            target, _, _ = message.partition(":")
            for form in formset.forms if formset is not None else self.variables.forms:
                name = form["name"].value()
                if formset is None:
                    name = f"{form['action'].value()}.{name}"
                if name == target:
                    form.row_errors.append(message.partition(": ")[2] or message)
                    break
            else:
                left.append(message)
        return left

    def disable(self) -> None:
        for formset in (self.inputs, self.outputs, self.variables):
            for form in formset.forms:
                for f in form.fields.values():
                    f.disabled = True
