"""Forms of the portal's application pages (a user's own Kubernetes YAML or Helm chart on a compute
instance): the list's filters, "New Application", "New Application From Catalog", update, roll back
and delete.

They only shape the page: uploaded files are read into the service layer's ``files`` shape (``{name:
text}`` for YAML, ``{name.tgz: base64}`` for a packaged chart) and every rule (the YAML itself, the
chart, the repository's kind and visibility, the compute instance, the values) is checked by
``instances.applications``, whose field messages land beside these fields (``paas.forms.apply_error``).
"""

import base64

from django import forms

from catalog.models import ArtifactSync, PackageType
from instances.states import State

#: Read at most this much of one uploaded file, and of all of them (a memory bound against a hostile
#: form; the service layer's own, smaller limits are the ones users meet: ``catalog.sources.
#: validate_upload``, 2 MiB of YAML or a 5 MiB chart). Django caps the number of files (100).
UPLOAD_READ_LIMIT = 8 * 1024 * 1024
UPLOAD_TOTAL_LIMIT = 16 * 1024 * 1024
YAML_SUFFIXES = (".yaml", ".yml")
CHART_SUFFIXES = (".tgz", ".tar.gz")

STATE_CHOICES = [("", "Active (not deleted)"), *State.choices]
VALUES_HELP = "YAML, merged over the chart's values (and the values file); e.g. replicaCount: 2"


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files under one name (Django's documented recipe)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(d, initial) for d in data if d]
        return [single(data, initial)] if data else []


def read_uploads(package_type: str, uploads) -> tuple[dict, list[str]]:
    """Uploaded files as the service layer's ``files``, and the problems found in reading them (each
    naming its file): YAML files must be UTF-8 text named ``*.yaml``/``*.yml``; a chart is one packaged
    ``.tgz`` (kept as base64)."""
    files, errors, total = {}, [], 0
    for upload in uploads:
        name = (upload.name or "").rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
        size = upload.size or 0
        if size > UPLOAD_READ_LIMIT:
            errors.append(f"{name} is larger than {UPLOAD_READ_LIMIT // (1024 * 1024)} MiB.")
            continue
        total += size
        if total > UPLOAD_TOTAL_LIMIT:
            errors.append(f"The files are larger than {UPLOAD_TOTAL_LIMIT // (1024 * 1024)} MiB in all.")
            break
        data = upload.read(UPLOAD_READ_LIMIT + 1)
        if len(data) > UPLOAD_READ_LIMIT:  # a size that lied
            errors.append(f"{name} is larger than {UPLOAD_READ_LIMIT // (1024 * 1024)} MiB.")
            continue
        if package_type == PackageType.HELM:
            if not name.lower().endswith(CHART_SUFFIXES):
                errors.append(
                    f"{name}: a Helm chart is uploaded as one packaged chart (a .tgz from helm package)."
                )
                continue
            files[name] = base64.b64encode(data).decode("ascii")
        else:
            if not name.lower().endswith(YAML_SUFFIXES):
                errors.append(f"{name}: Kubernetes YAML files are named *.yaml or *.yml.")
                continue
            try:
                files[name] = data.decode("utf-8")
            except UnicodeDecodeError:
                errors.append(f"{name} is not UTF-8 text.")
    if package_type == PackageType.HELM and len(files) > 1:
        errors.append("Upload one packaged chart (.tgz), not several.")
    return files, errors


class ApplicationFilterForm(forms.Form):
    """The list's search and filters: name, package type, compute instance, deployment status."""

    q = forms.CharField(label="Search", required=False, max_length=100)
    package_type = forms.ChoiceField(
        label="Package type", required=False, choices=[("", "Any type"), *PackageType.choices]
    )
    instance = forms.TypedChoiceField(label="Compute instance", coerce=int, required=False, empty_value=None)
    state = forms.ChoiceField(label="Deployment status", choices=STATE_CHOICES, required=False)

    def __init__(self, *args, instances=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["instance"].choices = [("", "Any instance"), *((i.pk, i.name) for i in instances)]
        self.fields["q"].widget.attrs |= {"placeholder": "Search in name", "type": "search"}

    def clean_q(self):
        return self.cleaned_data["q"].replace("\x00", "").strip()


def _text(label, help_text="", **kwargs):
    return forms.CharField(
        label=label,
        required=False,
        help_text=help_text,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
        **kwargs,
    )


class SourceFieldsMixin:
    """The fields saying where an application's artifacts come from (new application and update)."""

    def add_source_fields(self, *, repositories=(), require_files: bool = True) -> None:
        self.fields["files"] = MultipleFileField(
            label="Files",
            required=False,
            help_text="K8s YAML: one or more .yaml files. Helm chart: one packaged chart (.tgz).",
        )
        self.fields["files"].widget.attrs["accept"] = ".yaml,.yml,.tgz,.tar.gz"
        self.require_files = require_files
        self.fields["repository"] = forms.TypedChoiceField(
            label="Repository",
            coerce=int,
            required=False,
            empty_value=None,
            choices=[("", "Choose…")]
            + [(r.pk, f"{r.display_name or r.name} ({r.get_kind_display()})") for r in repositories],
            help_text="A Git, Helm or OCI repository this workspace may use (Integrations → Repositories).",
        )
        self.fields["ref"] = _text(
            "Branch, tag or commit", "Git. Empty: the repository's default branch.", max_length=255
        )
        self.fields["path"] = _text(
            "Path", "Git: the directory (or file) of the YAML or the chart.", max_length=1024
        )
        self.fields["chart"] = _text(
            "Chart", "Helm repository: the chart's name (OCI: optional).", max_length=255
        )
        self.fields["chart_version"] = _text("Chart version", "Empty: the latest.", max_length=64)
        self.fields["values_file"] = _text(
            "Values file", "A values file inside the chart (or the Git path).", max_length=1024
        )
        self.fields["values"] = forms.CharField(
            label="Value overrides (YAML)",
            required=False,
            strip=False,
            help_text=VALUES_HELP,
            widget=forms.Textarea(attrs={"rows": 5, "spellcheck": "false", "class": "code"}),
        )
        self.repositories = {r.pk: r for r in repositories}

    def clean_source(self, package_type: str, sync: str) -> None:
        """Read the uploads; require what the chosen artifact sync needs (the rest is the service's)."""
        data = self.cleaned_data
        data["files_read"] = {}
        if sync == ArtifactSync.UPLOAD:
            uploads = data.get("files") or []
            if uploads:
                files, problems = read_uploads(package_type, uploads)
                for problem in problems:
                    self.add_error("files", problem)
                data["files_read"] = files
            elif self.require_files:
                self.add_error("files", "Choose the files to upload.")
        elif sync == ArtifactSync.REPOSITORY:
            if data.get("repository") is None:
                self.add_error("repository", "Choose a repository.")
            elif data["repository"] not in self.repositories:
                self.add_error("repository", "Choose a repository this workspace may use.")

    def source_changes(self, package_type: str, sync: str) -> dict:
        """The service layer's source keywords for what the form holds."""
        data = self.cleaned_data
        changes = {}
        if package_type == PackageType.HELM:
            changes |= {
                "chart_version": data.get("chart_version", ""),
                "values_file": data.get("values_file", ""),
                "values": data.get("values") or "",
            }
        if sync == ArtifactSync.UPLOAD:
            if data.get("files_read"):
                changes["files"] = data["files_read"]
        else:
            changes |= {
                "repository": self.repositories.get(data.get("repository")),
                "ref": data.get("ref", ""),
                "path": data.get("path", ""),
            }
            if package_type == PackageType.HELM:
                changes["chart"] = data.get("chart", "")
        return changes


class ApplicationForm(SourceFieldsMixin, forms.Form):
    """The reference's "New Application": name, package type, artifact sync (upload, or pull from a
    repository; Helm: chart, version, values file, value overrides), compute instance."""

    name = forms.CharField(
        label="Name",
        max_length=53,
        help_text="Lowercase letters, digits and hyphens; unique on the compute instance.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    description = forms.CharField(
        label="Description (optional)",
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    package_type = forms.ChoiceField(
        label="Package type",
        choices=PackageType.choices,
        initial=PackageType.YAML,
        widget=forms.RadioSelect,
        help_text="Select the packaging format for your application.",
    )
    sync = forms.ChoiceField(
        label="Artifact sync",
        choices=ArtifactSync.choices,
        initial=ArtifactSync.UPLOAD,
        widget=forms.RadioSelect,
        help_text="Upload the artifacts, or have them pulled from your repository at every deploy.",
    )
    compute_instance = forms.TypedChoiceField(
        label="Compute instance",
        coerce=int,
        error_messages={"required": "Choose a compute instance."},
        help_text="Select the compute instance where you want to deploy your application.",
    )

    def __init__(self, *args, instances=(), repositories=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["compute_instance"].choices = [("", "Choose…")] + [(i.pk, i.name) for i in instances]
        self.add_source_fields(repositories=repositories)

    def clean(self):
        data = super().clean()
        if data.get("package_type") and data.get("sync"):
            self.clean_source(data["package_type"], data["sync"])
        return data


class CatalogDeployForm(forms.Form):
    """The reference's "New Application From Catalog": a name, the compute instance, and the value
    overrides (prefilled with the catalog application's defaults)."""

    name = ApplicationForm.base_fields["name"]
    description = ApplicationForm.base_fields["description"]
    compute_instance = ApplicationForm.base_fields["compute_instance"]
    values = forms.CharField(
        label="Value overrides (YAML)",
        required=False,
        strip=False,
        help_text="Prefilled with the application's defaults; what you change is merged over them.",
        widget=forms.Textarea(attrs={"rows": 10, "spellcheck": "false", "class": "code"}),
    )

    def __init__(self, *args, instances=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["compute_instance"].choices = [("", "Choose…")] + [(i.pk, i.name) for i in instances]


class ApplicationUpdateForm(SourceFieldsMixin, forms.Form):
    """An update: the current revision's source, to change (a new ref, chart version, values or files);
    left without files, an upload keeps its current files."""

    def __init__(self, *args, sync: str, package_type: str, repositories=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.sync, self.package_type = sync, package_type
        self.add_source_fields(repositories=repositories, require_files=False)
        if sync == ArtifactSync.UPLOAD:
            for name in ("repository", "ref", "path", "chart"):
                del self.fields[name]
            self.fields["files"].help_text += " Leave empty to keep the current files."
        else:
            del self.fields["files"]
        if package_type != PackageType.HELM:
            for name in ("chart", "chart_version", "values_file", "values"):
                self.fields.pop(name, None)

    def clean(self):
        data = super().clean()
        self.clean_source(self.package_type, self.sync)
        return data


class RollbackForm(forms.Form):
    """Roll back to an earlier deployed revision (default: the one before the current)."""

    revision = forms.TypedChoiceField(label="Revision", coerce=int, required=False, empty_value=None)

    def __init__(self, *args, revisions=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["revision"].choices = [
            (
                r.number,
                f"{r.number} · {r.created_at:%Y-%m-%d %H:%M}{f' · {r.commit[:12]}' if r.commit else ''}",
            )
            for r in revisions
        ]
