"""The PaaS Studio: the Django admin, branded, with permission-aware base classes.

``ScopedModelAdmin`` takes its queryset from a selector (so no studio page can list what the user may
not see; an object outside it is "not found", like a missing one) and routes saves and deletes
through services. An ``ApplicationError`` from a service is shown on the form, with the input kept.
"""

from collections.abc import Callable

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth.models import Group
from django.db import models
from django.db.models import QuerySet
from django.http import HttpResponseRedirect
from django.utils.html import format_html
from django.utils.translation import gettext

from paas import admin_queue, authz, mfa_policy, selectors
from paas.errors import ApplicationError
from paas.forms import apply_error
from paas.models import ApiToken, AuditEvent, AuditSettings, AuditSink, WorkerHeartbeat


class WriteOnlyTextarea(forms.Textarea):
    """A textarea for secrets: it never renders a value, not even the one just submitted."""

    def format_value(self, value):
        return None


def secret_field(label: str, *, required: bool = False, help_text: str = "") -> forms.CharField:
    """A write-only form field for a secret (kubeconfig, credentials)."""
    return forms.CharField(
        label=label,
        required=required,
        strip=False,
        widget=WriteOnlyTextarea(attrs={"rows": 6, "autocomplete": "off", "spellcheck": "false"}),
        help_text=help_text or "Write-only: stored encrypted and never shown again. Leave empty to keep.",
    )


