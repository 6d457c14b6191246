"""``/api/v1/billing/cost-profiles/``: clusters' chargeback rates, with their history (operators only;
anyone else sees an empty list and 404s). Rates are added, never edited: a change is a new cost
profile from a time on; only one not yet in force may be deleted (billing/cost_profiles.py)."""

from rest_framework import mixins

from billing import cost_profile_selectors, cost_profiles
from billing.api.cost_profiles_serializers import CostProfileSerializer
from paas import authz
from paas.api.viewsets import ScopedGenericViewSet, ServiceCreateMixin, ServiceDestroyMixin


class CostProfileViewSet(
    ServiceCreateMixin,
    ServiceDestroyMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    ScopedGenericViewSet,
):
    """Chargeback rates of clusters (per GPU-hour by model, per MIG slice, per CPU-hour, per GiB-hour
    of memory and storage) from a time on. Operators only."""

    api_area = "billing"
    selector = staticmethod(cost_profile_selectors.cost_profile_list_for)
    serializer_class = CostProfileSerializer
    filterset_fields = ["cluster"]
    create_service = staticmethod(cost_profiles.cost_profile_set)
    delete_service = staticmethod(cost_profiles.cost_profile_delete)
    target_kwarg = "profile"

    def create(self, request, *args, **kwargs):
        # Refused before the body is read: a tenant learns nothing about clusters from its errors.
        authz.require_operator(request.user, message=cost_profiles.ONLY_OPERATORS)
        return super().create(request, *args, **kwargs)

    def get_serializer_context(self):
        context = super().get_serializer_context()
        if not getattr(self, "swagger_fake_view", False) and self.action == "list":
            clusters = self.filter_queryset(self.get_queryset()).values_list("cluster_id", flat=True)
            context["in_force"] = cost_profile_selectors.in_force_ids(set(clusters))
        return context
