from django.urls import path

from instances import views

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
]
