"""Which objects of a compute instance's namespace belong to whom: the instance's own template objects
and each service's and application's (its applied inventory). Several services and applications share
one namespace, and server-side apply would let one's objects take over another's (or the instance's
workspace volume) and its delete remove it: a service whose template renders an object that another
owner has is refused, at launch and redeploy (a field error) and again by the worker right before it
applies; an application's objects are checked the same way by the worker (they are rendered there)."""

from catalog import templating
from instances.models import Application, ComputeInstance, ServiceInstance
from instances.namespace import namespace_for
from instances.rendering import instance_context
from instances.states import State


def own_objects(compute_instance: ComputeInstance) -> list[dict]:
    """The compute instance's own template objects, rendered as its deploy renders them (not validated
    again: only read); none when its snapshot does not render (it was validated when it deployed)."""
    try:
        context = instance_context(compute_instance, namespace_for(compute_instance))
        manifests = compute_instance.snapshot["template"]["manifests"]
        return templating.parse(templating.render(manifests, context))
    except (templating.TemplateError, KeyError):
        return []


def ref(obj: dict) -> dict:
    """The identity of a rendered object (what a service's inventory keeps)."""
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"]}


def _key(reference: dict) -> tuple[str, str, str]:
    api_version = str(reference.get("apiVersion", ""))
    group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
    return group, str(reference.get("kind", "")), str(reference.get("name", ""))


def conflicts(
    compute_instance: ComputeInstance,
    refs: list[dict],
    *,
    exclude: ServiceInstance | Application | None = None,
    own: list[dict] | None = None,
) -> list[str]:
    """One sentence per object of ``refs`` that the instance's own template or another of its services or
    applications (not deleted) has already; ``exclude`` is the one asking; ``own`` is the instance's
    rendered objects when the caller has them."""
    taken: dict[tuple[str, str, str], str] = {}
    for obj in own if own is not None else own_objects(compute_instance):
        taken[_key(ref(obj))] = f"the compute instance {compute_instance.name}"
    for model, noun in ((ServiceInstance, "service"), (Application, "application")):
        others = model.objects.filter(compute_instance=compute_instance).exclude(state=State.DELETED)
        if isinstance(exclude, model) and exclude.pk:
            others = others.exclude(pk=exclude.pk)
        for name, applied in others.values_list("name", "objects_applied"):
            for reference in applied or []:
                taken.setdefault(_key(reference), f"the {noun} {name}")
    asking = "the application's objects" if isinstance(exclude, Application) else "the template"
    advice = (
        "rename it in the application" if isinstance(exclude, Application) else "choose another service name"
    )
    found = []
    for reference in refs:
        owner = taken.get(_key(reference))
        if owner:
            found.append(
                f"{reference['kind']} {reference['name']!r} belongs to {owner}: {asking} would replace "
                f"it ({advice})."
            )
    return found
