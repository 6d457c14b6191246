"""Studio pages of repositories and container registries: scope (system, org, project), the write-only
credential (a password field that never renders a value; empty keeps the stored one), sharing (the
"Manage sharing" page), the connectivity check (a list action) and its last outcome. Saved through
``catalog.repositories`` and ``catalog.registries``."""

from django import forms
from django.contrib import admin, messages
from django.utils.html import format_html

from catalog import integration_selectors, registries, registry_selectors, repositories
from catalog.admin_integrations import IntegrationAdmin
from catalog.models import ContainerRegistry, Repository
from paas.admin import secret_field
from paas.errors import ApplicationError
from paas.secrets import UnreadableSecret

PULL_ONLY_WARNING = (
    "<strong>Pull-only credentials only.</strong> This credential is delivered as an imagePullSecret into "
    "the namespace of every compute instance of the projects the registry is shared with, where the "
    "tenants can read it. Enter a robot account or token that may only pull the images those projects "
    "may use, never an administrator's or a push credential. The check warns when it may also push."
)


def _credential_field(label: str, help_text: str) -> forms.CharField:
    return forms.CharField(
        label=label,
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=help_text,
    )


class IntegrationForm(forms.ModelForm):
    new_credential = _credential_field(
        "password or token", "Write-only: stored encrypted and never shown again. Leave empty to keep."
    )
    clear_credential = forms.BooleanField(required=False, label="remove the stored credential")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "display_name" in self.fields:
            self.fields["display_name"].required = False  # empty: the name

    def _post_clean(self):
        pass  # names, scopes, addresses and credentials are the service's to check (shown on this form)


SCOPE_FIELDS = ["org", "project", "name", "display_name", "description"]


class RepositoryForm(IntegrationForm):
    # A textarea that never renders a value: an SSH private key has several lines.
    new_credential = secret_field(
        "password, token or SSH private key",
        help_text="Write-only: stored encrypted and never shown again. Leave empty to keep.",
    )

    class Meta:
        model = Repository
        fields = [
            *SCOPE_FIELDS,
            *("kind", "url", "default_ref", "path", "ca_certificate", "ssh_known_hosts", "auth", "username"),
        ]


class RegistryForm(IntegrationForm):
    new_credential = _credential_field(
        "password or token (pull-only)",
        "Write-only: stored encrypted, never shown again; empty keeps it. A pull-only robot account or "
        "token: tenants can read what is delivered to their namespaces.",
    )

    class Meta:
        model = ContainerRegistry
        fields = [*SCOPE_FIELDS, "provider", "scheme", "endpoint", "username"]


class CheckedIntegrationAdmin(IntegrationAdmin):
    always_readonly = ("has_credential", "last_check")
    service_error_fields = {"credential": "new_credential", "projects": "project", "orgs": "org"}
    actions = ["check_now"]

    @admin.display(description="credential stored")
    def has_credential(self, obj):
        if obj is not None and isinstance(obj.credential, UnreadableSecret):
            return "unreadable: the organization's encryption keys were destroyed; set it again"
        return "yes" if obj is not None and obj.credential else "no"

    @admin.display(description="last check")
    def last_check(self, obj):
        if obj is None or obj.check_ok is None:
            return "never checked" if obj is None or obj.checked_at is None else "checking…"
        return format_html(
            "{} {} — {}",
            "✔" if obj.check_ok else "✘",
            obj.checked_at.strftime("%Y-%m-%d %H:%M"),
            obj.check_message,
        )

    def service_data(self, form) -> dict:
        data = {f: form.cleaned_data[f] for f in self.service_fields if f in form.cleaned_data}
        data["credential"] = form.cleaned_data.get("new_credential") or ""
        return data


