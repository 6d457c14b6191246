from django.urls import path

from instances import service_views, views

app_name = "instances"

urlpatterns = [
    path("w/<int:project_id>/", views.workspace, name="workspace"),
    path("w/<int:project_id>/instances/", views.instance_list, name="list"),
    path("w/<int:project_id>/instances/new/", views.instance_new, name="new"),
    path("instances/<int:instance_id>/", views.instance_detail, name="detail"),
    path("instances/<int:instance_id>/status/", views.instance_status, name="status"),
    path("instances/<int:instance_id>/kubeconfig/", views.instance_kubeconfig, name="kubeconfig"),
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
