"""Serializers of the applications API (``/api/v1/applications/``)."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from catalog.models import ArtifactSync, PackageType
from instances.api.serializers import RunSerializer
from instances.application_selectors import can_manage_application
from instances.models import Application, ApplicationRevision
from instances.selectors import instance_list_for
from paas.api.fields import ScopedPrimaryKeyRelatedField

SOURCE_TEXT_FIELDS = ("ref", "path", "chart", "chart_version", "values_file", "values")


class FilesField(serializers.DictField):
    """Uploaded files: ``{"name.yaml": "text", ...}`` (K8s YAML) or ``{"chart.tgz": "<base64>"}``."""

    def __init__(self, **kwargs):
        super().__init__(child=serializers.CharField(allow_blank=True, trim_whitespace=False), **kwargs)


class RevisionSerializer(serializers.ModelSerializer):
    file_names = serializers.SerializerMethodField()
    repository_name = serializers.CharField(source="repository.name", read_only=True, default=None)
    rollback_of = serializers.IntegerField(source="rollback_of.number", read_only=True, default=None)
    run = serializers.PrimaryKeyRelatedField(read_only=True)
    created_by = serializers.CharField(source="created_by.email", read_only=True, default=None)

    class Meta:
        model = ApplicationRevision
        fields = [
            "number",
            "outcome",
            "message",
            "package_type",
            "sync",
            "file_names",
            "repository",
            "repository_name",
            "ref",
            "path",
            "chart",
            "chart_version",
            "values_file",
            "values",
            "commit",
            "resolved_chart_version",
            "digest",
            "applied",
            "notes",
            "rollback_of",
            "run",
            "created_by",
            "created_at",
            "deployed_at",
        ]
        read_only_fields = fields

    def get_file_names(self, obj) -> list[str]:
        return sorted(obj.files or {})


class ObjectEventSerializer(serializers.Serializer):
    reason = serializers.CharField()
    message = serializers.CharField()
    type = serializers.CharField()
    count = serializers.IntegerField(allow_null=True)
    last = serializers.CharField(allow_null=True)


class ObjectStatusSerializer(serializers.Serializer):
    apiVersion = serializers.CharField()
    kind = serializers.CharField()
    name = serializers.CharField()
    ready = serializers.BooleanField()
    message = serializers.CharField(allow_blank=True)
    events = ObjectEventSerializer(many=True, required=False)


class ApplicationSerializer(serializers.ModelSerializer):
    compute_instance_name = serializers.CharField(source="compute_instance.name", read_only=True)
    catalog_item_name = serializers.CharField(source="catalog_item.name", read_only=True, default=None)
    owner = serializers.CharField(source="owner.email", read_only=True)
    may_manage = serializers.SerializerMethodField()

    class Meta:
        model = Application
        fields = [
            "id",
            "project",
            "compute_instance",
            "compute_instance_name",
            "name",
            "description",
            "package_type",
            "catalog_item",
            "catalog_item_name",
            "owner",
            "state",
            "state_reason",
            "revision",
            "gpus",
            "mig_slices",
            "cpu_millis",
            "memory_gib",
            "storage_gib",
            "may_manage",
            "created_at",
            "ready_at",
            "deleted_at",
        ]
        read_only_fields = fields

    def get_may_manage(self, obj) -> bool:
        return can_manage_application(self.context["request"].user, obj)


class ApplicationDetailSerializer(ApplicationSerializer):
    object_status = serializers.SerializerMethodField()
    revisions = serializers.SerializerMethodField()
    latest_run = serializers.SerializerMethodField()

    class Meta(ApplicationSerializer.Meta):
        fields = [
            *ApplicationSerializer.Meta.fields,
            "objects_applied",
            "object_status",
            "status_checked_at",
            "revisions",
            "latest_run",
        ]
        read_only_fields = fields

    @extend_schema_field(ObjectStatusSerializer(many=True))
    def get_object_status(self, obj) -> list[dict]:
        return obj.object_status or []

    @extend_schema_field(RevisionSerializer(many=True))
    def get_revisions(self, obj) -> list[dict]:
        rows = obj.revisions.select_related("repository", "rollback_of", "created_by").order_by("-number")
        return RevisionSerializer(rows[:50], many=True).data

    @extend_schema_field(RunSerializer(allow_null=True))
    def get_latest_run(self, obj) -> dict | None:
        run = obj.runs.order_by("-created_at", "-pk").first()
        return RunSerializer(run).data if run else None


class SourceFieldsSerializer(serializers.Serializer):
    """The source of a revision: uploaded files, or a repository at a ref and path (Helm: chart,
    version, values file), and value overrides."""

    sync = serializers.ChoiceField(choices=ArtifactSync.choices, required=False)
    files = FilesField(required=False)
    # An id, resolved by the service among the repositories the workspace may use: one another org
    # holds reads exactly like one that does not exist.
    repository = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    ref = serializers.CharField(required=False, allow_blank=True, max_length=255)
    path = serializers.CharField(required=False, allow_blank=True, max_length=1024)
    chart = serializers.CharField(required=False, allow_blank=True, max_length=255)
    chart_version = serializers.CharField(required=False, allow_blank=True, max_length=64)
    values_file = serializers.CharField(required=False, allow_blank=True, max_length=1024)
    values = serializers.CharField(
        required=False, allow_blank=True, trim_whitespace=False, help_text="YAML: value overrides."
    )
    description = serializers.CharField(required=False, allow_blank=True)


class ApplicationCreateSerializer(SourceFieldsSerializer):
    compute_instance = ScopedPrimaryKeyRelatedField(selector=instance_list_for)
    name = serializers.CharField(max_length=53)
    package_type = serializers.ChoiceField(choices=PackageType.choices, required=False)
    catalog_item = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        help_text="Deploy an application of the workspace's catalog (with `values` as overrides).",
    )

    def validate(self, attrs):
        if attrs.get("catalog_item") is not None:
            mixed = sorted(
                f
                for f in ("package_type", "sync", "files", "repository", *SOURCE_TEXT_FIELDS[:-1])
                if attrs.get(f) not in (None, "", {})
            )
            if mixed:
                raise serializers.ValidationError(
                    {"catalog_item": f"From the catalog only values are given (not {', '.join(mixed)})."}
                )
        elif not attrs.get("package_type"):
            raise serializers.ValidationError({"package_type": "This field is required."})
        return attrs


class ApplicationUpdateSerializer(SourceFieldsSerializer):
    pass


class RollbackSerializer(serializers.Serializer):
    revision = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        help_text="Default: the last deployed before the current.",
    )
