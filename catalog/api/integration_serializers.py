"""Serializers of the integrations API: container registries (``/api/v1/registries/``) and repositories
(``/api/v1/repositories/``). The credential is write-only: accepted, never answered (``has_credential``
says whether one is stored); an empty value keeps the stored one, ``clear_credential`` removes it."""

from rest_framework import serializers

from catalog.api.app_catalog_serializers import _catalog_orgs
from catalog.integration_selectors import can_manage_repository
from catalog.models import ContainerRegistry, Repository
from catalog.registry_selectors import can_manage_registry
from catalog.selectors import managed_projects
from inventory.selectors import datacenter_list_for
from paas.api.fields import ScopedPrimaryKeyRelatedField
from paas.secrets import UnreadableSecret
from tenancy.models import slug_validator
from tenancy.selectors import org_list_for, project_list_for


class IntegrationSerializer(serializers.ModelSerializer):
    """What registries and repositories share: scope, name, sharing, the write-only credential, the
    last check."""

    org = ScopedPrimaryKeyRelatedField(
        selector=_catalog_orgs,
        required=False,
        allow_null=True,
        help_text="An org-wide integration (with no project): that org's admins.",
    )
    project = ScopedPrimaryKeyRelatedField(selector=managed_projects, required=False, allow_null=True)
    scope = serializers.SerializerMethodField()
    name = serializers.CharField(max_length=63, validators=[slug_validator])
    credential = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        style={"input_type": "password"},
        help_text="Write-only: stored encrypted, never returned. Empty keeps the stored one.",
    )
    clear_credential = serializers.BooleanField(
        write_only=True, required=False, default=False, help_text="Remove the stored credential."
    )
    has_credential = serializers.SerializerMethodField()
    credential_unreadable = serializers.SerializerMethodField(
        help_text="True when the stored credential can no longer be read: its organization's encryption "
        "keys were destroyed. Set it again."
    )
    shared_projects = ScopedPrimaryKeyRelatedField(selector=project_list_for, many=True, required=False)
    shared_orgs = ScopedPrimaryKeyRelatedField(selector=org_list_for, many=True, required=False)
    may_manage = serializers.SerializerMethodField()

    COMMON = [
        "id",
        "org",
        "project",
        "scope",
        "name",
        "display_name",
        "description",
        "credential",
        "clear_credential",
        "has_credential",
        "credential_unreadable",
        "sharing",
        "shared_projects",
        "system_sharing",
        "shared_orgs",
        "checked_at",
        "check_ok",
        "check_message",
        "may_manage",
        "created_at",
        "updated_at",
    ]
    READ_ONLY = ["id", "checked_at", "check_ok", "check_message", "created_at", "updated_at"]

    def get_scope(self, obj) -> str:
        return obj.scope_label

    def get_has_credential(self, obj) -> bool:
        return bool(obj.credential)

    def get_credential_unreadable(self, obj) -> bool:
        return isinstance(obj.credential, UnreadableSecret)

    def get_may_manage(self, obj) -> bool:
        return self.manages(self.context["request"].user, obj)

    @staticmethod
    def manages(user, obj) -> bool:
        return can_manage_registry(user, obj)


class RegistrySerializer(IntegrationSerializer):
    class Meta:
        model = ContainerRegistry
        fields = [
            *IntegrationSerializer.COMMON[:7],
            "provider",
            "scheme",
            "endpoint",
            "username",
            *IntegrationSerializer.COMMON[7:],
            "credential_version",
            "token_expires_at",
        ]
        read_only_fields = [*IntegrationSerializer.READ_ONLY, "credential_version", "token_expires_at"]
        extra_kwargs = {
            "display_name": {"required": False, "allow_blank": True},
            "endpoint": {"required": False, "allow_blank": True},
        }
        validators = []  # names and scopes are the service's to check


class RegistryUpdateSerializer(RegistrySerializer):
    class Meta(RegistrySerializer.Meta):
        read_only_fields = [*RegistrySerializer.Meta.read_only_fields, "org", "project"]


class RepositorySerializer(IntegrationSerializer):
    # Workspace admins and read-write members add their workspace's repositories too (the service
    # decides): any project the user sees is accepted here.
    project = ScopedPrimaryKeyRelatedField(selector=project_list_for, required=False, allow_null=True)

    class Meta:
        model = Repository
        fields = [
            *IntegrationSerializer.COMMON[:7],
            "kind",
            "url",
            "default_ref",
            "path",
            "auth",
            "username",
            "ssh_known_hosts",
            "ca_certificate",
            *IntegrationSerializer.COMMON[7:],
        ]
        read_only_fields = IntegrationSerializer.READ_ONLY
        extra_kwargs = {"display_name": {"required": False, "allow_blank": True}}
        validators = []

    @staticmethod
    def manages(user, obj) -> bool:
        return can_manage_repository(user, obj)


class RepositoryUpdateSerializer(RepositorySerializer):
    class Meta(RepositorySerializer.Meta):
        # Sharing changes through POST {id}/share/ (or ``sharing`` + ``shared_projects`` here).
        read_only_fields = [
            *RepositorySerializer.Meta.read_only_fields,
            "org",
            "project",
            "kind",
            "system_sharing",
            "shared_orgs",
        ]


class RepositoryCheckSerializer(serializers.Serializer):
    datacenter = ScopedPrimaryKeyRelatedField(
        selector=datacenter_list_for,
        required=False,
        allow_null=True,
        help_text="Check from the agent serving this datacenter (where the repository will be used).",
    )
