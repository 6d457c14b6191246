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


def instance_context(instance: ComputeInstance, namespace: str) -> dict:
    snapshot = instance.snapshot
    declared = snapshot["template"]["inputs"]
    given = {
        k: v
        for k, v in secret_inputs.unseal(snapshot.get("input_values")).items()  # secrets: clear only here
        if k in {i["name"] for i in declared}
    }
    return {
        "inputs": templating.resolve_inputs(declared, given),
        "instance": {
            "name": instance.name,
            "namespace": namespace,
            # Ingress hosts must be this or under it (checked here and by the cluster's guardrails).
            "host_suffix": guardrails.instance_host_suffix(instance.cluster, namespace),
            "project": instance.project.name,
            "org": instance.org.name,
            "owner": instance.owner.username,
        },
        "profile": {
            "name": snapshot["name"],
            "display_name": snapshot.get("display_name", snapshot["name"]),
            "resource_groups": resource_groups(snapshot),
        },
    }


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


def instance_render(instance: ComputeInstance, namespace: str) -> tuple[list[dict], dict]:
    """The template's objects for this instance, validated again with the real namespace."""
    template = instance.snapshot["template"]
    context = instance_context(instance, namespace)
    objects = templating.parse(templating.render(template["manifests"], context))
    validated(objects, template=template, namespace=namespace, host_suffix=context["instance"]["host_suffix"])
    return objects, context
