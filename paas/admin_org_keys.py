"""Studio page "Organization data keys" (``paas.org_keys``): operators see every org's key (version,
created, how many records hold a secret) and may rotate any, and destroy a deactivated org's keys
after typing its name; an org's admins see and rotate their own. Every action goes through the
services (permissions and audit there)."""

from django import forms
from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from paas import authz, org_keys
from paas.admin import ScopedModelAdmin
from paas.errors import ApplicationError
from paas.forms import apply_error
from paas.keyring_models import OrgDataKey


def _keys_for(user):
    return OrgDataKey.objects.filter(org__in=org_keys.org_key_orgs_for(user))


class DestroyForm(forms.Form):
    confirm = forms.CharField(
        label="Organization name",
        max_length=63,
        help_text="Type the organization's name to confirm. Its secrets become unreadable for good.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )


@admin.register(OrgDataKey)
class OrgDataKeyAdmin(ScopedModelAdmin):
    selector = staticmethod(_keys_for)

    def has_module_permission(self, request) -> bool:
        user = request.user
        return super().has_module_permission(request) and authz.remembered(
            user, "sees_org_keys", org_keys.org_key_orgs_for(user).exists
        )

    def has_view_permission(self, request, obj=None) -> bool:
        return self.has_module_permission(request)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:org_id>/rotate/", wrap(self.rotate_view), name="paas_orgdatakey_rotate"),
            path("<int:org_id>/destroy/", wrap(self.destroy_view), name="paas_orgdatakey_destroy"),
            *super().get_urls(),
        ]

    def _context(self, request, title: str, **extra) -> dict:
        return {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": title,
            **extra,
        }

    def changelist_view(self, request, extra_context=None):
        orgs = org_keys.org_key_orgs_for(request.user).order_by("name")
        page = Paginator(orgs, self.list_per_page).get_page(request.GET.get("p"))
        rows = org_keys.org_key_rows(request.user, page.object_list)
        context = self._context(request, "Organization data keys", rows=rows, page=page)
        return TemplateResponse(request, "admin/paas/org_keys.html", context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        return HttpResponseRedirect(reverse("admin:paas_orgdatakey_changelist"))

    def rotate_view(self, request, org_id: int):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        try:
            row = org_keys.org_key_get_for(request.user, org_id)
            key = org_keys.org_key_rotate(actor=request.user, org=row.org)
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.ERROR)
        else:
            self.message_user(
                request,
                f"{row.org}: new data key v{key.version}; its secrets were re-encrypted.",
                messages.SUCCESS,
            )
        return HttpResponseRedirect(reverse("admin:paas_orgdatakey_changelist"))

    def destroy_view(self, request, org_id: int):
        try:
            row = org_keys.org_key_get_for(request.user, org_id)
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(reverse("admin:paas_orgdatakey_changelist"))
        form = DestroyForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                org_keys.org_key_destroy(
                    actor=request.user, org=row.org, confirm=form.cleaned_data["confirm"]
                )
            except ApplicationError as exc:
                left = apply_error(form, exc)
                if left:
                    form.add_error(None, left)
            else:
                self.message_user(
                    request,
                    f"{row.org}: its keys were destroyed; its secrets can no longer be read.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:paas_orgdatakey_changelist"))
        context = self._context(request, f"Destroy the keys of {row.org}", form=form, row=row)
        return TemplateResponse(request, "admin/paas/org_key_destroy.html", context)
