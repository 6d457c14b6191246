from django.urls import path
from rest_framework.routers import SimpleRouter

from catalog.api import app_catalog_views, integration_views, views

router = SimpleRouter()
router.register("templates", views.TemplateViewSet, basename="template")
router.register("template-versions", views.TemplateVersionViewSet, basename="template-version")
router.register("compute-profiles", views.ComputeProfileViewSet, basename="compute-profile")
router.register("service-profiles", views.ServiceProfileViewSet, basename="service-profile")
router.register(
    "application-catalog", app_catalog_views.CatalogApplicationViewSet, basename="catalog-application"
)
router.register("registries", integration_views.RegistryViewSet, basename="registry")
router.register("repositories", integration_views.RepositoryViewSet, basename="repository")
router.register(
    "allowed-custom-resources", views.AllowedCustomResourceViewSet, basename="allowed-custom-resource"
)

urlpatterns = [
    path(
        "projects/<int:project_id>/catalog/compute-profiles/",
        views.ProjectCatalogView.as_view(),
        name="project-compute-catalog",
    ),
    path(
        "projects/<int:project_id>/catalog/service-profiles/",
        views.ServiceCatalogView.as_view(),
        name="project-service-catalog",
    ),
    *router.urls,
]
