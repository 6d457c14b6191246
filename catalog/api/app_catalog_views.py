"""The application catalog API: users list and read the published applications of their projects'
catalogs (``?project=`` gives exactly one project's); publishers (operators, org and project catalog
managers) create, edit, publish, share and delete. Querysets from ``catalog.app_catalog``'s selectors,
writes through its services."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins
from rest_framework.decorators import action

from catalog import app_catalog
from catalog.api.app_catalog_serializers import (
    CatalogApplicationSerializer,
    CatalogApplicationUpdateSerializer,
    IntegrationShareSerializer,
    PublishSerializer,
)
from paas import authz
from paas.api.viewsets import ScopedGenericViewSet, ServiceWriteMixin, query_id
from tenancy.models import Project


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("project", OpenApiTypes.INT, description="Only what this project's users see."),
            OpenApiParameter("package_type", OpenApiTypes.STR, enum=["yaml", "helm"]),
        ]
    )
)
class CatalogApplicationViewSet(
    ServiceWriteMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedGenericViewSet
):
    selector = staticmethod(app_catalog.catalog_application_visible_for)
    serializer_class = CatalogApplicationSerializer
    update_serializer_class = CatalogApplicationUpdateSerializer
    create_service = staticmethod(app_catalog.catalog_application_create)
    update_service = staticmethod(app_catalog.catalog_application_update)
    delete_service = staticmethod(app_catalog.catalog_application_delete)
    target_kwarg = "item"
    update_validates_instance = False
    reread = True

    def get_queryset(self):
        return super().get_queryset().prefetch_related("shared_projects", "shared_orgs")

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        if self.action != "list":
            return queryset
        project_id = query_id(self.request, "project")
        if project_id is not None:
            project = authz.get_for(self.request.user, "view_project", Project.objects.all(), project_id)
            queryset = queryset.filter(pk__in=app_catalog.catalog_applications_for(project).values("pk"))
        package_type = self.request.query_params.get("package_type")
        if package_type:
            queryset = queryset.filter(package_type=package_type)
        return queryset.order_by("display_name", "pk")

    def prepare(self, data, update=False):
        if update:
            data.pop("org", None)
            data.pop("project", None)
        return data

    @extend_schema(request=PublishSerializer)
    @action(detail=True, methods=["post"])
    def publish(self, request, pk=None):
        """Publish (``{"published": false}``: withdraw) the item: users then see it in their catalogs."""
        data = self.validated(PublishSerializer)
        item = app_catalog.catalog_application_publish(
            actor=request.user, item=self.get_object(), published=data["published"]
        )
        return self.respond(item)

    @extend_schema(request=IntegrationShareSerializer)
    @action(detail=True, methods=["post"])
    def share(self, request, pk=None):
        """Share with none, all or selected projects of the org (system items: orgs, operators only)."""
        data = self.validated(IntegrationShareSerializer)
        item = app_catalog.catalog_application_share(
            actor=request.user,
            item=self.get_object(),
            sharing=data["sharing"],
            projects=data.get("projects", []),
            orgs=data.get("orgs", []),
        )
        return self.respond(item)