@admin.register(Repository)
class RepositoryAdmin(CheckedIntegrationAdmin):
    """Git repositories, Helm chart repositories and OCI registries holding charts, that applications
    and the application catalog pull from."""

    selector = staticmethod(integration_selectors.repository_list_for)
    list_display = ["name", "kind", "url", "scope", "sharing_label", "last_check", "actions_menu"]
    list_filter = ["kind", "auth"]
    search_fields = ["name", "display_name", "url"]
    service_fields = repositories.FIELDS
    fieldsets = [
        (None, {"fields": ["org", "project", "name", "display_name", "description"]}),
        ("Where", {"fields": ["kind", "url", "default_ref", "path", "ca_certificate", "ssh_known_hosts"]}),
        (
            "Credential",
            {"fields": ["auth", "username", "new_credential", "clear_credential", "has_credential"]},
        ),
        ("Check", {"fields": ["last_check"]}),
    ]

    form = RepositoryForm

    def item_actions(self, user, obj) -> set[str]:
        return (
            {"edit", "share", "delete"} if integration_selectors.can_manage_repository(user, obj) else set()
        )

    def save_model(self, request, obj, form, change):
        data = self.service_data(form)
        if change:
            repository = repositories.repository_update(
                actor=request.user,
                repository=self.fresh(obj),
                clear_credential=form.cleaned_data.get("clear_credential", False),
                **data,
            )
        else:
            repository = repositories.repository_create(
                actor=request.user,
                org=form.cleaned_data.get("org"),
                project=form.cleaned_data.get("project"),
                name=form.cleaned_data["name"],
                **data,
            )
        obj.pk = repository.pk

    def service_delete(self, request, obj):
        repositories.repository_delete(actor=request.user, repository=obj)

    def share_item(self, *, actor, item, sharing, projects=(), orgs=()):
        return repositories.repository_share(
            actor=actor, repository=item, sharing=sharing, projects=projects, orgs=orgs
        )

    @admin.action(description="Check the selected repositories (on the worker)")
    def check_now(self, request, queryset):
        for repository in queryset:
            try:
                repositories.repository_check(actor=request.user, repository=repository)
            except ApplicationError as exc:
                self.message_user(request, f"{repository.name}: {exc.message}", messages.ERROR)
            else:
                self.message_user(
                    request, f"{repository.name}: check queued; its result shows here.", messages.SUCCESS
                )


@admin.register(ContainerRegistry)
class ContainerRegistryAdmin(CheckedIntegrationAdmin):
    """Container registries whose pull-only credential the platform delivers into instance namespaces."""

    selector = staticmethod(registry_selectors.registry_list_for)
    list_display = ["name", "provider", "endpoint", "scope", "sharing_label", "last_check", "actions_menu"]
    list_filter = ["provider"]
    search_fields = ["name", "display_name", "endpoint"]
    service_fields = registries.FIELDS
    always_readonly = ("has_credential", "last_check", "credential_version", "token_expires_at")
    fieldsets = [
        (None, {"fields": ["org", "project", "name", "display_name", "description"]}),
        ("Registry", {"fields": ["provider", "scheme", "endpoint"]}),
        (
            "Pull credential",
            {
                "fields": [
                    "username",
                    "new_credential",
                    "clear_credential",
                    "has_credential",
                    "credential_version",
                    "token_expires_at",
                ],
                "description": PULL_ONLY_WARNING,
            },
        ),
        ("Check", {"fields": ["last_check"]}),
    ]

    form = RegistryForm

    def item_actions(self, user, obj) -> set[str]:
        return {"edit", "share", "delete"} if registry_selectors.can_manage_registry(user, obj) else set()

    def save_model(self, request, obj, form, change):
        data = self.service_data(form)
        if change:
            registry = registries.registry_update(
                actor=request.user,
                registry=self.fresh(obj),
                clear_credential=form.cleaned_data.get("clear_credential", False),
                **data,
            )
        else:
            registry = registries.registry_create(
                actor=request.user,
                org=form.cleaned_data.get("org"),
                project=form.cleaned_data.get("project"),
                name=form.cleaned_data["name"],
                **data,
            )
        obj.pk = registry.pk

    def service_delete(self, request, obj):
        registries.registry_delete(actor=request.user, registry=obj)

    def share_item(self, *, actor, item, sharing, projects=(), orgs=()):
        return registries.registry_share(
            actor=actor, registry=item, sharing=sharing, projects=projects, orgs=orgs
        )

    @admin.action(description="Check the selected registries (/v2/ with the credential)")
    def check_now(self, request, queryset):
        for registry in queryset:
            try:
                checked = registries.registry_check(actor=request.user, registry=registry)
            except ApplicationError as exc:
                self.message_user(request, f"{registry.name}: {exc.message}", messages.ERROR)
            else:
                level = messages.SUCCESS if checked.check_ok else messages.WARNING  # done; a negative outcome
                self.message_user(request, f"{registry.name}: {checked.check_message}", level)
