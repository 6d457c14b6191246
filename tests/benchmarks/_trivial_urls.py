"""The platform's URLs plus ``/bench/trivial/``: an authenticated DRF view answering ``{"ok": true}``, the
baseline a benchmark measures beside its endpoint on the production server (see _trivial_settings)."""

from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from paas import urls as root


class Trivial(APIView):
    """Authentication (token or session), DRF's content negotiation and a JSON answer: nothing else."""

    def get(self, request):
        return Response({"ok": True})


urlpatterns = [path("bench/trivial/", Trivial.as_view()), *root.urlpatterns]
