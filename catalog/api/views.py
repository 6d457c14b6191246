"""Catalog API: templates, versions, compute and service profiles (with clone and sharing), the
catalog a project sees, and the custom resources operators allow. Querysets come from selectors;
writes go through services."""

import re

from django.core.cache import cache
from django.db.models import Count, Window
from drf_spectacular.utils import extend_schema
from rest_framework import generics, mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

from catalog import custom_resources, selectors, services
from catalog.api.serializers import (
    AllowedCustomResourceSerializer,
    CatalogComputeSerializer,
    CatalogServiceSerializer,
    CloneSerializer,
    ComputeProfileSerializer,
    ServiceProfileSerializer,
    ShareSerializer,
    TemplateSerializer,
    TemplateVersionSerializer,
)
from catalog.models import ComputeProfile, ServiceProfile
from catalog.pricing import COST_FIELDS
from catalog.readme import render_readmes
from paas.api.viewsets import (
    ScopedGenericViewSet,
    ServiceCreateMixin,
    ServiceDestroyMixin,
    ServiceUpdateMixin,
    ServiceWriteMixin,
)
from paas.errors import NotFound, ValidationFailed

SIGNED_ASCII_NUMBER = re.compile(r"[+-]?[0-9]{1,19}")  # int() would also take "٣" and fullwidth digits
MAX_OFFSET = 2**31  # rows skipped by the catalog's own pages (the cap keeps ?page=10**20 a 404)


class ShareMixin:
    @extend_schema(request=ShareSerializer)
    @action(detail=True, methods=["post"])
    def share(self, request, pk=None):
        """Share with none, all or selected projects of the org (system items: orgs, operators only)."""
        item = self.get_object()
        data = self.validated(ShareSerializer)
        services.item_share(
            actor=request.user,
            item=item,
            sharing=data["sharing"],
            projects=data.get("projects", []),
            orgs=data.get("orgs", []),
        )
        return Response(self.get_serializer(self.get_queryset().get(pk=item.pk)).data)


class TemplateViewSet(
    ShareMixin,
    ServiceCreateMixin,
    ServiceDestroyMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    ScopedGenericViewSet,
):
    selector = staticmethod(selectors.template_list_for)
    serializer_class = TemplateSerializer
    filterset_fields = ["project", "sharing"]
    create_service = staticmethod(services.template_create)
    delete_service = staticmethod(services.template_delete)
    target_kwarg = "template"

    def prepare(self, data, update=False):
        data.setdefault("project", None)  # none: the system catalog (operators)
        return data


class TemplateVersionViewSet(
    ServiceCreateMixin,
    ServiceUpdateMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    ScopedGenericViewSet,
):
    """Template versions. Drafts change with PATCH; POST …/publish/ validates and freezes one."""

    selector = staticmethod(selectors.template_version_list_for)
    serializer_class = TemplateVersionSerializer
    filterset_fields = ["template", "state"]
    create_service = staticmethod(services.template_version_create)
    update_service = staticmethod(services.template_version_update)
    target_kwarg = "version"
    update_validates_instance = False

    def prepare(self, data, update=False):
        if update:  # a version stays in its template under its number
            data.pop("template", None)
            data.pop("version", None)
        return data

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def publish(self, request, pk=None):
        version = services.template_version_publish(actor=request.user, version=self.get_object())
        return Response(self.get_serializer(version).data)


class ProfileViewSet(
    ShareMixin, ServiceWriteMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedGenericViewSet
):
    model = None
    search_fields = ["name", "display_name"]
    create_service = staticmethod(services.profile_create)
    update_service = staticmethod(services.profile_update)
    delete_service = staticmethod(services.profile_delete)
    target_kwarg = "profile"
    update_validates_instance = False
    reread = True  # the selector prefetches what the answer shows

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        query = self.request.query_params.get("q")
        if query:
            from django.db.models import Q

            queryset = queryset.filter(Q(name__icontains=query) | Q(display_name__icontains=query))
        return queryset

    def prepare(self, data, update=False):
        if "resource_groups" in data:
            data["resource_groups"] = [dict(group) for group in data["resource_groups"]]
        if update:
            data.pop("project", None)  # a profile stays where it was created
        else:
            data.setdefault("project", None)
            data["model"] = self.model
        return data

    @extend_schema(request=CloneSerializer)
    @action(detail=True, methods=["post"])
    def clone(self, request, pk=None):
        profile = self.get_object()
        data = self.validated(CloneSerializer)
        clone = services.profile_clone(actor=request.user, profile=profile, **data)
        return Response(
            self.get_serializer(self.get_queryset().get(pk=clone.pk)).data, status=status.HTTP_201_CREATED
        )


class ComputeProfileViewSet(ProfileViewSet):
    model = ComputeProfile
    selector = staticmethod(selectors.compute_profile_list_for)
    serializer_class = ComputeProfileSerializer
    filterset_fields = ["project", "flavor", "published", "sharing"]


