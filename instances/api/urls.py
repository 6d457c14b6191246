from django.urls import path
from rest_framework.routers import SimpleRouter

from instances.api import service_views, views

router = SimpleRouter()
router.register("instances", views.InstanceViewSet, basename="instance")
router.register("service-instances", service_views.ServiceInstanceViewSet, basename="service-instance")

urlpatterns = [
    path(
        "projects/<int:project_id>/summary/", views.WorkspaceSummaryView.as_view(), name="workspace-summary"
    ),
    *router.urls,
]
