"""Permission-filtered reads of compute instances."""

from django.db.models import Count, QuerySet, Sum

from instances.models import ComputeInstance, Run
from instances.states import ACTIVE, State
from paas import authz
from tenancy.models import Project


def instance_list_for(user) -> QuerySet[ComputeInstance]:
    """Instances of workspaces the user may view, and those shared with them as collaborator."""
    visible = authz.permission_q(user, "view_computeinstance", ComputeInstance) | authz.permission_q(
        user, "use_instance", ComputeInstance
    )
    return ComputeInstance.objects.filter(visible).select_related(
        "project__org", "owner", "cluster", "profile"
    )


def instance_get_for(user, pk) -> ComputeInstance:
    return authz.get_visible(instance_list_for(user), pk)


def run_list_for(user, instance: ComputeInstance) -> QuerySet[Run]:
    return instance.runs.all()


def workspace_summary(user, project_id) -> dict:
    """Landing-page data: instances by state and resources in use against the workspace quota."""
    from tenancy.selectors import project_get_for

    project: Project = project_get_for(user, project_id)
    instances = ComputeInstance.objects.filter(project=project)
    by_state = dict(instances.values_list("state").annotate(n=Count("pk")).order_by())
    active = instances.filter(state__in=ACTIVE)
    used = active.aggregate(
        gpus=Sum("gpus"), cpu=Sum("cpu_millis"), memory=Sum("memory_gib"), storage=Sum("storage_gib")
    )
    quota = project.quota
    return {
        "project": project.pk,
        "instances": {state: by_state.get(state, 0) for state in State.values},
        "in_use": {
            "gpus": used["gpus"] or 0,
            "cpu_cores": (used["cpu"] or 0) / 1000,
            "memory_gib": used["memory"] or 0,
            "storage_gib": used["storage"] or 0,
            "instances": active.count(),
        },
        "quota": {
            field: (float(v) if v is not None and field == "cpu_cores" else v)
            for field in quota.LIMIT_FIELDS
            for v in [getattr(quota, field)]
        },
    }
