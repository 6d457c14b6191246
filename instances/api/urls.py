from django.urls import path, re_path
from rest_framework.routers import SimpleRouter

from instances.api import action_views, application_views, credential_views, pool_views, service_views, views
from instances.api.hub import DeveloperHubView

router = SimpleRouter()
router.register("instances", views.InstanceViewSet, basename="instance")
router.register("service-instances", service_views.ServiceInstanceViewSet, basename="service-instance")
router.register("applications", application_views.ApplicationViewSet, basename="application")
router.register("warm-pools", pool_views.WarmPoolViewSet, basename="warm-pool")

urlpatterns = [
    path(
        "projects/<int:project_id>/summary/", views.WorkspaceSummaryView.as_view(), name="workspace-summary"
    ),
    path("developer-hub/", DeveloperHubView.as_view(), name="developer-hub"),
    # actions and day-2 (instances.api.action_views); before the router's detail routes
    path(
        "instances/<int:pk>/actions/", action_views.InstanceActionListView.as_view(), name="instance-actions"
    ),
    re_path(
        rf"^instances/(?P<pk>[0-9]+)/actions/{action_views.ACTION_NAME}/$",
        action_views.InstanceActionRunView.as_view(),
        name="instance-action-run",
    ),
    # the kubectl proxy's credentials (instances.api.credential_views)
    path(
        "instances/<int:pk>/kube-credentials/",
        credential_views.KubeCredentialListView.as_view(),
        name="instance-kube-credentials",
    ),
    path(
        "instances/<int:pk>/kube-credentials/<int:credential_id>/revoke/",
        credential_views.KubeCredentialRevokeView.as_view(),
        name="instance-kube-credential-revoke",
    ),
    path(
        "service-instances/<int:pk>/actions/",
        action_views.ServiceActionListView.as_view(),
        name="service-instance-actions",
    ),
    re_path(
        rf"^service-instances/(?P<pk>[0-9]+)/actions/{action_views.ACTION_NAME}/$",
        action_views.ServiceActionRunView.as_view(),
        name="service-instance-action-run",
    ),
    path(
        "service-instances/<int:pk>/redeploy/",
        action_views.ServiceRedeployView.as_view(),
        name="service-instance-redeploy",
    ),
    *router.urls,
]
