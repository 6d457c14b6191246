"""Single sign-on URLs: the OIDC flow under ``/oidc/`` and the one sign-out of every front door."""

from django.urls import include, path

from tenancy import sso

urlpatterns = [
    path("oidc/", include("mozilla_django_oidc.urls")),
    path("logout/", sso.logout, name="logout"),
]
