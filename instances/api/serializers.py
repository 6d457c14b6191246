from django.db.models import Prefetch
from rest_framework import serializers

from catalog.models import ComputeProfile
from instances.models import Collaborator, ComputeInstance, Run
from paas.api.fields import ScopedPrimaryKeyRelatedField
from tenancy.selectors import project_list_for


def _profiles(user):
    return ComputeProfile.objects.all()  # the launch service checks the workspace's catalog


LATEST_RUNS = "prefetched_latest_runs"


def run_data(owner: serializers.Serializer, run: Run | None) -> dict | None:
    """``run`` as RunSerializer gives it, by one RunSerializer kept on ``owner`` (a list's rows share
    their serializer): DRF builds a serializer's fields anew for each instance, the most of a row's time."""
    if run is None:
        return None
    if "_run_serializer" not in owner.__dict__:
        owner._run_serializer = RunSerializer()
    return owner._run_serializer.to_representation(run)


def latest_runs(**filters) -> Prefetch:
    """A prefetch of each object's latest run (``runs`` filtered by ``filters``) into ``LATEST_RUNS``:
    one query for a page of instances or services (a sliced prefetch is one window query)."""
    return Prefetch(
        "runs", queryset=Run.objects.filter(**filters).order_by("-created_at", "-pk")[:1], to_attr=LATEST_RUNS
    )


class RunSerializer(serializers.ModelSerializer):
    class Meta:
        model = Run
        fields = [
            "id",
            "kind",
            "action",
            "attempt",
            "outcome",
            "message",
            "log",
            "created_at",
            "started_at",
            "finished_at",
        ]


class InstanceSerializer(serializers.ModelSerializer):
    project = ScopedPrimaryKeyRelatedField(selector=project_list_for)
    profile = ScopedPrimaryKeyRelatedField(selector=_profiles, write_only=True)
    profile_name = serializers.CharField(source="snapshot.name", read_only=True, default="")
    owner = serializers.CharField(source="owner.email", read_only=True)
    cluster = serializers.CharField(source="cluster.name", read_only=True, default=None)
    placement_explanation = serializers.CharField(source="placement.explanation", read_only=True, default="")
    price = serializers.JSONField(source="snapshot.price", read_only=True, default=None)
    latest_run = serializers.SerializerMethodField()

    class Meta:
        model = ComputeInstance
        fields = [
            "id",
            "project",
            "name",
            "description",
            "profile",
            "profile_name",
            "owner",
            "owner_left_at",
            "state",
            "state_reason",
            "cluster",
            "namespace",
            "placement_explanation",
            "from_warm_pool",
            "outputs",
            "gpus",
            "gpus_by_model",
            "mig_slices",
            "gpu_units",
            "cpu_millis",
            "memory_gib",
            "storage_gib",
            "price",
            "created_at",
            "ready_at",
            "deleted_at",
            "latest_run",
        ]
        read_only_fields = [f for f in fields if f not in ("project", "name", "description", "profile")]
        validators = []

    def get_latest_run(self, obj) -> dict | None:
        if hasattr(obj, LATEST_RUNS):  # prefetched by the viewset (latest_runs)
            run = next(iter(getattr(obj, LATEST_RUNS)), None)
        else:
            run = obj.runs.filter(service__isnull=True).order_by("-created_at").first()
        return run_data(self, run)


class CollaboratorSerializer(serializers.ModelSerializer):
    email = serializers.EmailField(source="user.email")
    user = serializers.IntegerField(source="user.pk", read_only=True)

    class Meta:
        model = Collaborator
        fields = ["user", "email", "added_at"]
        read_only_fields = ["user", "added_at"]
