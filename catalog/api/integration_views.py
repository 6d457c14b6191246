"""The integrations API: container registries (``/api/v1/registries/``) and repositories
(``/api/v1/repositories/``): CRUD through their services, ``POST {id}/check/`` (connectivity and
credential), ``POST {id}/share/``. Querysets from their selectors; the credential is write-only."""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins
from rest_framework.decorators import action

from catalog import registries, registry_selectors
from catalog.api.app_catalog_serializers import IntegrationShareSerializer
from catalog.api.integration_serializers import RegistrySerializer, RegistryUpdateSerializer
from paas.api.viewsets import ScopedGenericViewSet, ServiceWriteMixin


class IntegrationViewSet(
    ServiceWriteMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedGenericViewSet
):
    update_validates_instance = False
    reread = True

    def get_queryset(self):
        return super().get_queryset().prefetch_related("shared_projects", "shared_orgs")

    def prepare(self, data, update=False):
        if update:
            data.pop("org", None)
            data.pop("project", None)
        elif not data.get("clear_credential"):
            data.pop("clear_credential", None)
        return data


class RegistryViewSet(IntegrationViewSet):
    selector = staticmethod(registry_selectors.registry_list_for)
    serializer_class = RegistrySerializer
    update_serializer_class = RegistryUpdateSerializer
    filterset_fields = ["project", "provider"]
    create_service = staticmethod(registries.registry_create)
    update_service = staticmethod(registries.registry_update)
    delete_service = staticmethod(registries.registry_delete)
    target_kwarg = "registry"

    def prepare(self, data, update=False):
        data = super().prepare(data, update)
        if not update:
            data.pop("clear_credential", None)
        return data

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def check(self, request, pk=None):
        """Check the registry now: its ``/v2/`` endpoint with the credential (the Bearer token flow;
        Amazon ECR's token exchange). The outcome is stored (``check_ok``, ``check_message``)."""
        return self.respond(registries.registry_check(actor=request.user, registry=self.get_object()))

    @extend_schema(request=IntegrationShareSerializer)
    @action(detail=True, methods=["post"])
    def share(self, request, pk=None):
        """Share with none, all or selected projects of the org (system registries: orgs, operators)."""
        data = self.validated(IntegrationShareSerializer)
        registry = registries.registry_share(
            actor=request.user,
            registry=self.get_object(),
            sharing=data["sharing"],
            projects=data.get("projects", []),
            orgs=data.get("orgs", []),
        )
        return self.respond(registry)
