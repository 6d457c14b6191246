"""Rendering an instance's template: the render context of a compute instance and the validated render
(shared by the deployer, which applies it, and the service launch, which reads what the instance's own
template uses). No writes, no cluster calls."""

from catalog import secret_inputs, templating
from catalog import selectors as catalog_selectors
from instances.models import ComputeInstance
from inventory import guardrails


def resource_groups(snapshot: dict) -> list[dict]:
    """The snapshot's resource groups as templates read them (``cpu`` and ``cpu_cores`` both)."""
    return [
        {**g, "cpu": g.get("cpu_cores"), "cpu_cores": g.get("cpu_cores")}
        for g in snapshot.get("resource_groups", [])
    ]


#: The identity a warm pool's standby instance is rendered with: no instance, workspace, org or owner yet
#: (the hand-over renders the template again with the claiming instance's own).
STANDBY_IDENTITY = {"name": "standby", "project": "", "org": "", "owner": ""}


def identity_of(instance: ComputeInstance) -> dict:
    """The identity part of an instance's render context (``instance.name``, ``.project``, ...)."""
    return {
        "name": instance.name,
        "project": instance.project.name,
        "org": instance.org.name,
        "owner": instance.owner.username,
    }


def render_context(snapshot: dict, *, namespace: str, cluster, identity: dict) -> dict:
    """The render context of a profile ``snapshot`` in ``namespace`` on ``cluster`` for ``identity``
    (``name``, ``project``, ``org``, ``owner``: an instance's, or :data:`STANDBY_IDENTITY`)."""
    declared = snapshot["template"]["inputs"]
    given = {
        k: v
        for k, v in secret_inputs.unseal(snapshot.get("input_values")).items()  # secrets: clear only here
        if k in {i["name"] for i in declared}
    }
    return {
        "inputs": templating.resolve_inputs(declared, given),
        "instance": {
            "name": identity["name"],
            "namespace": namespace,
            # Ingress hosts must be this or under it (checked here and by the cluster's guardrails).
            "host_suffix": guardrails.instance_host_suffix(cluster, namespace),
            "project": identity["project"],
            "org": identity["org"],
            "owner": identity["owner"],
        },
        "profile": {
            "name": snapshot["name"],
            "display_name": snapshot.get("display_name", snapshot["name"]),
            "resource_groups": resource_groups(snapshot),
        },
    }


def instance_context(instance: ComputeInstance, namespace: str) -> dict:
    return render_context(
        instance.snapshot, namespace=namespace, cluster=instance.cluster, identity=identity_of(instance)
    )


def validated(objects: list[dict], *, template: dict, namespace: str, host_suffix: str) -> list[dict]:
    """``objects`` checked as the deployer applies them (raises ``templating.TemplateError``)."""
    templating.validate_objects(
        objects,
        namespace=namespace,
        custom_resources=template.get("custom_resources", []),
        host_suffix=host_suffix,
        allowed_custom_resources=catalog_selectors.allowed_custom_resource_kinds(),
    )
    return objects


def snapshot_render(snapshot: dict, *, namespace: str, cluster, identity: dict) -> tuple[list[dict], dict]:
    """The template's objects of ``snapshot`` for ``identity`` in ``namespace``, validated."""
    template = snapshot["template"]
    context = render_context(snapshot, namespace=namespace, cluster=cluster, identity=identity)
    objects = templating.parse(templating.render(template["manifests"], context))
    validated(objects, template=template, namespace=namespace, host_suffix=context["instance"]["host_suffix"])
    return objects, context


def instance_render(instance: ComputeInstance, namespace: str) -> tuple[list[dict], dict]:
    """The template's objects for this instance, validated again with the real namespace."""
    return snapshot_render(
        instance.snapshot, namespace=namespace, cluster=instance.cluster, identity=identity_of(instance)
    )
