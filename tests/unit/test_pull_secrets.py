"""instances.pull_secrets: the pure parts (imagePullSecrets injected into every pod spec, the
dockerconfigjson document). Delivery into namespaces is tested on the local cluster
(tests/integration/test_registries_delivery.py)."""

import base64
import json

from instances.pull_secrets import docker_config, inject, pod_specs


def _deployment(**spec):
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"template": {"metadata": {}, "spec": {"containers": [{"name": "c", "image": "x"}], **spec}}},
    }


def test_inject_adds_to_every_pod_spec_and_keeps_the_templates_own():
    cron = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "c"},
        "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}}},
    }
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": []}}
    own = _deployment(imagePullSecrets=[{"name": "mine"}, {"name": "paas-registry-2"}])
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {}}
    objects = inject([_deployment(), cron, pod, own, config], ["paas-registry-1", "paas-registry-2"])
    wanted = [{"name": "paas-registry-1"}, {"name": "paas-registry-2"}]
    assert objects[0]["spec"]["template"]["spec"]["imagePullSecrets"] == wanted
    assert pod_specs(cron)[0]["imagePullSecrets"] == wanted
    assert pod["spec"]["imagePullSecrets"] == wanted
    assert own["spec"]["template"]["spec"]["imagePullSecrets"] == [
        {"name": "mine"},
        {"name": "paas-registry-2"},
        {"name": "paas-registry-1"},
    ]
    assert "imagePullSecrets" not in json.dumps(config)


def test_inject_with_no_names_changes_nothing():
    objects = [_deployment()]
    assert "imagePullSecrets" not in json.dumps(inject(objects, []))


def test_docker_config_is_what_the_kubelet_reads():
    document = json.loads(docker_config("registry.example.com:5000", "robot", "s3cret"))
    entry = document["auths"]["registry.example.com:5000"]
    assert entry["username"] == "robot" and entry["password"] == "s3cret"
    assert base64.b64decode(entry["auth"]).decode() == "robot:s3cret"
