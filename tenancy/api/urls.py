from django.urls import include, path
from rest_framework.routers import SimpleRouter

from tenancy.api import limit_views, support, views

router = SimpleRouter()
router.register("orgs", views.OrganizationViewSet, basename="org")
router.register("projects", views.ProjectViewSet, basename="project")
router.register("role-assignments", views.RoleAssignmentViewSet, basename="role-assignment")
router.register("idp-group-mappings", views.IdpGroupMappingViewSet, basename="idp-group-mapping")
router.register("invitations", views.InvitationViewSet, basename="invitation")
router.register("quotas", views.QuotaViewSet, basename="quota")
router.register("instance-limits", limit_views.InstanceLimitViewSet, basename="instance-limit")
router.register("users", views.UserViewSet, basename="user")
router.register("support-access", support.SupportAccessViewSet, basename="support-access")
router.register("audit-events", views.AuditEventViewSet, basename="audit-event")

urlpatterns = [
    path("me/", views.MeView.as_view(), name="me"),
    path("", include("tenancy.mfa_api")),  # /mfa/ and /account/email/: the signed-in user's own
    *router.urls,
]
