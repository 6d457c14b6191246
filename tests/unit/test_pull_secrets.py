"""instances.pull_secrets: the pure parts (imagePullSecrets injected into every pod spec, the
dockerconfigjson document). Delivery into namespaces is tested on the local cluster
(tests/integration/test_registries_delivery.py)."""

import base64
import json

import pytest
import yaml

from catalog.templating import TemplateError, parse, validate_objects
from instances.pull_secrets import docker_config, inject
from instances.workloads import pod_specs


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


def test_a_template_may_not_render_a_pull_secret():
    namespace = "i-org-proj-dev-abc123"
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "paas-registry-1"},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": "e30="},
    }
    with pytest.raises(TemplateError) as error:
        validate_objects(parse(yaml.safe_dump(secret)), namespace=namespace)
    assert (
        "Secret/paas-registry-1: the name 'paas-registry-1' is reserved" in error.value.errors["manifests"][0]
    )
    labelled = {**secret, "metadata": {"name": "mine", "labels": {"paas.gpu/registry": "1"}}}
    with pytest.raises(TemplateError) as error:
        validate_objects(parse(yaml.safe_dump(labelled)), namespace=namespace)
    assert "paas.gpu/registry" in error.value.errors["manifests"][0]
