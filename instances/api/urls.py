from django.urls import path
from rest_framework.routers import SimpleRouter

from instances.api import views

router = SimpleRouter()
router.register("instances", views.InstanceViewSet, basename="instance")

urlpatterns = [
    path(
        "projects/<int:project_id>/summary/", views.WorkspaceSummaryView.as_view(), name="workspace-summary"
    ),
    *router.urls,
]
