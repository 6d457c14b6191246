"""Budgets API (``/api/v1/billing/budgets/``): list (each budget with its status this month), set,
change, delete. Org admins their org's budgets (operators through a support access); workspace members
read their workspace's and their org's (``billing.budget_selectors``). A budget the caller may not see
is a 404; one they see but may not change (a workspace member) a 403."""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.response import Response

from billing import budget_selectors, budgets
from billing.api.budgets_serializers import BudgetSerializer, BudgetUpdateSerializer, BudgetWriteSerializer
from billing.models import Budget
from paas.api.viewsets import ScopedGenericViewSet, ServiceDestroyMixin, ServiceUpdateMixin, query_id
from paas.errors import ValidationFailed
from tenancy.models import Project
from tenancy.selectors import org_get_for


class BudgetViewSet(
    ServiceUpdateMixin,
    ServiceDestroyMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    ScopedGenericViewSet,
):
    api_area = "billing"
    selector = staticmethod(budget_selectors.budget_list_for)
    serializer_class = BudgetSerializer
    filter_backends: list = []  # ?org= and ?project= are read below (a bad id is a 400 on that name)
    update_serializer_class = BudgetUpdateSerializer
    update_validates_instance = False
    update_service = staticmethod(budgets.budget_update)
    delete_service = staticmethod(budgets.budget_delete)
    target_kwarg = "budget"

    def get_queryset(self):
        queryset = super().get_queryset()
        if getattr(self, "swagger_fake_view", False):
            return queryset
        org, project = query_id(self.request, "org"), query_id(self.request, "project")
        if org is not None:
            queryset = queryset.filter(org_id=org)
        if project is not None:
            queryset = queryset.filter(project_id=project)
        return queryset.order_by("org_id", "project_id", "pk")

    def get_serializer(self, *args, **kwargs):
        if args and kwargs.get("many"):  # a page of budgets: their statuses and alerts together
            rows = list(args[0])
            kwargs["context"] = self.get_serializer_context() | {
                "budget_statuses": budget_selectors.statuses(rows)
            }
            args = (rows, *args[1:])
        return super().get_serializer(*args, **kwargs)

    @extend_schema(request=BudgetWriteSerializer, responses={201: BudgetSerializer, 200: BudgetSerializer})
    def create(self, request, *args, **kwargs):
        """Set the budget of an org or a workspace: created (201), or changed when it exists (200)."""
        serializer = BudgetWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        org = org_get_for(request.user, data["org"])  # an org the caller cannot see: 404
        project = None
        if data.get("project") is not None:
            project = Project.objects.filter(pk=data["project"], org=org).first()
            if project is None:
                raise ValidationFailed(
                    "Invalid budget.", fields={"project": "A workspace of this organization."}
                )
        existed = Budget.objects.filter(org=org, project=project).exists()
        budget = budgets.budget_set(
            actor=request.user,
            org=org,
            project=project,
            amount=data["amount"],
            currency=data["currency"],
            hard_stop=data["hard_stop"],
        )
        return Response(
            self.get_serializer(budget).data,
            status=status.HTTP_200_OK if existed else status.HTTP_201_CREATED,
        )

    @extend_schema(request=BudgetUpdateSerializer, responses=BudgetSerializer)
    def partial_update(self, request, *args, **kwargs):
        return super().partial_update(request, *args, **kwargs)
