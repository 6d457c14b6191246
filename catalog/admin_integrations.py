"""Studio pages of the integrations: the application catalog (here), repositories and container
registries (``catalog/admin_repositories.py``). Each lives in one of three scopes (system: operators; an
org: its catalog managers; a project), is shared like profiles (the "Manage sharing" page of
``CatalogAdmin``) and is saved through its services."""

import base64

from django import forms
from django.contrib import admin, messages

from catalog import app_catalog
from catalog.admin_base import CatalogAdmin, JSONText
from catalog.models import CatalogApplication
from paas import authz
from paas.errors import ApplicationError
from tenancy.models import Organization

MAX_UPLOAD_BYTES = 4 * 1024 * 1024


class IntegrationAdmin(CatalogAdmin):
    """An integration's studio page: scope chosen by org and project, permissions by scope."""

    readonly_when_changing = ["org", "project", "name"]

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_when_changing, *self.always_readonly] if obj else list(self.always_readonly)

    always_readonly: tuple[str, ...] = ()

    def item_actions(self, user, obj) -> set[str]:
        return app_catalog.allowed_actions(user, obj)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "org":
            # An operator too: only the orgs a support access makes them an admin of.
            kwargs["queryset"] = authz.filter_for(request.user, "manage_catalog", Organization.objects.all())
            kwargs["required"] = False
            kwargs["help_text"] = (
                "An org-wide item: choose the org and leave the project empty. A project's item: choose "
                "the project." + (" Both empty: the system scope." if authz.is_operator(request.user) else "")
            )
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "project":
            field.required = False
        return field


class CatalogApplicationForm(forms.ModelForm):
    files = JSONText(
        required=False,
        initial=dict,
        help_text='Uploaded files: {"name.yaml": "text"} (K8s YAML) or {"chart.tgz": "base64"} (a packaged '
        "chart). Or add a file below.",
    )
    add_file = forms.FileField(
        required=False,
        label="add a file",
        help_text="A YAML file, or a packaged chart (.tgz); added to the files above (same name: replaced).",
    )
    icon_url = forms.URLField(label="icon URL", required=False, assume_scheme="https")

    class Meta:
        model = CatalogApplication
        fields = [
            "org",
            "project",
            "name",
            "display_name",
            "description",
            "package_type",
            "sync",
            "files",
            "add_file",
            "repository",
            "ref",
            "path",
            "chart",
            "chart_version",
            "values_file",
            "values",
            "readme",
            "icon_url",
            "published",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["display_name"].required = False  # empty: the name

    def clean(self):
        data = super().clean()
        upload = data.get("add_file")
        if upload:
            if upload.size > MAX_UPLOAD_BYTES:
                self.add_error("add_file", f"At most {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB.")
                return data
            content = upload.read()
            if upload.name.endswith((".tgz", ".tar.gz")):
                text = base64.b64encode(content).decode()
            else:
                try:
                    text = content.decode("utf-8")
                except UnicodeDecodeError:
                    self.add_error("add_file", "A YAML file is UTF-8 text (a chart: a .tgz archive).")
                    return data
            data["files"] = {**(data.get("files") or {}), upload.name.rsplit("/", 1)[-1]: text}
        return data

    def _post_clean(self):
        pass  # names, scopes and the source are the service's to check (errors shown on this form)


@admin.register(CatalogApplication)
class CatalogApplicationAdmin(IntegrationAdmin):
    """The application catalog: operators publish for the system (shared with orgs), org admins for
    their org or a project (shared with its projects); users deploy them in one click."""

    selector = staticmethod(app_catalog.catalog_application_list_for)
    form = CatalogApplicationForm
    list_display = [
        "name",
        "display_name",
        "package_type",
        "source",
        "scope",
        "sharing_label",
        "published",
        "updated_at",
        "actions_menu",
    ]
    list_filter = ["package_type", "published", "sync"]
    search_fields = ["name", "display_name", "description"]
    actions = ["publish", "withdraw"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "repository":
            # Which of these the item's scope may use is checked when saving (named on the field).
            kwargs["queryset"] = app_catalog.repository_choices_for(request.user).select_related(
                "org", "project"
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.display(description="source")
    def source(self, obj):
        if obj.sync == "upload":
            return f"upload: {', '.join(sorted(obj.files or {}))}"
        where = obj.repository.name if obj.repository_id else "(repository deleted)"
        return " ".join(part for part in (where, obj.chart, obj.ref, obj.path) if part)

    def save_model(self, request, obj, form, change):
        data = {f: form.cleaned_data[f] for f in app_catalog.EDITABLE_FIELDS if f in form.cleaned_data}
        data["files"] = data.get("files") or {}
        if change:
            item = app_catalog.catalog_application_update(actor=request.user, item=self.fresh(obj), **data)
        else:
            item = app_catalog.catalog_application_create(
                actor=request.user,
                org=form.cleaned_data.get("org"),
                project=form.cleaned_data.get("project"),
                name=form.cleaned_data["name"],
                **data,
            )
        obj.pk = item.pk

    def service_delete(self, request, obj):
        app_catalog.catalog_application_delete(actor=request.user, item=obj)

    def share_item(self, **kwargs):
        return app_catalog.catalog_application_share(**kwargs)

    def _publish(self, request, queryset, published: bool):
        for item in queryset:
            try:
                app_catalog.catalog_application_publish(actor=request.user, item=item, published=published)
            except ApplicationError as exc:
                self.message_user(request, f"{item.name}: {exc.message}", messages.ERROR)
            else:
                self.message_user(
                    request, f"{item.name} {'published' if published else 'withdrawn'}.", messages.SUCCESS
                )

    @admin.action(description="Publish the selected applications")
    def publish(self, request, queryset):
        self._publish(request, queryset, True)

    @admin.action(description="Withdraw the selected applications (unpublish)")
    def withdraw(self, request, queryset):
        self._publish(request, queryset, False)
