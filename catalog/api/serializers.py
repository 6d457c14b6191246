from rest_framework import serializers

from catalog import secret_inputs, selectors
from catalog.models import (
    AllowedCustomResource,
    ComputeProfile,
    EnvironmentTemplate,
    ResourceGroup,
    ServiceProfile,
    Sharing,
    TemplateVersion,
)
from catalog.pricing import COST_FIELDS
from inventory.selectors import datacenter_list_for, storage_list_for
from paas.api.fields import ScopedPrimaryKeyRelatedField
from tenancy.models import slug_validator
from tenancy.selectors import org_list_for, project_list_for


def _versions(user):
    return TemplateVersion.objects.filter(template__in=selectors.template_list_for(user))


class ScopeMixin(serializers.Serializer):
    scope = serializers.SerializerMethodField()
    allowed_actions = serializers.SerializerMethodField()

    def get_scope(self, obj) -> str:
        return obj.scope_label

    def get_allowed_actions(self, obj) -> list[str]:
        return sorted(selectors.allowed_actions(self.context["request"].user, obj))


class TemplateSerializer(ScopeMixin, serializers.ModelSerializer):
    project = ScopedPrimaryKeyRelatedField(
        selector=selectors.managed_projects, required=False, allow_null=True
    )
    name = serializers.CharField(max_length=63, validators=[slug_validator])
    versions = serializers.SlugRelatedField(many=True, read_only=True, slug_field="version")

    class Meta:
        model = EnvironmentTemplate
        fields = [
            "id",
            "project",
            "scope",
            "name",
            "display_name",
            "description",
            "sharing",
            "system_sharing",
            "versions",
            "allowed_actions",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "sharing", "system_sharing", "created_at", "updated_at"]
        extra_kwargs = {"display_name": {"required": False, "allow_blank": True}}


class TemplateVersionSerializer(serializers.ModelSerializer):
    template = ScopedPrimaryKeyRelatedField(selector=selectors.template_list_for)
    inputs = serializers.JSONField(required=False)
    outputs = serializers.JSONField(required=False)
    actions = serializers.JSONField(required=False)
    custom_resources = serializers.JSONField(required=False)

    class Meta:
        model = TemplateVersion
        fields = [
            "id",
            "template",
            "version",
            "manifests",
            "inputs",
            "outputs",
            "actions",
            "custom_resources",
            "kubernetes_version",
            "state",
            "published_at",
            "created_at",
        ]
        read_only_fields = ["id", "state", "published_at", "created_at"]
        validators = []


class ShareSerializer(serializers.Serializer):
    sharing = serializers.ChoiceField(
        choices=Sharing.choices, help_text="System items: none, all or selected orgs."
    )
    projects = ScopedPrimaryKeyRelatedField(selector=project_list_for, many=True, required=False)
    orgs = ScopedPrimaryKeyRelatedField(selector=org_list_for, many=True, required=False)


class CloneSerializer(serializers.Serializer):
    target_project = ScopedPrimaryKeyRelatedField(selector=selectors.managed_projects)
    name = serializers.CharField(max_length=63, validators=[slug_validator])
    display_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    description = serializers.CharField(required=False, allow_blank=True)


class ResourceGroupSerializer(serializers.ModelSerializer):
    class Meta:
        model = ResourceGroup
        fields = [
            "gpu_model",
            "gpu_count",
            "mig_profile",
            "mig_count",
            "cpu_cores",
            "memory_gib",
            "storage_gib",
        ]


class ProfileSerializerBase(ScopeMixin, serializers.ModelSerializer):
    project = ScopedPrimaryKeyRelatedField(
        selector=selectors.managed_projects, required=False, allow_null=True
    )
    name = serializers.CharField(max_length=63, validators=[slug_validator])
    template_version = ScopedPrimaryKeyRelatedField(selector=_versions)
    template = serializers.CharField(source="template_version.template.name", read_only=True)
    version = serializers.CharField(source="template_version.version", read_only=True)
    readme_html = serializers.SerializerMethodField()
    COMMON = [
        "id",
        "project",
        "scope",
        "origin",
        "name",
        "display_name",
        "description",
        "template_version",
        "template",
        "version",
        "labels",
        "annotations",
        "icon_url",
        "readme",
        "readme_html",
        "published",
        "sharing",
        "system_sharing",
        "allowed_actions",
        "created_at",
        "updated_at",
    ]

    def get_readme_html(self, obj) -> str:
        from catalog.readme import render_readme

        return render_readme(obj.readme)


class ComputeProfileSerializer(ProfileSerializerBase):
    resource_groups = ResourceGroupSerializer(many=True)

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if "input_values" in data:  # write-only secrets: a secret-typed input shows the mask
            data["input_values"] = secret_inputs.masked(data["input_values"])
        return data

    class Meta:
        model = ComputeProfile
        fields = [
            *ProfileSerializerBase.COMMON,
            "flavor",
            "resource_groups",
            "allocation_strategy",
            "warm_pool_size",
            *COST_FIELDS,
            "input_values",
        ]
        read_only_fields = ["id", "origin", "sharing", "system_sharing", "created_at", "updated_at"]
        extra_kwargs = {"display_name": {"required": False, "allow_blank": True}}
        validators = []


class ServiceProfileSerializer(ProfileSerializerBase):
    datacenter = ScopedPrimaryKeyRelatedField(selector=datacenter_list_for, required=False, allow_null=True)
    storages = ScopedPrimaryKeyRelatedField(selector=storage_list_for, many=True, required=False)

    class Meta:
        model = ServiceProfile
        fields = [
            *ProfileSerializerBase.COMMON,
            "service_type",
            "datacenter",
            "datacenter_exposed",
            "datacenter_overridable",
            "storages",
            "storage_exposed",
            "storage_overridable",
            "extra_config",
            "input_settings",
            "output_settings",
            "action_settings",
            *COST_FIELDS,
        ]
        read_only_fields = ["id", "origin", "sharing", "system_sharing", "created_at", "updated_at"]
        extra_kwargs = {"display_name": {"required": False, "allow_blank": True}}
        validators = []


class CatalogComputeSerializer(serializers.ModelSerializer):
    """The end-user view of a compute profile: what it gives and what it costs."""

    resource_groups = ResourceGroupSerializer(many=True, read_only=True)

    class Meta:
        model = ComputeProfile
        fields = [
            "id",
            "name",
            "display_name",
            "description",
            "flavor",
            "resource_groups",
            *COST_FIELDS,
            "icon_url",
            "labels",
        ]


class CatalogServiceSerializer(serializers.ModelSerializer):
    readme_html = serializers.SerializerMethodField()

    class Meta:
        model = ServiceProfile
        fields = [
            "id",
            "name",
            "display_name",
            "description",
            "service_type",
            *COST_FIELDS,
            "icon_url",
            "readme_html",
            "labels",
        ]

    def get_readme_html(self, obj) -> str:
        from catalog.readme import render_readme

        return render_readme(obj.readme)


class AllowedCustomResourceSerializer(serializers.ModelSerializer):
    """A custom resource kind templates may create (any version of its API group)."""

    group = serializers.CharField(max_length=253, help_text="API group, e.g. ray.io.")
    kind = serializers.CharField(max_length=63, help_text="Kind, e.g. RayCluster.")
    description = serializers.CharField(required=False, allow_blank=True, default="")
    created_by = serializers.SlugRelatedField(read_only=True, slug_field="username")

    class Meta:
        model = AllowedCustomResource
        fields = ["id", "group", "kind", "description", "created_by", "created_at"]
        read_only_fields = ["id", "created_by", "created_at"]
