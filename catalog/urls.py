from django.urls import path

from catalog import integration_views, views

app_name = "catalog"

urlpatterns = [
    path("w/<int:project_id>/services/", views.service_catalog, name="services"),
    # Integrations: the workspace's repositories and the container registries delivered to it
    path(
        "w/<int:project_id>/integrations/repositories/",
        integration_views.repository_list,
        name="repositories",
    ),
    path(
        "w/<int:project_id>/integrations/repositories/new/",
        integration_views.repository_new,
        name="repository-new",
    ),
    path("repositories/<int:repository_id>/", integration_views.repository_edit, name="repository-edit"),
    path(
        "repositories/<int:repository_id>/check/",
        integration_views.repository_check_view,
        name="repository-check",
    ),
    path(
        "repositories/<int:repository_id>/delete/",
        integration_views.repository_delete_view,
        name="repository-delete",
    ),
    path("w/<int:project_id>/integrations/registries/", integration_views.registry_list, name="registries"),
]
