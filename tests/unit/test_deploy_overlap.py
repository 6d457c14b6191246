"""The deployer applies the isolation baseline a second time only when a template object names a baseline
object (``instances.deployer.overlaps_baseline``): server-side apply changes no other object."""

from instances import baseline
from instances.deployer import overlaps_baseline


def _baseline() -> list[dict]:
    labels = baseline.tenant_labels(org="o", project="p", instance="i", instance_id=1)
    return baseline.baseline(
        namespace_name="paas-o-p-i",
        labels=labels,
        resources=baseline.Resources(
            cpu_millis=1000, memory_bytes=2**30, storage_bytes=2**30, gpus=0, mig={}
        ),
        users=["alice"],
    )


def test_a_template_object_of_a_baseline_kind_and_name_overlaps():
    base = _baseline()
    quota = next(o for o in base if o["kind"] == "ResourceQuota")
    policy = next(o for o in base if o["kind"] == "NetworkPolicy")
    objects = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": quota["metadata"]["name"]}},
        {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": quota["metadata"]["name"]}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "mine"}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": policy["metadata"]},
    ]
    assert overlaps_baseline(objects, base) == [
        f"ResourceQuota/{quota['metadata']['name']}",
        f"NetworkPolicy/{policy['metadata']['name']}",
    ]


def test_objects_of_other_names_do_not_overlap():
    objects = [{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "agent"}}]
    assert overlaps_baseline(objects, _baseline()) == []
