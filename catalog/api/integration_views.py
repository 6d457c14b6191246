"""The integrations API: container registries (``/api/v1/registries/``) and repositories
(``/api/v1/repositories/``): CRUD through their services, ``POST {id}/check/`` (connectivity and
credential), ``POST {id}/share/``. Querysets from their selectors; the credential is write-only."""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action

from catalog import integration_selectors, registries, registry_selectors, repositories
from catalog.api.app_catalog_serializers import IntegrationShareSerializer
from catalog.api.integration_serializers import (
    RegistrySerializer,
    RegistryUpdateSerializer,
    RepositoryCheckSerializer,
    RepositorySerializer,
    RepositoryUpdateSerializer,
)
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


class RepositoryViewSet(IntegrationViewSet):
    selector = staticmethod(integration_selectors.repository_list_for)
    serializer_class = RepositorySerializer
    update_serializer_class = RepositoryUpdateSerializer
    filterset_fields = ["project", "kind"]
    create_service = staticmethod(repositories.repository_create)
    update_service = staticmethod(repositories.repository_update)
    delete_service = staticmethod(repositories.repository_delete)
    target_kwarg = "repository"

    def prepare(self, data, update=False):
        data = super().prepare(data, update)
        if not update:
            data.pop("clear_credential", None)
        # The services take sharing as ``sharing`` + ``projects`` (system: ``system_sharing`` + ``orgs``).
        if "shared_projects" in data:
            data["projects"] = data.pop("shared_projects")
        if "shared_orgs" in data:
            data["orgs"] = data.pop("shared_orgs")
        system_sharing = data.pop("system_sharing", None)
        if not update and data.get("org") is None and data.get("project") is None:
            data.pop("sharing", None)  # a system repository is shared with orgs
            if system_sharing is not None:
                data["sharing"] = system_sharing
        return data

    @extend_schema(request=RepositoryCheckSerializer, responses={202: RepositorySerializer})
    @action(detail=True, methods=["post"])
    def check(self, request, pk=None):
        """Ask for a connectivity check, run by the agent serving ``datacenter`` (the repository is reached
        from where it will be used); its outcome lands in ``check_ok`` and ``check_message``."""
        data = self.validated(RepositoryCheckSerializer)
        repository = repositories.repository_check(
            actor=request.user, repository=self.get_object(), datacenter=data.get("datacenter")
        )
        return self.respond(repository, status.HTTP_202_ACCEPTED)

    @extend_schema(request=IntegrationShareSerializer)
    @action(detail=True, methods=["post"])
    def share(self, request, pk=None):
        """Share with none, all or selected projects of the org (system repositories: orgs, operators)."""
        data = self.validated(IntegrationShareSerializer)
        repository = repositories.repository_share(
            actor=request.user,
            repository=self.get_object(),
            sharing=data["sharing"],
            projects=data.get("projects", []),
            orgs=data.get("orgs", []),
        )
        return self.respond(repository)
