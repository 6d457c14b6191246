"""Forms of the portal's instance pages. Business checks stay in ``instances.services``."""

from django import forms


class InstanceNameForm(forms.Form):
    """Step 1 of the new-instance flow."""

    name = forms.CharField(
        label="Name",
        max_length=63,
        help_text="Lowercase letters, digits and hyphens; unique in this workspace.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "autofocus": True}),
    )
    description = forms.CharField(
        label="Description (optional)",
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
    )


class InstanceSizeForm(forms.Form):
    """Step 2: one of the workspace's published compute profiles (the cards are the choices)."""

    profile = forms.TypedChoiceField(label="Size", coerce=int, error_messages={"required": "Choose a size."})

    def __init__(self, *args, profiles=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["profile"].choices = [(p.pk, p.display_name) for p in profiles]


class CollaboratorForm(forms.Form):
    email = forms.EmailField(
        label="Collaborator's email address",
        widget=forms.EmailInput(attrs={"autocomplete": "off", "placeholder": "name@example.com"}),
    )
