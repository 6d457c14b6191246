"""Studio page "Support access" (tenancy/support.py): operators ask for access to an org and see their
requests; an org's admins see its requests, approve (maybe at a lower level) or deny pending ones, end
active ones, and set what the org pre-approves. Every write goes through ``tenancy.support``.

Kept apart from tenancy/admin.py (which is ~600 lines); imported from there so it is registered.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from paas import authz
from paas.admin import ScopedModelAdmin
from paas.errors import ApplicationError
from paas.forms import apply_error
from tenancy import support
from tenancy.models import Organization, SupportAccess, SupportLevel, SupportState
from tenancy.support_selectors import (
    admin_org_ids,
    is_org_admin,
    org_choices_for_request,
    status_of,
    support_list_for,
    support_orgs_administered,
)

STATUS_LABELS = {
    "pending": "Waiting for approval",
    "active": "Active",
    "expired": "Expired",
    "denied": "Denied",
    "revoked": "Ended early",
    "withdrawn": "Withdrawn",
}


class SupportRequestForm(forms.ModelForm):
    class Meta:
        model = SupportAccess
        fields = ["org", "reason", "level", "duration_minutes"]
        widgets = {"reason": forms.Textarea(attrs={"rows": 3})}
        help_texts = {
            "level": "Read-only: see everything in the org, change nothing. Administrative: what an org "
            "admin may do.",
            "duration_minutes": "15 minutes to 7 days (10080); it starts when approved.",
        }


class DecisionForm(forms.Form):
    level = forms.ChoiceField(
        label="Level granted",
        choices=SupportLevel.choices,
        help_text="As asked, or lower (read-only) if administrative access was asked for.",
    )
    note = forms.CharField(label="Note (optional)", max_length=500, required=False)


class SupportSettingsForm(forms.Form):
    support_preapproval = forms.ChoiceField(
        label="Pre-approved support access",
        choices=Organization._meta.get_field("support_preapproval").choices,
        help_text=Organization._meta.get_field("support_preapproval").help_text,
    )
    support_max_minutes = forms.IntegerField(
        label="Longest pre-approved duration (minutes)",
        help_text="15 minutes to 7 days (10080); longer requests wait for an org admin.",
    )


@admin.register(SupportAccess)
class SupportAccessAdmin(ScopedModelAdmin):
    selector = staticmethod(support_list_for)
    list_display = [
        "org",
        "user",
        "level",
        "duration_minutes",
        "status",
        "short_reason",
        "requested_at",
        "expires_at",
    ]
    list_filter = ["state", "level"]
    list_select_related = ["org", "user"]
    search_fields = ["org__name", "user__email", "reason"]
    change_list_template = "admin/tenancy/supportaccess/change_list.html"

    @admin.display(description="reason")
    def short_reason(self, obj) -> str:
        return obj.reason if len(obj.reason) <= 80 else obj.reason[:79] + "…"

    @admin.display(description="status")
    def status(self, obj) -> str:
        return STATUS_LABELS.get(status_of(obj), obj.state)

    def _may_use(self, request) -> bool:
        user = request.user
        return authz.is_operator(user) or (
            authz.is_active_user(user)
            and authz.remembered(user, "support_admin_orgs", lambda: admin_org_ids(user).exists())
        )

    def has_module_permission(self, request) -> bool:
        return self._may_use(request)

    def has_view_permission(self, request, obj=None) -> bool:
        return self._may_use(request)

    def has_add_permission(self, request) -> bool:
        return authz.is_operator(request.user)

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = SupportRequestForm
        return super().get_form(request, obj, change=change, **kwargs)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "org":
            kwargs["queryset"] = org_choices_for_request(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        access = support.support_request(
            actor=request.user,
            org=data["org"],
            reason=data["reason"],
            level=data["level"],
            duration_minutes=data["duration_minutes"],
        )
        obj.pk = access.pk
        if access.state == SupportState.APPROVED:
            self.message_user(
                request, f"{access.org} pre-approves this access: it is active now.", messages.SUCCESS
            )
        else:
            self.message_user(
                request, f"Requested; {access.org}'s admins are asked by email.", messages.SUCCESS
            )

    def response_add(self, request, obj, post_url_continue=None):
        return HttpResponseRedirect(reverse("admin:tenancy_supportaccess_change", args=[obj.pk]))

    def changelist_view(self, request, extra_context=None):
        extra = {"settings_orgs": list(support_orgs_administered(request.user)), **(extra_context or {})}
        return super().changelist_view(request, extra)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("settings/<int:org_id>/", view(self.settings_view), name="tenancy_supportaccess_settings"),
            *super().get_urls(),
        ]

    # --- one request: its details and the decisions the user may take ---------------------------------
    def change_view(self, request, object_id, form_url="", extra_context=None):
        try:
            access = authz.get_visible(self.get_queryset(request), object_id)
        except ApplicationError as exc:
            raise Http404(exc.message) from exc
        user, now = request.user, timezone.now()
        deciding = is_org_admin(user, access.org) and user.pk != access.user_id
        state = status_of(access, now)
        form = DecisionForm(initial={"level": access.level})
        if request.method == "POST":
            action = request.POST.get("action", "")
            try:
                if action == "approve" and deciding:
                    form = DecisionForm(request.POST)
                    if form.is_valid():
                        support.support_approve(actor=user, access=access, **form.cleaned_data)
                        return self._done(request, access, "Approved.")
                elif action == "deny" and deciding:
                    form = DecisionForm({"level": access.level, "note": request.POST.get("note", "")})
                    if form.is_valid():
                        support.support_deny(actor=user, access=access, note=form.cleaned_data["note"])
                        return self._done(request, access, "Denied.")
                elif action == "end":
                    support.support_end(actor=user, access=access)
                    return self._done(request, access, "Support access ended.")
                elif action == "withdraw":
                    support.support_withdraw(actor=user, access=access)
                    return self._done(request, access, "Request withdrawn.")
                else:
                    raise PermissionDenied
            except ApplicationError as exc:
                if left := apply_error(form, exc):
                    messages.error(request, left)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Support access to {access.org}",
            "opts": self.model._meta,
            "access": access,
            "status": STATUS_LABELS.get(state, state),
            "form": form,
            "may_decide": deciding and state == "pending",
            "may_end": state == "active" and (deciding or user.pk == access.user_id),
            "may_withdraw": state == "pending" and user.pk == access.user_id,
        }
        return TemplateResponse(request, "admin/tenancy/supportaccess/detail.html", context)

    def _done(self, request, access, message):
        self.message_user(request, message, messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:tenancy_supportaccess_change", args=[access.pk]))

    # --- an org's pre-approval ------------------------------------------------------------------------
    def settings_view(self, request, org_id):
        org = support_orgs_administered(request.user).filter(pk=org_id).first()
        if org is None:
            raise Http404("No such organization.")
        initial = {
            "support_preapproval": org.support_preapproval,
            "support_max_minutes": org.support_max_minutes,
        }
        form = SupportSettingsForm(request.POST or None, initial=initial)
        if request.method == "POST" and form.is_valid():
            try:
                support.support_settings_update(
                    actor=request.user,
                    org=org,
                    preapproval=form.cleaned_data["support_preapproval"],
                    max_minutes=form.cleaned_data["support_max_minutes"],
                )
            except ApplicationError as exc:
                if left := apply_error(form, exc):
                    form.add_error(None, left)
            else:
                self.message_user(request, f"Support settings of {org} saved.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:tenancy_supportaccess_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Support settings of {org}",
            "opts": self.model._meta,
            "form": form,
            "intro": "Support requests within these limits are approved at once; you are told by email "
            "either way, and everything the support person does is in your audit trail.",
        }
        return TemplateResponse(request, "admin/catalog/action_form.html", context)
