"""Studio page "Users": accounts, their roles, and the MFA reset and ask-to-verify-email actions.

Kept apart from tenancy/admin.py (past 600 lines with it); imported from there so it is registered.
"""

from django.contrib import admin, messages
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_otp_webauthn.models import WebAuthnAttestation, WebAuthnCredential

from paas import authz
from paas.admin import ReadOnlyInline
from paas.errors import ApplicationError
from tenancy import email_verification, mfa, selectors, services
from tenancy.admin import TenancyAdmin
from tenancy.models import RoleAssignment, User


class RoleAssignmentInline(ReadOnlyInline):
    model = RoleAssignment
    fk_name = "user"
    fields = ["role", "org", "project", "source", "created_at"]
    readonly_fields = fields
    show_change_link = True

    def get_queryset(self, request):
        return selectors.role_assignment_list_for(request.user)


@admin.register(User)
class UserAdmin(TenancyAdmin):
    selector = staticmethod(selectors.user_list_for)
    list_display = ["username", "email", "first_name", "last_name", "source", "is_active", "last_login"]
    list_filter = ["source", "is_active", "email_verified"]
    search_fields = ["username", "email", "first_name", "last_name"]
    inlines = [RoleAssignmentInline]
    actions = ["reset_mfa", "require_email_verification"]
    fields = [
        "username",
        "email",
        "email_verified",
        "pending_email",
        "first_name",
        "last_name",
        "source",
        "idp_subject",
        "is_active",
        "last_login",
        "date_joined",
    ]

    def get_readonly_fields(self, request, obj=None):
        readonly = ["username", "email", "email_verified", "pending_email", "source", "idp_subject"]
        readonly += ["last_login", "date_joined"]
        if not authz.is_operator(request.user):
            readonly.append("is_active")
        if obj is not None and not (authz.is_operator(request.user) or obj.pk == request.user.pk):
            readonly += ["first_name", "last_name"]
        return readonly

    def has_change_permission(self, request, obj=None) -> bool:
        if obj is None:
            return True
        return authz.is_operator(request.user) or obj.pk == request.user.pk

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        services.user_update(
            actor=request.user,
            user=self.fresh(obj),
            first_name=data.get("first_name"),
            last_name=data.get("last_name"),
            is_active=data.get("is_active"),
        )

    @admin.action(description="Reset MFA: remove the selected users' devices (they enrol again)")
    def reset_mfa(self, request, queryset):
        for user in queryset:
            try:
                removed = mfa.mfa_reset(actor=request.user, user=user)
            except ApplicationError as exc:
                self.message_user(request, f"{user}: {exc.message}", messages.WARNING)
            else:
                self.message_user(request, f"{user}: MFA reset ({removed} authenticator app(s) removed).")

    @admin.action(description="Ask to verify their email address (operators; a link is emailed)")
    def require_email_verification(self, request, queryset):
        for user in queryset:
            try:
                email_verification.email_verification_require(actor=request.user, user=user)
            except ApplicationError as exc:
                self.message_user(request, f"{user}: {exc.message}", messages.WARNING)
            else:
                self.message_user(request, f"{user}: verification link sent to {user.email}.")


# django-otp's own device pages would show every user's keys: devices are managed by their owners on
# /account/security/ and reset by org admins (the users page's action), never browsed.
for _device_model in (TOTPDevice, StaticDevice, WebAuthnCredential, WebAuthnAttestation):
    if admin.site.is_registered(_device_model):
        admin.site.unregister(_device_model)
