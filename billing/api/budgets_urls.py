"""URLs of the billing API: budgets (``/api/v1/billing/budgets/``)."""

from rest_framework.routers import SimpleRouter

from billing.api.budgets_views import BudgetViewSet

router = SimpleRouter()
router.register("budgets", BudgetViewSet, basename="budget")

urlpatterns = router.urls
