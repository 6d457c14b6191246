from django.urls import path
from django.views.generic import RedirectView

from tenancy import views

app_name = "tenancy"

urlpatterns = [
    path("invitations/<str:token>/", views.invitation_accept, name="invitation-accept"),
    # The developer hub (portal) arrives with its own issue; until then the home is the studio.
    path("", RedirectView.as_view(url="/studio/", permanent=False), name="home"),
]
