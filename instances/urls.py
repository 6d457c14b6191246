from django.urls import path

from instances import app_views, credential_views, service_views, views
from instances.shell import views as shell_views

app_name = "instances"

urlpatterns = [
    path("w/<int:project_id>/", views.workspace, name="workspace"),
    path("w/<int:project_id>/instances/", views.instance_list, name="list"),
    path("w/<int:project_id>/instances/new/", views.instance_new, name="new"),
    path("instances/<int:instance_id>/", views.instance_detail, name="detail"),
    path("instances/<int:instance_id>/status/", views.instance_status, name="status"),
    path("instances/<int:instance_id>/kubeconfig/", views.instance_kubeconfig, name="kubeconfig"),
    path(
        "instances/<int:instance_id>/kube-credentials/",
        credential_views.kube_credentials,
        name="kube-credentials",
    ),
    path(
        "instances/<int:instance_id>/kube-credentials/<int:credential_id>/revoke/",
        credential_views.kube_credential_revoke,
        name="kube-credential-revoke",
    ),
    path("instances/<int:instance_id>/shell/", shell_views.shell_page, name="shell"),
    path("instances/<int:instance_id>/collaborators/", views.collaborator_add, name="collaborator-add"),
    path(
        "instances/<int:instance_id>/collaborators/<int:user_id>/remove/",
        views.collaborator_remove,
        name="collaborator-remove",
    ),
    path("instances/<int:instance_id>/delete/", views.instance_delete, name="delete"),
    path("instances/<int:instance_id>/outputs/<str:name>/reveal/", views.output_reveal, name="output-reveal"),
    path(
        "instances/<int:instance_id>/actions/<str:action>/",
        service_views.instance_action,
        name="instance-action",
    ),
    # "My deployments → Applications": users' own Kubernetes YAML and Helm charts on compute instances
    path("w/<int:project_id>/applications/", app_views.application_list, name="application-list"),
    path("w/<int:project_id>/applications/new/", app_views.application_new, name="application-new"),
    path(
        "w/<int:project_id>/applications/catalog/", app_views.application_catalog, name="application-catalog"
    ),
    path(
        "w/<int:project_id>/applications/catalog/<int:item_id>/",
        app_views.application_from_catalog,
        name="application-from-catalog",
    ),
    path("applications/<int:application_id>/", app_views.application_detail, name="application-detail"),
    path(
        "applications/<int:application_id>/status/", app_views.application_status, name="application-status"
    ),
    path(
        "applications/<int:application_id>/refresh/",
        app_views.application_refresh_view,
        name="application-refresh",
    ),
    path(
        "applications/<int:application_id>/update/",
        app_views.application_update_view,
        name="application-update",
    ),
    path(
        "applications/<int:application_id>/rollback/",
        app_views.application_rollback_view,
        name="application-rollback",
    ),
    path(
        "applications/<int:application_id>/retry/", app_views.application_retry_view, name="application-retry"
    ),
    path(
        "applications/<int:application_id>/delete/",
        app_views.application_delete_view,
        name="application-delete",
    ),
    # "My deployments": services deployed onto compute instances
    path(
        "w/<int:project_id>/deployments/launch/",
        service_views.service_launch_from_catalog,
        name="service-launch",
    ),
    path("w/<int:project_id>/deployments/<slug:kind>/", service_views.service_list, name="service-list"),
    path("w/<int:project_id>/deployments/<slug:kind>/new/", service_views.service_new, name="service-new"),
    path("services/<int:service_id>/", service_views.service_detail, name="service-detail"),
    path("services/<int:service_id>/status/", service_views.service_status, name="service-status"),
    path(
        "services/<int:service_id>/outputs/<str:name>/reveal/",
        service_views.service_reveal,
        name="service-output-reveal",
    ),
    path(
        "services/<int:service_id>/actions/<str:action>/", service_views.service_action, name="service-action"
    ),
    path("services/<int:service_id>/redeploy/", service_views.service_redeploy_view, name="service-redeploy"),
    path("services/<int:service_id>/delete/", service_views.service_delete_view, name="service-delete"),
]