class ServiceProfileViewSet(ProfileViewSet):
    model = ServiceProfile
    selector = staticmethod(selectors.service_profile_list_for)
    serializer_class = ServiceProfileSerializer
    filterset_fields = ["project", "service_type", "published", "sharing"]


def shape_cost(row: dict) -> None:
    """A catalog row's prices as the serializers give them (decimal strings, 4 places)."""
    for field in ("cost_amount", "cost_stopped_amount"):
        row[field] = f"{row[field]:f}"


class ProjectCatalogView(generics.ListAPIView):
    """The catalog a project sees: its own, inherited and system profiles, published only.

    A hot read (every launch page): rows are read with ``values()`` and shaped here, one query for the
    page and one for its resource groups, instead of model instances and nested serializers.
    """

    kind = ComputeProfile
    FIELDS = (
        "id",
        "name",
        "display_name",
        "description",
        "flavor",
        *COST_FIELDS,
        "icon_url",
        "labels",
    )

    def get_serializer_class(self):
        return CatalogComputeSerializer if self.kind is ComputeProfile else CatalogServiceSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.kind.objects.none()
        return selectors.catalog_for_user(self.request.user, self.kind, self.kwargs["project_id"])

    def list(self, request, *args, **kwargs):
        """One query for the page, its total (a window count) and its resource groups (JSON).

        Pages are cached under the catalog generation, which every catalog write bumps in its own
        transaction: a cached page is never stale, and a warm read costs the project check only.
        """
        page, page_size = request.query_params.get("page", "1"), request.query_params.get("page_size", "50")
        if not (SIGNED_ASCII_NUMBER.fullmatch(page) and SIGNED_ASCII_NUMBER.fullmatch(page_size)):
            raise ValidationFailed("page and page_size are numbers.", fields={"page": "A number."})
        number = max(int(page), 1)
        size = min(max(int(page_size), 1), 500)
        if (number - 1) * size > MAX_OFFSET:  # past any catalog, and past what SQL's OFFSET takes
            raise NotFound("Invalid page.")
        project = selectors.catalog_project_for(request.user, self.kwargs["project_id"])
        key = (
            f"catalog:{self.kind._meta.model_name}:{project.pk}:{project.catalog_generation}:{number}:{size}"
        )
        page = cache.get(key)
        if page is None:
            page = self.read_page(project, number, size)
            cache.set(key, page, timeout=3600)
        total, rows = page
        if not rows and number > 1:
            raise NotFound("Invalid page.")
        url = request.build_absolute_uri()
        previous = None
        if number > 1:
            previous = (
                replace_query_param(url, "page", number - 1)
                if number > 2
                else remove_query_param(url, "page")
            )
        return Response(
            {
                "count": total,
                "next": replace_query_param(url, "page", number + 1) if number * size < total else None,
                "previous": previous,
                "results": rows,
            }
        )

    def read_page(self, project, number: int, size: int) -> "tuple[int, list[dict]]":
        start = (number - 1) * size
        queryset = selectors.catalog_for(self.kind, project).annotate(
            _total=Window(Count("pk")), **self.extra_columns()
        )
        rows = list(queryset.values(*self.FIELDS, "_total", *self.extra_columns())[start : start + size])
        total = rows[0]["_total"] if rows else 0
        for row in rows:
            del row["_total"]
        self.shape(rows)
        return total, rows

    def extra_columns(self) -> dict:
        return {"groups_json": selectors.resource_groups_json()}

    def shape(self, rows: "list[dict]") -> None:
        for row in rows:
            shape_cost(row)
            row["resource_groups"] = row.pop("groups_json")


class ServiceCatalogView(ProjectCatalogView):
    kind = ServiceProfile
    FIELDS = (
        "id",
        "name",
        "display_name",
        "description",
        "service_type",
        *COST_FIELDS,
        "icon_url",
        "readme",
        "labels",
    )

    def extra_columns(self) -> dict:
        return {}

    def shape(self, rows: "list[dict]") -> None:
        # The page's readmes in one batch through the render cache (keyed by each text's digest): a page
        # computed after a catalog write renders only the readmes that changed, not every one again.
        readmes = render_readmes([row.pop("readme") for row in rows])
        for row, html in zip(rows, readmes, strict=True):
            shape_cost(row)
            row["readme_html"] = html


class AllowedCustomResourceViewSet(
    ServiceCreateMixin,
    ServiceDestroyMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    ScopedGenericViewSet,
):
    """The custom resource kinds templates may create. Operators add and remove them; org admins and
    PaaS admins read the list (to know what their templates may use)."""

    selector = staticmethod(selectors.allowed_custom_resource_list_for)
    serializer_class = AllowedCustomResourceSerializer
    filterset_fields = ["group", "kind"]
    create_service = staticmethod(custom_resources.allowed_custom_resource_create)
    delete_service = staticmethod(custom_resources.allowed_custom_resource_delete)
    target_kwarg = "entry"
