"""Serializers of the application catalog API (``/api/v1/application-catalog/``)."""

from rest_framework import serializers

from catalog import app_catalog, selectors
from catalog.models import CatalogApplication, Repository, Sharing
from catalog.readme import render_readme
from paas import authz
from paas.api.fields import ScopedPrimaryKeyRelatedField
from tenancy.models import Organization, slug_validator
from tenancy.selectors import org_list_for, project_list_for


def _catalog_orgs(user):
    return authz.filter_for(user, "manage_catalog", Organization.objects.all())


class FilesField(serializers.DictField):
    """Uploaded files: ``{"name.yaml": "text", ...}`` (K8s YAML) or ``{"chart.tgz": "<base64>"}``."""

    def __init__(self, **kwargs):
        super().__init__(child=serializers.CharField(allow_blank=True, trim_whitespace=False), **kwargs)


class CatalogApplicationSerializer(serializers.ModelSerializer):
    org = ScopedPrimaryKeyRelatedField(
        selector=_catalog_orgs,
        required=False,
        allow_null=True,
        help_text="An org-wide item (with no project): that org's catalog managers.",
    )
    project = ScopedPrimaryKeyRelatedField(
        selector=selectors.managed_projects, required=False, allow_null=True
    )
    scope = serializers.SerializerMethodField()
    name = serializers.CharField(max_length=63, validators=[slug_validator])
    files = FilesField(required=False, write_only=True)
    file_names = serializers.SerializerMethodField()
    # Resolved among all ids: the service answers a repository outside the item's scope exactly like
    # a missing one (same message), so the field reveals nothing either way.
    repository = serializers.PrimaryKeyRelatedField(
        queryset=Repository.objects.all(), required=False, allow_null=True
    )
    readme_html = serializers.SerializerMethodField()
    shared_projects = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    shared_orgs = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    allowed_actions = serializers.SerializerMethodField()

    class Meta:
        model = CatalogApplication
        fields = [
            "id",
            "org",
            "project",
            "scope",
            "name",
            "display_name",
            "description",
            "package_type",
            "sync",
            "files",
            "file_names",
            "repository",
            "ref",
            "path",
            "chart",
            "chart_version",
            "values_file",
            "values",
            "readme",
            "readme_html",
            "icon_url",
            "published",
            "sharing",
            "shared_projects",
            "system_sharing",
            "shared_orgs",
            "allowed_actions",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "sharing", "system_sharing", "created_at", "updated_at"]
        extra_kwargs = {
            "display_name": {"required": False, "allow_blank": True},
            "sync": {"required": False},
        }
        validators = []  # names and scopes are the service's to check

    def get_scope(self, obj) -> str:
        return obj.scope_label

    def get_file_names(self, obj) -> list[str]:
        return sorted(obj.files or {})

    def get_readme_html(self, obj) -> str:
        return render_readme(obj.readme)

    def get_allowed_actions(self, obj) -> list[str]:
        return sorted(app_catalog.allowed_actions(self.context["request"].user, obj))


class CatalogApplicationUpdateSerializer(CatalogApplicationSerializer):
    class Meta(CatalogApplicationSerializer.Meta):
        read_only_fields = [*CatalogApplicationSerializer.Meta.read_only_fields, "org", "project"]


class PublishSerializer(serializers.Serializer):
    published = serializers.BooleanField(default=True)


class IntegrationShareSerializer(serializers.Serializer):
    sharing = serializers.ChoiceField(
        choices=Sharing.choices, help_text="System items: none, all or selected orgs."
    )
    projects = ScopedPrimaryKeyRelatedField(selector=project_list_for, many=True, required=False)
    orgs = ScopedPrimaryKeyRelatedField(selector=org_list_for, many=True, required=False)
