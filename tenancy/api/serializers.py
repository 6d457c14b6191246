from rest_framework import serializers

from paas.api.fields import ScopedPrimaryKeyRelatedField
from tenancy import selectors
from tenancy.models import (
    GpuModelQuota,
    IdpGroupMapping,
    Invitation,
    Organization,
    Project,
    Quota,
    RoleAssignment,
    User,
    slug_validator,
)
from tenancy.roles import TENANT_ROLE_CHOICES, Role


class OrganizationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Organization
        fields = ["id", "name", "display_name", "is_active", "mfa_required", "created_at"]
        read_only_fields = ["id", "name", "created_at"]
        extra_kwargs = {
            "mfa_required": {"help_text": "Every local user of the org must use MFA (org admins set it)."}
        }


class MemberRemoveSerializer(serializers.Serializer):
    user = ScopedPrimaryKeyRelatedField(selector=selectors.user_list_for)


class OrganizationOnboardSerializer(serializers.Serializer):
    """Operator onboarding: the org and its first admin, who receives an invitation."""

    name = serializers.CharField(
        max_length=63, validators=[slug_validator], help_text="Lowercase letters, digits and hyphens; unique."
    )
    display_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    admin_first_name = serializers.CharField(max_length=150)
    admin_last_name = serializers.CharField(max_length=150)
    admin_email = serializers.EmailField()


class ProjectSerializer(serializers.ModelSerializer):
    org = ScopedPrimaryKeyRelatedField(selector=selectors.org_list_for)
    owner = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = Project
        fields = ["id", "org", "name", "display_name", "description", "kind", "owner", "created_at"]
        read_only_fields = ["id", "kind", "owner", "created_at"]
        extra_kwargs = {"display_name": {"required": False, "allow_blank": True}}
        validators = []  # uniqueness is the service's rule, with its own message


class ProjectUpdateSerializer(serializers.ModelSerializer):
    class Meta:
        model = Project
        fields = ["display_name", "description"]


class RoleAssignmentSerializer(serializers.ModelSerializer):
    user = ScopedPrimaryKeyRelatedField(selector=selectors.user_list_for)
    user_email = serializers.EmailField(source="user.email", read_only=True)
    org = ScopedPrimaryKeyRelatedField(selector=selectors.org_list_for, required=False, allow_null=True)
    project = ScopedPrimaryKeyRelatedField(
        selector=selectors.project_list_for, required=False, allow_null=True
    )
    role = serializers.ChoiceField(choices=Role.choices)

    class Meta:
        model = RoleAssignment
        fields = ["id", "user", "user_email", "role", "org", "project", "source", "created_at", "created_by"]
        read_only_fields = ["id", "source", "created_at", "created_by"]
        validators = []


class IdpGroupMappingSerializer(serializers.ModelSerializer):
    org = ScopedPrimaryKeyRelatedField(selector=selectors.org_list_for)
    project = ScopedPrimaryKeyRelatedField(
        selector=selectors.project_list_for, required=False, allow_null=True
    )
    group = serializers.CharField(
        max_length=255, help_text="The value in the identity provider's groups claim."
    )
    role = serializers.ChoiceField(choices=TENANT_ROLE_CHOICES)

    class Meta:
        model = IdpGroupMapping
        fields = ["id", "org", "group", "role", "project", "created_at", "created_by"]
        read_only_fields = ["id", "created_at", "created_by"]
        validators = []  # uniqueness and scope are the service's rules, with its own messages


class InvitationSerializer(serializers.ModelSerializer):
    org = ScopedPrimaryKeyRelatedField(selector=selectors.org_list_for)
    project = ScopedPrimaryKeyRelatedField(
        selector=selectors.project_list_for, required=False, allow_null=True
    )
    role = serializers.ChoiceField(choices=TENANT_ROLE_CHOICES)
    status = serializers.CharField(read_only=True)

    class Meta:
        model = Invitation
        fields = [
            "id",
            "org",
            "project",
            "email",
            "first_name",
            "last_name",
            "role",
            "status",
            "created_at",
            "expires_at",
            "invited_by",
            "accepted_at",
            "revoked_at",
        ]
        read_only_fields = [
            "id",
            "status",
            "created_at",
            "expires_at",
            "invited_by",
            "accepted_at",
            "revoked_at",
        ]


class InvitationAcceptSerializer(serializers.Serializer):
    token = serializers.CharField()
    username = serializers.CharField(required=False, allow_blank=True, max_length=150)
    password = serializers.CharField(
        required=False, allow_blank=True, write_only=True, style={"input_type": "password"}
    )
    first_name = serializers.CharField(required=False, allow_blank=True, max_length=150)
    last_name = serializers.CharField(required=False, allow_blank=True, max_length=150)


class GpuModelQuotaSerializer(serializers.ModelSerializer):
    class Meta:
        model = GpuModelQuota
        fields = ["gpu_model", "gpus"]


class QuotaSerializer(serializers.ModelSerializer):
    gpu_models = GpuModelQuotaSerializer(many=True, required=False)
    scope = serializers.SerializerMethodField()

    class Meta:
        model = Quota
        fields = ["id", "scope", "org", "project", *Quota.LIMIT_FIELDS, "gpu_models", "updated_at"]
        read_only_fields = ["id", "scope", "org", "project", "updated_at"]

    def get_scope(self, quota: Quota) -> str:
        return "project" if quota.project_id else "org"

    def validate_gpu_models(self, value):
        names = [row["gpu_model"] for row in value]
        if len(names) != len(set(names)):
            raise serializers.ValidationError("Each GPU model may appear once.")
        return value


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "username", "email", "first_name", "last_name", "source", "is_active", "date_joined"]
        read_only_fields = ["id", "username", "email", "source", "date_joined"]


class MeSerializer(serializers.ModelSerializer):
    is_operator = serializers.BooleanField(source="is_superuser", read_only=True)
    roles = serializers.SerializerMethodField()
    workspaces = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = [
            "id",
            "username",
            "email",
            "first_name",
            "last_name",
            "source",
            "is_operator",
            "roles",
            "workspaces",
        ]

    def get_roles(self, user) -> list[dict]:
        return [
            {"role": ra.role, "org": ra.org_id, "project": ra.project_id}
            for ra in user.role_assignments.all().order_by("id")
        ]

    def get_workspaces(self, user) -> list[dict]:
        return [
            {"id": p.id, "org": p.org.name, "name": p.name, "display_name": p.display_name, "kind": p.kind}
            for p in selectors.workspaces_for(user)
        ]
