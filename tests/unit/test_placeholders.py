"""The placeholder pods of a standby instance (pure manifests) and the standby's names and labels."""

import pytest

from instances import baseline, placeholders
from instances.workloads import Usage, usage_of
from paas.validation import is_dns_label

SMALL = {"gpu_model": "A100-SXM4-40GB", "gpu_count": 1, "mig_profile": "", "mig_count": 0,
         "cpu_cores": "26.00", "memory_gib": 200, "storage_gib": 100}  # fmt: skip
MIG = {"gpu_model": "", "gpu_count": 0, "mig_profile": "1g.10gb", "mig_count": 2,
       "cpu_cores": "8", "memory_gib": 32, "storage_gib": 50}  # fmt: skip
LABELS = baseline.standby_labels(7)


def _requests(obj: dict) -> dict:
    (container,) = obj["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"] == container["resources"]["requests"]
    return container["resources"]["requests"]


def test_one_placeholder_per_group_holds_its_gpus_on_its_gpu_model_at_the_standby_priority():
    objects = placeholders.placeholders(namespace="w-x-abc123", groups=[SMALL, MIG], labels=LABELS)
    assert [o["metadata"]["name"] for o in objects] == ["paas-standby-0", "paas-standby-1"]
    first, second = objects
    assert _requests(first) == {"cpu": "26000m", "memory": str(200 * 2**30), "nvidia.com/gpu": "1"}
    assert _requests(second) == {"cpu": "8000m", "memory": str(32 * 2**30), "nvidia.com/mig-1g.10gb": "2"}
    spec = first["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"nvidia.com/gpu.product": "A100-SXM4-40GB"}
    assert "nodeSelector" not in second["spec"]["template"]["spec"]  # the slice resource selects nodes
    assert spec["priorityClassName"] == placeholders.PRIORITY_CLASS and first["spec"]["replicas"] == 1
    # Pod Security "restricted": non-root, seccomp, no escalation, every capability dropped, no token.
    assert spec["securityContext"]["runAsNonRoot"] and spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = spec["containers"][0]["securityContext"]
    assert container["allowPrivilegeEscalation"] is False and container["capabilities"] == {"drop": ["ALL"]}
    assert spec["containers"][0]["image"] == "registry.k8s.io/pause:3.10"
    assert spec["terminationGracePeriodSeconds"] == 0
    labels = first["spec"]["template"]["metadata"]["labels"]
    assert (
        labels[baseline.LABEL_STANDBY] == "7" and labels[placeholders.LABEL_PLACEHOLDER] == "paas-standby-0"
    )
    assert not {baseline.LABEL_ORG, baseline.LABEL_PROJECT, baseline.LABEL_INSTANCE} & set(labels)


def test_placeholders_hold_only_what_the_templates_own_pods_leave_and_never_beyond_the_quota():
    template = [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "notebook"},
            "spec": {
                "replicas": 1,
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "nb",
                                "resources": {"limits": {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "1"}},
                            }
                        ]
                    }
                },
            },
        }
    ]
    used = usage_of(template)
    (holder,) = placeholders.placeholders(namespace="w-x-abc123", groups=[SMALL], used=used, labels=LABELS)
    assert _requests(holder) == {"cpu": "24000m", "memory": str(192 * 2**30)}  # the GPU is the notebook's
    assert "nodeSelector" not in holder["spec"]["template"]["spec"]
    # A template that uses everything: no placeholder at all.
    everything = Usage(gpus=1, cpu_millis=26000, memory_bytes=200 * 2**30)
    assert (
        placeholders.placeholders(namespace="w-x-abc123", groups=[SMALL], used=everything, labels=LABELS)
        == []
    )
    # What the template uses is taken from the groups in order; the sum never exceeds the totals.
    both = placeholders.remaining([SMALL, SMALL], Usage(gpus=1, cpu_millis=30000, memory_bytes=2**30))
    assert [g["gpus"] for g in both] == [0, 1] and [g["cpu_millis"] for g in both] == [0, 22000]


def test_the_sandbox_runtime_is_named_and_its_pod_overhead_comes_off_the_requests():
    kata = {"metadata": {"name": "kata"}, "overhead": {"podFixed": {"cpu": "250m", "memory": "160Mi"}}}
    (holder,) = placeholders.placeholders(
        namespace="w-x-abc123", groups=[SMALL], labels=LABELS, runtime_class=kata
    )
    assert holder["spec"]["template"]["spec"]["runtimeClassName"] == "kata"
    assert _requests(holder)["cpu"] == "25750m"
    assert _requests(holder)["memory"] == str(200 * 2**30 - 160 * 2**20)


def test_the_priority_class_never_preempts_and_still_lets_an_autoscaler_add_nodes():
    klass = placeholders.priority_class()
    assert klass["metadata"]["name"] == "gpu-paas-standby" and klass["preemptionPolicy"] == "Never"
    assert -10 <= klass["value"] < 0 and klass["globalDefault"] is False  # -10: the autoscaler's cutoff


@pytest.mark.parametrize("name", ["small", "A very long profile name " * 5, "---", "MIG 1g.10gb / slice"])
def test_standby_namespaces_are_dns_labels_apart_from_instance_namespaces(name):
    first = baseline.standby_namespace_name(name, 1)
    assert is_dns_label(first) and first.startswith("w-") and len(first) <= 63
    assert baseline.standby_namespace_name(name, 2) != first


def test_standby_labels_bind_the_guardrails_and_carry_no_tenant():
    labels = baseline.standby_labels(42)
    assert labels == {
        baseline.LABEL_INSTANCE_ID: "standby-42",
        baseline.LABEL_STANDBY: "42",
        baseline.LABEL_MANAGED_BY: baseline.MANAGED_BY,
    }
