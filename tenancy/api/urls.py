from django.urls import path
from rest_framework.routers import SimpleRouter

from tenancy import mfa_api
from tenancy.api import views

router = SimpleRouter()
router.register("orgs", views.OrganizationViewSet, basename="org")
router.register("projects", views.ProjectViewSet, basename="project")
router.register("role-assignments", views.RoleAssignmentViewSet, basename="role-assignment")
router.register("idp-group-mappings", views.IdpGroupMappingViewSet, basename="idp-group-mapping")
router.register("invitations", views.InvitationViewSet, basename="invitation")
router.register("quotas", views.QuotaViewSet, basename="quota")
router.register("users", views.UserViewSet, basename="user")
router.register("audit-events", views.AuditEventViewSet, basename="audit-event")

urlpatterns = [
    path("me/", views.MeView.as_view(), name="me"),
    # MFA and the verified address of the signed-in user (tenancy/mfa_api.py).
    path("mfa/", mfa_api.MfaView.as_view(), name="mfa"),
    path("mfa/totp/", mfa_api.TotpEnrolView.as_view(), name="mfa-totp"),
    path("mfa/totp/<int:pk>/", mfa_api.TotpDeviceView.as_view(), name="mfa-totp-device"),
    path("mfa/totp/<int:pk>/confirm/", mfa_api.TotpConfirmView.as_view(), name="mfa-totp-confirm"),
    path("mfa/passkeys/<int:pk>/", mfa_api.PasskeyView.as_view(), name="mfa-passkey"),
    path("mfa/recovery-codes/", mfa_api.RecoveryCodesView.as_view(), name="mfa-recovery-codes"),
    path("mfa/verify/", mfa_api.VerifyView.as_view(), name="mfa-verify"),
    path("mfa/reset/", mfa_api.ResetView.as_view(), name="mfa-reset"),
    path("account/email/", mfa_api.EmailView.as_view(), name="account-email"),
    path("account/email/resend/", mfa_api.EmailResendView.as_view(), name="account-email-resend"),
    path("account/email/verify/", mfa_api.EmailVerifyView.as_view(), name="account-email-verify"),
    *router.urls,
]
