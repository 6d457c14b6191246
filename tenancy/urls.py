from django.urls import path

from tenancy import mfa_views, views

app_name = "tenancy"

urlpatterns = [
    path("login/", views.PortalLoginView.as_view(), name="login"),
    path("account/security/", mfa_views.security, name="security"),
    path("account/mfa/verify/", mfa_views.verify, name="mfa-verify"),
    path("account/email/", mfa_views.email, name="email"),
    path("account/email/verify/<str:token>/", mfa_views.email_verify, name="email-verify"),
    path("invitations/<str:token>/", views.invitation_accept, name="invitation-accept"),
    path("", views.home, name="home"),
]
