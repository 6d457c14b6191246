"""What rendered objects use of an instance (instances.workloads): pod templates of every workload kind
and of the known custom kinds, times replicas, with the namespace's LimitRange defaults, plus claims."""

from decimal import Decimal

from instances.workloads import object_usage, quantity, usage_of


def _container(requests=None, limits=None, name="c"):
    return {"name": name, "image": "x", "resources": {"requests": requests or {}, "limits": limits or {}}}


def _pod_spec(*containers, init=()):
    return {"containers": list(containers), "initContainers": list(init)}


def test_quantities():
    assert quantity("500m") == Decimal("0.5") and quantity("2Gi") == 2 * 2**30 and quantity(3) == 3
    assert quantity("1.5") == Decimal("1.5") and quantity("1e3") == 1000 and quantity("nonsense") == 0
    assert quantity("128M") == 128 * 10**6 and quantity(None) == 0 and quantity(True) == 0


def test_deployment_counts_replicas_the_larger_of_requests_and_limits_and_gpus():
    deployment = {
        "kind": "Deployment",
        "spec": {
            "replicas": 3,
            "template": {
                "spec": _pod_spec(
                    _container(
                        {"cpu": "250m", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": 1}
                    )
                )
            },
        },
    }
    usage = object_usage(deployment)
    assert (usage.cpu_millis, usage.memory_bytes, usage.gpus) == (3000, 3 * 2**30, 3)


def test_unset_resources_take_the_limit_range_defaults():
    usage = object_usage({"kind": "Pod", "spec": _pod_spec(_container())})
    assert (usage.cpu_millis, usage.memory_bytes) == (1000, 2**30)  # the default limits (quota counts limits)
    only_limits = object_usage({"kind": "Pod", "spec": _pod_spec(_container(limits={"cpu": "2"}))})
    assert only_limits.cpu_millis == 2000


def test_init_containers_count_when_larger_and_mig_slices():
    spec = _pod_spec(
        _container({"cpu": "1"}, {"cpu": "1", "nvidia.com/mig-1g.10gb": 2}),
        init=[_container({"cpu": "4"}, {"cpu": "4"}, name="init")],
    )
    usage = object_usage({"kind": "Job", "spec": {"parallelism": 2, "template": {"spec": spec}}})
    assert usage.cpu_millis == 8000 and usage.mig_slices == {"1g.10gb": 4}


def test_statefulset_claims_cronjob_and_pvc():
    statefulset = {
        "kind": "StatefulSet",
        "spec": {
            "replicas": 2,
            "template": {"spec": _pod_spec(_container({"cpu": "1"}, {"cpu": "1"}))},
            "volumeClaimTemplates": [{"spec": {"resources": {"requests": {"storage": "5Gi"}}}}],
        },
    }
    cronjob = {
        "kind": "CronJob",
        "spec": {
            "jobTemplate": {"spec": {"template": {"spec": _pod_spec(_container({"cpu": "2"}, {"cpu": "2"}))}}}
        },
    }
    claim = {"kind": "PersistentVolumeClaim", "spec": {"resources": {"requests": {"storage": "20Gi"}}}}
    usage = usage_of([statefulset, cronjob, claim, {"kind": "ConfigMap", "data": {}}])
    assert usage.cpu_millis == 4000 and usage.storage_bytes == 30 * 2**30 and usage.storage_gib == 30


def test_ray_cluster_and_inference_service():
    ray = {
        "kind": "RayCluster",
        "spec": {
            "headGroupSpec": {"template": {"spec": _pod_spec(_container({"cpu": "2"}, {"cpu": "2"}))}},
            "workerGroupSpecs": [
                {
                    "replicas": 2,
                    "template": {
                        "spec": _pod_spec(_container({"cpu": "1"}, {"cpu": "1", "nvidia.com/gpu": "1"}))
                    },
                }
            ],
        },
    }
    inference = {
        "kind": "InferenceService",
        "spec": {
            "predictor": {
                "minReplicas": 2,
                "model": {
                    "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"nvidia.com/gpu": 1}}
                },
            }
        },
    }
    ray_usage, isvc = object_usage(ray), object_usage(inference)
    assert (ray_usage.cpu_millis, ray_usage.gpus) == (4000, 2)
    assert (isvc.gpus, isvc.memory_bytes) == (2, 4 * 2**30)


def test_the_deployer_labels_every_object_and_pod_template_and_adds_extra_env():
    from instances.models import ServiceInstance
    from instances.service_deployer import decorate

    service = ServiceInstance(
        name="svc",
        snapshot={
            "labels": {"team": "ml", "app": "profile"},
            "annotations": {"a/b": "c"},
            "extra_config": {"K": 1},
        },
    )
    pod = {"containers": [{"name": "c", "image": "x", "env": [{"name": "K", "value": "template"}]}]}
    objects = [
        {
            "kind": "CronJob",
            "metadata": {"name": "cj"},
            "spec": {"jobTemplate": {"spec": {"template": {"spec": pod}}}},
        },
        {
            "kind": "RayCluster",
            "metadata": {"name": "ray", "labels": {"app": "template"}},
            "spec": {
                "headGroupSpec": {"template": {"spec": {"containers": [{"name": "h", "image": "x"}]}}},
                "workerGroupSpecs": [{"template": {"spec": {"containers": [{"name": "w", "image": "x"}]}}}],
            },
        },
        {
            "kind": "InferenceService",
            "metadata": {"name": "isvc"},
            "spec": {"predictor": {"model": {"image": "x"}}},
        },
        {"kind": "ConfigMap", "metadata": {"name": "cm"}},
    ]
    decorate(objects, service)
    cronjob, ray, isvc, configmap = objects
    for obj in objects:
        assert obj["metadata"]["labels"]["gpu-paas.io/service"] == "svc" and obj["metadata"][
            "annotations"
        ] == {"a/b": "c"}
    assert ray["metadata"]["labels"]["app"] == "template"  # the template's own keys win (selectors)
    template = cronjob["spec"]["jobTemplate"]["spec"]["template"]
    assert template["metadata"]["labels"] == {"team": "ml", "app": "profile", "gpu-paas.io/service": "svc"}
    assert template["spec"]["containers"][0]["env"] == [{"name": "K", "value": "template"}]  # set: kept
    worker = ray["spec"]["workerGroupSpecs"][0]["template"]
    assert worker["metadata"]["labels"]["gpu-paas.io/service"] == "svc"
    assert worker["spec"]["containers"][0]["env"] == [{"name": "K", "value": "1"}]
    assert isvc["spec"]["predictor"]["model"]["env"] == [{"name": "K", "value": "1"}]
    assert configmap["metadata"]["labels"]["team"] == "ml"
