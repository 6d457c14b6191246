"""Forms of the portal's integrations pages: a workspace's repositories (Git, Helm, OCI).

The credential is write-only: never rendered back (a password input left empty), an empty one on edit
keeps the stored credential, a checkbox removes it. Every rule (the URL's scheme and the outbound
policy, file:// and local paths refused, the authentication that fits the kind, names) is checked by
``catalog.repositories``; its field messages land beside these fields.
"""

from django import forms

from catalog.models import Repository, Sharing

SHARING_CHOICES = [
    (Sharing.NONE, "Only this workspace"),
    (Sharing.ALL, "Every workspace of the organization"),
]


class WriteOnlyTextarea(forms.Textarea):
    """A text area that never renders a value back (an SSH private key), even on a form with errors."""

    def format_value(self, value):
        return None


def _text(label, *, required=False, help_text="", max_length=255):
    return forms.CharField(
        label=label,
        required=required,
        max_length=max_length,
        help_text=help_text,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )


class RepositoryForm(forms.Form):
    """The reference's "New Repository" (name, description, type) with what connecting needs."""

    name = forms.SlugField(
        label="Name",
        max_length=63,
        help_text="Lowercase letters, digits and hyphens; unique in the workspace.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    display_name = _text("Display name (optional)", max_length=200)
    description = forms.CharField(
        label="Description (optional)",
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    kind = forms.ChoiceField(label="Type", choices=Repository.Kind.choices, widget=forms.RadioSelect)
    url = _text(
        "URL",
        required=True,
        max_length=2048,
        help_text="https://… for Git and Helm (ssh://… for Git with an SSH key), oci://host/path for OCI.",
    )
    default_ref = _text("Branch or tag", help_text="Git: what is deployed when an application names none.")
    path = _text("Path", max_length=1024, help_text="Git: the directory applications read by default.")
    auth = forms.ChoiceField(
        label="Authentication", choices=Repository.Auth.choices, initial=Repository.Auth.NONE
    )
    username = _text("Username")
    credential = forms.CharField(
        label="Password, token or SSH private key",
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="Write-only: encrypted at rest, never shown again. Prefer a read-only token.",
    )
    ssh_key = forms.CharField(
        label="SSH private key",
        required=False,
        strip=False,
        widget=WriteOnlyTextarea(
            attrs={"rows": 4, "spellcheck": "false", "class": "code", "autocomplete": "off"}
        ),
        help_text="Git over SSH: the private key (no passphrase; prefer a read-only deploy key). Write-only.",
    )
    ssh_known_hosts = forms.CharField(
        label="SSH known hosts",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false", "class": "code"}),
        help_text="Git over SSH (ssh://…, with an SSH private key): the server's host keys, required.",
    )
    ca_certificate = forms.CharField(
        label="CA certificate (PEM)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false", "class": "code"}),
        help_text="For a server whose certificate a private CA signed.",
    )
    sharing = forms.ChoiceField(label="Shared with", choices=SHARING_CHOICES, initial=Sharing.NONE)

    def __init__(self, *args, repository: Repository | None = None, may_share: bool = False, **kwargs):
        self.repository = repository
        if repository is not None:
            kwargs.setdefault(
                "initial",
                {
                    name: getattr(repository, name)
                    for name in self.base_fields
                    if name not in ("credential", "ssh_key") and hasattr(repository, name)
                },
            )
        super().__init__(*args, **kwargs)
        if not may_share:  # sharing a workspace's repository (its credential's reach) is an admin's call
            del self.fields["sharing"]
        if repository is not None:
            self.fields["name"].disabled = True
            self.fields["name"].help_text = "Cannot be changed after creation."
            self.fields["credential"].help_text = "Write-only. Leave empty to keep the stored one" + (
                " (one is stored)." if repository.credential else " (none is stored)."
            )
            self.fields["clear_credential"] = forms.BooleanField(
                label="Remove the stored credential", required=False
            )
            if "sharing" in self.fields and repository.sharing not in dict(
                SHARING_CHOICES
            ):  # shared with selected workspaces (studio)
                self.fields["sharing"].choices = [
                    *SHARING_CHOICES,
                    (repository.sharing, "Selected workspaces"),
                ]

    @property
    def credential_field(self) -> str:
        """Where the service's messages about the credential belong on this form."""
        return "ssh_key" if self.data.get("auth") == Repository.Auth.SSH_KEY else "credential"

    def service_data(self) -> dict:
        """The service layer's keywords: an empty credential is left out (on edit: kept)."""
        data = {
            name: value
            for name, value in self.cleaned_data.items()
            if name not in ("credential", "ssh_key", "name")
        }
        data["display_name"] = data.get("display_name") or self.cleaned_data.get("name") or ""
        if self.repository is None:
            data["name"] = self.cleaned_data["name"]
        secret = self.cleaned_data.get("credential")
        if self.cleaned_data.get("auth") == Repository.Auth.SSH_KEY:
            secret = self.cleaned_data.get("ssh_key")
        if secret:
            data["credential"] = secret
        if not data.pop("clear_credential", False):
            return data
        data.pop("credential", None)
        return data | {"clear_credential": True}
