from django.urls import path
from rest_framework.routers import SimpleRouter

from instances.api import service_views, views
from instances.api.hub import DeveloperHubView

router = SimpleRouter()
router.register("instances", views.InstanceViewSet, basename="instance")
router.register("service-instances", service_views.ServiceInstanceViewSet, basename="service-instance")

urlpatterns = [
    path(
        "projects/<int:project_id>/summary/", views.WorkspaceSummaryView.as_view(), name="workspace-summary"
    ),
    path("developer-hub/", DeveloperHubView.as_view(), name="developer-hub"),
    *router.urls,
]
