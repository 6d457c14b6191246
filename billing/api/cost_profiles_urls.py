"""URLs of the billing API: cost profiles (clusters' chargeback rates)."""

from rest_framework.routers import SimpleRouter

from billing.api.cost_profiles_views import CostProfileViewSet

router = SimpleRouter()
router.register("cost-profiles", CostProfileViewSet, basename="cost-profile")

urlpatterns = router.urls
