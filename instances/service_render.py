"""The render context of a *service* template and its validated render (CONTRACTS13.md).

``instance`` is the service itself (so templates name their objects by ``instance.name`` and several
services coexist in one namespace); ``compute_instance`` is the instance it runs on; ``ingress`` holds
the platform's settings for the service's URL (from the cluster row: never template inputs); ``extra``
the profile's extra configuration; ``storage`` the storage attached (never its credentials).

Objects are validated as the compute deployer validates them: the compute instance's namespace, its
Ingress host suffix (``inventory.guardrails.instance_host_suffix``) and the operators' allowed custom
resources. Used at launch (what the service will use) and by the service deployer.
"""

from catalog import secret_inputs, templating
from instances.models import ServiceInstance
from instances.rendering import resource_groups, validated
from inventory import guardrails


def host_suffix(compute_instance) -> str:
    return guardrails.instance_host_suffix(compute_instance.cluster, compute_instance.namespace)


def service_host(compute_instance, name: str) -> str:
    """The Ingress host the platform assigns to a service: ``<name>.<instance host suffix>``."""
    return f"{name}.{host_suffix(compute_instance)}"


def ingress_settings(cluster, host: str) -> dict:
    scheme = "https" if cluster.ingress_tls else "http"
    return {
        "host": host,
        "class_name": cluster.ingress_class or "",
        "tls": bool(cluster.ingress_tls),
        "scheme": scheme,
        "url": f"{scheme}://{host}",
    }


def service_context(service: ServiceInstance, *, action: dict | None = None) -> dict:
    """The context a service template is rendered with (see the module docstring)."""
    snapshot = service.snapshot
    compute = service.compute_instance
    declared = snapshot["template"]["inputs"]
    names = {i["name"] for i in declared}
    given = {k: v for k, v in secret_inputs.unseal(service.input_values).items() if k in names}
    host = service.host or service_host(compute, service.name)
    ingress = ingress_settings(compute.cluster, host)
    own = {
        "name": service.name,
        "namespace": compute.namespace,
        "host_suffix": host_suffix(compute),
        "host": host,
        "project": compute.project.name,
        "org": compute.org.name,
        "owner": service.owner.username,
    }
    storage = [
        {k: s.get(k, "") for k in ("name", "kind", "storage_class", "bucket_endpoint", "bucket_name")}
        for s in snapshot.get("storage_details") or []
    ]
    storage_class = next(
        (s["storage_class"] for s in storage if s["kind"] == "high-speed-storage" and s["storage_class"]), ""
    )
    return {
        "inputs": templating.resolve_inputs(declared, given),
        "instance": own,
        "service": own | {"type": service.service_type, "url": ingress["url"]},
        "compute_instance": {
            "name": compute.name,
            "namespace": compute.namespace,
            "profile": compute.snapshot.get("name", ""),
            "resource_groups": resource_groups(compute.snapshot),
        },
        "profile": {
            "name": snapshot["name"],
            "display_name": snapshot.get("display_name", snapshot["name"]),
            "resource_groups": resource_groups(compute.snapshot),
        },
        "ingress": ingress,
        "extra": dict(snapshot.get("extra_config") or {}),
        "storage": storage,
        "storage_class": storage_class,
        "action": action,
    }


def service_render(service: ServiceInstance, *, action: dict | None = None) -> tuple[list[dict], dict]:
    """The service template's objects, validated for the compute instance's namespace and host suffix
    (raises ``templating.TemplateError``)."""
    template = service.snapshot["template"]
    context = service_context(service, action=action)
    objects = templating.parse(templating.render(template["manifests"], context))
    validated(
        objects,
        template=template,
        namespace=context["instance"]["namespace"],
        host_suffix=context["instance"]["host_suffix"],
    )
    return objects, context