class ScopedModelAdmin(admin.ModelAdmin):
    """Base for every studio page of ours. Subclasses set ``selector`` (user -> queryset)."""

    selector: Callable[..., QuerySet] | None = None
    #: Rows a page: the API's default page size too (Django's 100 rows spend most of a page's time
    #: rendering cells; "Show all" still lists up to ``list_max_show_all``).
    list_per_page = 50
    #: No second count of the whole visible set beside the filtered one (Django's "N total", counted
    #: on every view even unfiltered); a filtered list links "Show all" instead.
    show_full_result_count = False
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def get_queryset(self, request) -> QuerySet:
        selector = type(self).selector
        if selector is None:
            raise NotImplementedError(f"{type(self).__name__} must set `selector`")
        queryset = selector(request.user)
        ordering = self.get_ordering(request)
        return queryset.order_by(*ordering) if ordering else queryset

    # Django's model permissions are not ours: object visibility comes from the selector and each
    # action asks paas.authz through the methods below.
    def has_module_permission(self, request) -> bool:
        return self.admin_site.has_permission(request)

    def has_view_permission(self, request, obj=None) -> bool:
        return self.admin_site.has_permission(request)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def action_checkbox(self, obj):
        """Django's row checkbox, the same markup, written directly: Django renders a ``CheckboxInput``
        through the form template renderer on every row, a fifth of a 100-row changelist's time."""
        label = format_html(gettext("Select this object for an action - {}"), str(obj))
        return format_html(
            '<input type="checkbox" name="{}" value="{}" class="action-select" aria-label="{}">',
            helpers.ACTION_CHECKBOX_NAME,
            str(obj.pk),
            label,
        )

    #: Service field names that the form calls otherwise (a write-only secret's ``new_...`` field), so
    #: that a service's field error is shown beside the field the person filled in.
    service_error_fields: dict[str, str] = {}

    # --- services instead of ORM writes -------------------------------------------------------------
    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change=change, **kwargs)
        error: ApplicationError | None = getattr(request, "_studio_error", None)
        if error is None:
            return form_class
        renamed = self.service_error_fields

        class FormWithServiceErrors(form_class):
            def clean(self):
                data = super().clean()
                left = apply_error(self, error, renamed=renamed)
                if left:
                    self.add_error(None, left)
                return data

        return FormWithServiceErrors

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ApplicationError as exc:
            # Render the same form again with the service's errors; nothing the user typed is lost.
            request._studio_error = exc
            return super().changeform_view(request, object_id, form_url, extra_context)

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(request.path.rsplit("/delete/", 1)[0] + "/change/")

    def fresh(self, obj):
        """The object as stored: ModelAdmin has already copied the form's values onto ``obj``, and a
        service must compare the request against the database, not against itself."""
        return type(obj)._default_manager.get(pk=obj.pk)

    def get_deleted_objects(self, objs, request):
        # What a delete cascades to is the service's business (and it is checked there), not Django's
        # per-model delete permissions, which our roles do not use.
        deleted, model_count, _perms_needed, protected = super().get_deleted_objects(objs, request)
        return deleted, model_count, set(), protected

    def delete_model(self, request, obj):
        self.service_delete(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            try:
                self.service_delete(request, obj)
            except ApplicationError as exc:
                self.message_user(request, f"{obj}: {exc.message}", messages.ERROR)

    def service_delete(self, request, obj) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not delete")

    def save_related(self, request, form, formsets, change):
        # Relations are written by the services; Django's m2m/inline saving would bypass them.
        pass

    def construct_change_message(self, request, form, formsets, add=False):
        return []  # the audit trail records changes; inline rows are written by services, not formsets

    def log_addition(self, request, obj, message):
        return None  # the audit trail records every change; Django's admin log is not used

    def log_change(self, request, obj, message):
        return None

    def log_deletions(self, request, queryset):
        return None

    def log_deletion(self, request, obj, object_repr):
        return None


class OperatorOnlyAdmin(ScopedModelAdmin):
    """A page only operators see, add to and delete from (no edits unless a subclass allows them)."""

    def has_module_permission(self, request) -> bool:
        return authz.is_operator(request.user)

    def has_view_permission(self, request, obj=None) -> bool:
        return authz.is_operator(request.user)

    def has_add_permission(self, request) -> bool:
        return authz.is_operator(request.user)

    def has_delete_permission(self, request, obj=None) -> bool:
        return authz.is_operator(request.user)


class ReadOnlyInline(admin.TabularInline):
    """An inline that only shows rows (they are written by services or observed from clusters)."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_view_permission(self, request, obj=None) -> bool:
        return True


class AuditEventAdminBase(ScopedModelAdmin):
    """Read-only audit trail; the filters are defined by tenancy (which knows orgs and projects)."""

    list_display = [
        "created_at",
        "actor_repr",
        "org",
        "project",
        "client",
        "action",
        "target_repr",
        "cluster",
    ]
    search_fields = ["action", "actor_repr", "target_repr", "request_id"]
    # No date_hierarchy: its drill-down bar reads MIN/MAX and the distinct years of every visible event
    # on each view (a walk over an org's whole trail); the "created at" filter (today, past 7 days,
    # this month, this year) and the newest-first order cost nothing of the kind.
    list_select_related = ["org", "project"]
    readonly_fields = [f.name for f in AuditEvent._meta.fields]

    @admin.display(description="cluster")
    def cluster(self, obj) -> str:
        """The cluster of a kubectl request (its name as recorded; paas knows no clusters)."""
        if obj.cluster_id is None:
            return "-"
        return (obj.details or {}).get("cluster") or f"cluster {obj.cluster_id}"


def _audit_settings_for(user) -> QuerySet:
    from paas.audit_settings import audit_settings_for

    audit_settings_for(user)  # operators only
    return AuditSettings.objects.all()


@admin.register(AuditSettings)
class AuditSettingsAdmin(OperatorOnlyAdmin):
    """The operators' audit settings: how the kubectl proxy's reads reach the tenants' trails (every
    read, 1 in N, or a summary per flush). One row; changes are audited."""

    selector = staticmethod(_audit_settings_for)
    list_display = ["__str__", "kubectl_reads", "kubectl_sample_every", "updated_at"]
    fields = ["kubectl_reads", "kubectl_sample_every"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return authz.is_operator(request.user)

    def get_queryset(self, request) -> QuerySet:
        if not authz.is_operator(request.user):
            return AuditSettings.objects.none()
        return super().get_queryset(request)

    def changelist_view(self, request, extra_context=None):
        from django.urls import reverse

        if not authz.is_operator(request.user):
            return super().changelist_view(request, extra_context)
        AuditSettings.objects.get_or_create(pk=1)
        return HttpResponseRedirect(reverse("admin:paas_auditsettings_change", args=[1]))

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["help_texts"] = {
            "kubectl_reads": "Reads are get, list and watch (and discovery). Writes are always recorded "
            "one by one, whatever this says.",
        }
        return super().get_form(request, obj, change=change, **kwargs)

    def save_model(self, request, obj, form, change):
        from paas.audit_settings import audit_settings_update

        audit_settings_update(
            actor=request.user,
            kubectl_reads=form.cleaned_data["kubectl_reads"],
            kubectl_sample_every=form.cleaned_data["kubectl_sample_every"],
        )


@admin.register(ApiToken)
class ApiTokenAdmin(ScopedModelAdmin):
    """Your own API tokens: create one (shown once) or revoke."""

    selector = staticmethod(selectors.api_token_list_for)
    list_display = ["name", "scope", "hint", "created_at", "expires_at", "last_used_at", "revoked_at"]
    fields = ["name", "scope", "expires_in_days"]
    actions = ["revoke"]

    def hint(self, obj) -> str:
        return f"gpaas_{obj.prefix}_…"

    def has_add_permission(self, request) -> bool:
        return self.admin_site.has_permission(request)

    def get_form(self, request, obj=None, change=False, **kwargs):
        from django import forms

        class TokenForm(forms.ModelForm):
            expires_in_days = forms.IntegerField(min_value=1, initial=90, label="Expires in (days)")

            class Meta:
                model = ApiToken
                fields = ["name", "scope"]
                help_texts = {
                    "scope": "Read only: the token may only read (GET). Read and write: it may do what you "
                    "may. Billing read: it may only read the billing API (/api/v1/billing/), for the "
                    "provider's billing system. A token can never create another token."
                }

        kwargs["form"] = TokenForm
        kwargs["fields"] = ["name", "scope", "expires_in_days"]
        return super().get_form(request, obj, change=change, **kwargs)

    def save_model(self, request, obj, form, change):
        from paas.services import api_token_create

        api_token, token = api_token_create(
            actor=request.user,
            name=form.cleaned_data["name"],
            expires_in_days=form.cleaned_data["expires_in_days"],
            scope=form.cleaned_data["scope"],
            mfa_verified=mfa_policy.session_verified(request.user),
        )
        obj.pk = api_token.pk
        self.message_user(request, f"Your new token (shown once, store it now): {token}", messages.WARNING)

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset):
        from paas.services import api_token_revoke

        for api_token in queryset:
            api_token_revoke(actor=request.user, api_token=api_token)
        self.message_user(request, "Revoked.")


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(ScopedModelAdmin):
    selector = staticmethod(selectors.heartbeat_list_for)
    list_display = ["cluster", "seen_at"]

    def has_module_permission(self, request) -> bool:
        return authz.is_operator(request.user)


class AuditSinkForm(forms.ModelForm):
    new_secret = secret_field(
        "Secret",
        help_text="HTTPS webhook: the HMAC-SHA256 key of the X-Signature header (16 characters or more); "
        "Splunk HEC: the HEC token. Write-only: stored encrypted and never shown again. Leave empty to keep.",
    )
    from_beginning = forms.BooleanField(
        label="Stream the trail from its first event",
        required=False,
        initial=True,
        help_text="Unticked: only events written from now on.",
    )

    class Meta:
        model = AuditSink
        fields = [
            "org",
            "name",
            "kind",
            "url",
            "ca_pem",
            "sourcetype",
            "enabled",
            "batch_size",
            "backoff_initial_seconds",
            "backoff_max_seconds",
            "unhealthy_after",
        ]


def _audit_sink_orgs(user) -> QuerySet:
    from paas.audit_sinks import orgs_for

    return orgs_for(user)


def _audit_sink_list_for(user) -> QuerySet:
    from paas.audit_sinks import audit_sink_list_for

    return audit_sink_list_for(user)


@admin.register(AuditSink)
class AuditSinkAdmin(ScopedModelAdmin):
    """Where the audit trail streams (a SIEM): syslog over TLS, an HTTPS webhook or Splunk HEC. Operators
    set the platform's sinks (no organization), org admins their org's. Lag is the events of the chain
    the receiver has not accepted yet; a sink failing several times in a row is unhealthy, and catches
    up from where it stopped once its receiver answers again."""

    selector = staticmethod(_audit_sink_list_for)
    form = AuditSinkForm
    list_display = [
        "name",
        "scope",
        "kind",
        "url",
        "health_badge",
        "lag",
        "last_delivery_at",
        "last_error_short",
        "last_error_at",
    ]
    list_filter = ["kind", "enabled"]
    search_fields = ["name", "url"]
    actions = ["retry_now"]
    service_error_fields = {"secret": "new_secret"}
    status_fields = [
        "health_badge",
        "lag",
        "cursor",
        "head",
        "consecutive_failures",
        "next_attempt_at",
        "last_delivery_at",
        "last_error",
        "last_error_at",
    ]

    def _may_use(self, request) -> bool:
        user = request.user
        return (
            authz.is_operator(user)
            or authz.remembered(user, "audit_sink_orgs", _audit_sink_orgs(user).exists)
            or self.get_queryset(request).exists()
        )

    def has_module_permission(self, request) -> bool:
        return self.admin_site.has_permission(request) and self._may_use(request)

    def has_view_permission(self, request, obj=None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request) -> bool:
        user = request.user
        return self.admin_site.has_permission(request) and (
            authz.is_operator(user)
            or authz.remembered(user, "audit_sink_orgs", _audit_sink_orgs(user).exists)
        )

    def has_change_permission(self, request, obj=None) -> bool:
        if obj is None:
            return self.has_add_permission(request)
        return authz.has_perm(request.user, "change_auditsink", obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        if obj is None:
            return self.has_add_permission(request)
        return authz.has_perm(request.user, "delete_auditsink", obj)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "org":
            kwargs["queryset"] = _audit_sink_orgs(request.user)
            kwargs["required"] = not authz.is_operator(request.user)
            kwargs["empty_label"] = "(the platform's events)" if authz.is_operator(request.user) else None
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_fields(self, request, obj=None):
        fields = [*AuditSinkForm.Meta.fields, "new_secret"]
        if obj is None:
            return [*fields, "from_beginning"]
        return ["scope", *[f for f in fields if f != "org"], *self.status_fields]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["scope", "kind", *self.status_fields]

    @admin.display(description="events of")
    def scope(self, obj) -> str:
        return str(obj.org) if obj.org_id is not None else "the platform"

    @admin.display(description="health")
    def health_badge(self, obj) -> str:
        return obj.health

    @admin.display(description="lag (events)")
    def lag(self, obj) -> int:
        from paas.audit_sinks import lag

        return lag(obj)

    @admin.display(description="head seq")
    def head(self, obj) -> int:
        return getattr(obj, "head", 0)

    @admin.display(description="last error")
    def last_error_short(self, obj) -> str:
        return (obj.last_error[:120] + "…") if len(obj.last_error) > 120 else obj.last_error or "-"

    def save_model(self, request, obj, form, change):
        from paas.audit_sinks import audit_sink_create, audit_sink_update

        data = dict(form.cleaned_data)
        secret = data.pop("new_secret", "") or ""
        if change:
            for fixed in ("org", "kind", "from_beginning"):
                data.pop(fixed, None)
            audit_sink_update(actor=request.user, sink=self.fresh(obj), secret=secret or None, **data)
        else:
            sink = audit_sink_create(actor=request.user, secret=secret, **data)
            obj.pk = sink.pk

    def service_delete(self, request, obj) -> None:
        from paas.audit_sinks import audit_sink_delete

        audit_sink_delete(actor=request.user, sink=obj)

    @admin.action(description="Retry the selected sinks now")
    def retry_now(self, request, queryset):
        from paas.audit_sinks import audit_sink_retry

        for sink in queryset:
            try:
                audit_sink_retry(actor=request.user, sink=sink)
            except ApplicationError as exc:
                self.message_user(request, f"{sink}: {exc.message}", messages.ERROR)
        self.message_user(request, "They will be tried at the next delivery pass.")


# Roles are ours (tenancy.RoleAssignment, mirrored into object permissions); Django's groups are unused.
admin.site.unregister(Group)

# The worker queues: django-q2's pages, read-only, with an audited resubmit (paas/admin_queue.py).
admin_queue.register(admin.site)

# Organization data keys (paas/keyring.py): rotate, destroy (paas/admin_org_keys.py); the branding page
# (white-label, paas/branding_admin.py). Both register themselves with the site.
from paas import admin_org_keys, branding_admin  # noqa: E402, F401
