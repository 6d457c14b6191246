from django.urls import path

from tenancy import views

app_name = "tenancy"

urlpatterns = [
    path("login/", views.PortalLoginView.as_view(), name="login"),
    path("invitations/<str:token>/", views.invitation_accept, name="invitation-accept"),
    path("", views.home, name="home"),
]
