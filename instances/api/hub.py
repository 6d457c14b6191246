"""``GET /api/v1/developer-hub/``: the studio home's Developer Hub as data (instances/hub_selectors.py):
developers, profiles in use, running compute instances and services, in total and per workspace of the
viewer's scope. Operators and org admins only; anyone else gets a 403 saying so."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from instances.hub_selectors import developer_hub_for
from paas.errors import Forbidden


class DeveloperHubView(APIView):
    @extend_schema(responses=OpenApiTypes.OBJECT, summary="The developer hub of your scope")
    def get(self, request):
        hub = developer_hub_for(request.user)
        if hub is None:
            raise Forbidden("The developer hub is for operators and organization admins.")
        return Response(
            {
                "developers": hub.developers,
                "profiles_in_use": hub.profiles_in_use,
                "instances_running": hub.instances_running,
                "services_running": hub.services_running,
                "workspaces": [
                    {
                        "id": row.project.pk,
                        "name": row.project.name,
                        "org": row.project.org.name,
                        "developers": row.developers,
                        "profiles_in_use": row.profiles_in_use,
                        "instances_running": row.instances_running,
                        "instances_active": row.instances_active,
                        "services_running": row.services_running,
                        "services_active": row.services_active,
                    }
                    for row in hub.rows
                ],
                "more_workspaces": hub.more,
            }
        )
