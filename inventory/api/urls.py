from rest_framework.routers import SimpleRouter

from inventory.api import views

router = SimpleRouter()
router.register("datacenters", views.DatacenterViewSet, basename="datacenter")
router.register("clusters", views.ClusterViewSet, basename="cluster")
router.register("nodes", views.NodeViewSet, basename="node")
router.register("mig-changes", views.MigChangeViewSet, basename="mig-change")
router.register("storage", views.StorageViewSet, basename="storage")
router.register("agents", views.AgentViewSet, basename="agent")
router.register("datacenter-agents", views.DatacenterAgentViewSet, basename="datacenter-agent")

urlpatterns = router.urls
