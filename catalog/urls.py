from django.urls import path

from catalog import views

app_name = "catalog"

urlpatterns = [
    path("w/<int:project_id>/services/", views.service_catalog, name="services"),
]
