"""The Helm chart (deploy/helm/gpu-paas) linted, validated against the Kubernetes schemas, installed on
a real local control plane under Pod Security ``restricted``, refused when made privileged, and
upgraded in place.

The cluster is the chart's own (two KWOK nodes): the Prometheus Operator's real ServiceMonitor CRD
(from its Go module, pinned: tests/localkube/crds.py ``MONITORING_MODULES``) is installed there half
way, so the test sees the ServiceMonitor absent without the CRD and rendered and created with it,
without adding the CRD to every cluster of the suite.  The tests of this module run in order and share
the release.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from cryptography.fernet import Fernet
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from tests.localkube import crds
from tests.localkube.cluster import LocalCluster
from tests.localkube.inventory import NodeSpec
from tests.support.helm_charts import Helm
from tests.support.image import built_image
from tests.support.wait import wait_for

pytestmark = [pytest.mark.kube, pytest.mark.toolchain]

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "gpu-paas"
REPOSITORY = "registry.gpu-paas.test/gpu-paas"
NAMESPACE = "gpu-paas"
RELEASE = "paas"
FULLNAME = f"{RELEASE}-gpu-paas"
KUBE_VERSION = "1.37.0"  # the control plane's minor (tests/localkube/build.py); kubernetes-validate's schemas
SERVICE_MONITOR_API = "monitoring.coreos.com/v1/ServiceMonitor"


@pytest.fixture(scope="module")
def chart_cluster():
    """The chart's own cluster: two CPU nodes in two zones."""
    cluster = LocalCluster(
        name="chart",
        nodes=[
            NodeSpec("cpu-a", cpu=64, memory_gib=256, zone="us-east-1a"),
            NodeSpec("cpu-b", cpu=64, memory_gib=256, zone="us-east-1b"),
        ],
    ).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def api(chart_cluster):
    client = chart_cluster.api_client()
    yield client
    client.close()


@pytest.fixture(scope="module")
def helm(helm_binary, tmp_path_factory):
    return Helm(helm_binary, tmp_path_factory.mktemp("chart-helm-home"))


@pytest.fixture(scope="module")
def image():
    return built_image()


@pytest.fixture(scope="module")
def values_file(tmp_path_factory, image) -> Path:
    """Values a real installation gives: the image by digest, fresh secrets, an external database, one
    agent's queue, and the checkpoint volume ReadWriteOnce (the local provisioner's hostPath volumes)."""
    values = {
        "image": {"repository": REPOSITORY, "digest": image.digest},
        "secretKey": secrets.token_urlsafe(48),
        "encryptionKeys": Fernet.generate_key().decode(),
        "auditCheckpointKey": secrets.token_urlsafe(32),
        "metricsToken": secrets.token_urlsafe(24),
        "database": {"url": "postgres://paas:secret@postgres.databases.svc:5432/paas"},
        "workers": {"agents": ["agent-eu-west"]},
        "networkPolicy": {"database": {"cidrs": ["10.20.0.0/24"]}},
    }
    path = tmp_path_factory.mktemp("chart-values") / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def _template(helm: Helm, values_file: Path, *args: str, check: bool = True):
    result = helm.run(
        "template", RELEASE, str(CHART), "--namespace", NAMESPACE, "--kube-version", KUBE_VERSION,
        "-f", str(values_file), *args, check=check,
    )  # fmt: skip
    if not check:
        return result
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def _kube(helm: Helm, cluster, *args: str, check: bool = True):
    return helm.run(*args, "--kubeconfig", cluster.kubeconfig_path, "--namespace", NAMESPACE, check=check)


def _pod_specs(objects):
    for obj in objects:
        if obj["kind"] in ("Deployment", "Job"):
            yield obj, obj["spec"]["template"]["spec"]


# --------------------------------------------------------------------------------------------- offline


def test_helm_lint_is_clean(helm, values_file):
    result = helm.run("lint", "--strict", str(CHART), "-f", str(values_file), check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout, result.stdout
    # Without values, lint still passes: what is required is reported, never rendered empty.
    bare = helm.run("lint", str(CHART), check=False)
    assert bare.returncode == 0, bare.stdout + bare.stderr
    assert "image.digest is required" in bare.stderr


def test_rendered_objects_are_valid_against_the_kubernetes_schemas(helm, values_file, image):
    objects = _template(helm, values_file, "--api-versions", SERVICE_MONITOR_API)
    kinds = sorted(f"{o['kind']}/{o['metadata']['name']}" for o in objects)
    for expected in (
        f"Deployment/{FULLNAME}-web",
        f"Deployment/{FULLNAME}-worker-default",
        f"Deployment/{FULLNAME}-worker-agent-eu-west",
        f"Deployment/{FULLNAME}-audit-stream",
        f"Job/{FULLNAME}-migrate",
        f"HorizontalPodAutoscaler/{FULLNAME}-web",
        f"PodDisruptionBudget/{FULLNAME}-web",
        f"Service/{FULLNAME}",
        f"Ingress/{FULLNAME}",
        f"ServiceMonitor/{FULLNAME}",
        f"Secret/{FULLNAME}",
        f"PersistentVolumeClaim/{FULLNAME}-audit-checkpoints",
        f"NetworkPolicy/{FULLNAME}-default-deny",
        f"NetworkPolicy/{FULLNAME}-web-ingress",
        f"NetworkPolicy/{FULLNAME}-egress",
    ):
        assert expected in kinds, kinds
    monitor_crd = next(
        c for c in crds.manifests(crds.MONITORING_MODULES) if c["spec"]["names"]["kind"] == "ServiceMonitor"
    )
    monitor_schema = next(v for v in monitor_crd["spec"]["versions"] if v["name"] == "v1")["schema"]
    for obj in objects:
        if obj["kind"] == "ServiceMonitor":  # a custom resource: the operator's own schema
            jsonschema.validate(obj, monitor_schema["openAPIV3Schema"])
            continue
        try:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {error.message} at {list(error.path)}")

    by_name = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    web = by_name[("Deployment", f"{FULLNAME}-web")]["spec"]["template"]["spec"]["containers"][0]
    assert web["args"] == ["serve", "0.0.0.0:8000", "--no-worker", "--workers", "2"]
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz?worker=optional"
    assert by_name[("HorizontalPodAutoscaler", f"{FULLNAME}-web")]["spec"]["minReplicas"] >= 2
    job = by_name[("Job", f"{FULLNAME}-migrate")]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate", "--noinput"]
    queues = {}
    for obj, spec in _pod_specs(objects):
        container = spec["containers"][0]
        assert container["image"] == f"{REPOSITORY}@{image.digest}"
        env = {e["name"]: e for e in container["env"]}
        assert env["DJANGO_SETTINGS_MODULE"]["value"] == "paas.settings.production"
        for name in ("SECRET_KEY", "PAAS_ENCRYPTION_KEYS", "PAAS_AUDIT_CHECKPOINT_KEY", "DATABASE_URL"):
            assert "secretKeyRef" in env[name]["valueFrom"], name  # never inline
        if container["args"] == ["qcluster"]:
            queues[obj["metadata"]["name"]] = env["Q_CLUSTER_NAME"]["value"]
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert {"/tmp", "/var/lib/gpu-paas", "/var/lib/gpu-paas/audit-checkpoints"} <= mounts
    assert queues == {
        f"{FULLNAME}-worker-default": "default",
        f"{FULLNAME}-worker-agent-eu-west": "agent-eu-west",
    }
    monitor = by_name[("ServiceMonitor", FULLNAME)]
    assert {e["port"] for e in monitor["spec"]["endpoints"]} == {"http", "metrics"}
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["path"] == "/metrics"
        assert endpoint["authorization"]["credentials"] == {"name": FULLNAME, "key": "PAAS_METRICS_TOKEN"}

    # Without the CRD's API, no ServiceMonitor.
    assert "ServiceMonitor" not in {o["kind"] for o in _template(helm, values_file)}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("image.digest=latest", "image.digest must be sha256"),
        ("image.digest=", "image.digest is required"),
        ("secretKey=short", "secretKey must have at least 50 characters"),
        ("workers.agents={default}", 'the queue "default" is listed twice'),
        ("workers.agents={Agent_X}", "is not a queue name"),
    ],
)
def test_bad_values_are_refused_at_render_time(helm, values_file, override, message):
    result = _template(helm, values_file, "--set", override, check=False)
    assert result.returncode != 0
    assert message in result.stderr


def test_existing_secrets_replace_the_charts_own(helm, values_file):
    """With existingSecret and database.existingSecret the chart renders no Secret at all (not even the
    migrations hook's) and every process, the Job included, reads the operator's Secrets."""
    objects = _template(
        helm,
        values_file,
        *("--set", "existingSecret=paas-keys", "--set", "database.existingSecret=paas-db"),
        *("--set", "database.existingSecretKey=url"),
    )
    assert not [o for o in objects if o["kind"] == "Secret"]
    specs = list(_pod_specs(objects))
    assert {o["kind"] for o, _spec in specs} == {"Deployment", "Job"}
    for _obj, spec in specs:
        refs = {
            e["name"]: e["valueFrom"]["secretKeyRef"]
            for e in spec["containers"][0]["env"]
            if "valueFrom" in e
        }
        assert refs["DATABASE_URL"] == {"name": "paas-db", "key": "url"}
        for name in ("SECRET_KEY", "PAAS_ENCRYPTION_KEYS", "PAAS_AUDIT_CHECKPOINT_KEY", "PAAS_METRICS_TOKEN"):
            assert refs[name] == {"name": "paas-keys", "key": name}


# ------------------------------------------------------------------------------- on the control plane


def _pods(core, selector: str = f"app.kubernetes.io/instance={RELEASE}"):
    return core.list_namespaced_pod(NAMESPACE, label_selector=selector).items


def _all_running(core, expected: dict[str, int]) -> list | None:
    """The release's non-Job pods when every Deployment has ``expected`` Running+Ready pods, else None."""
    pods = [p for p in _pods(core) if p.metadata.labels.get("app.kubernetes.io/component") != "migrations"]
    live = [p for p in pods if p.metadata.deletion_timestamp is None]
    counts: dict[str, int] = {}
    for pod in live:
        ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
        if pod.status.phase != "Running" or not ready:
            return None
        owner = (
            pod.metadata.labels.get("gpu-paas.io/queue") or pod.metadata.labels["app.kubernetes.io/component"]
        )
        counts[owner] = counts.get(owner, 0) + 1
    return live if counts == expected else None


def _check_pods(pods, image) -> None:
    nodes = {"cpu-a", "cpu-b"}
    for pod in pods:
        assert pod.spec.node_name in nodes, pod.metadata.name  # scheduled onto a KWOK node
        assert pod.spec.security_context.run_as_non_root is True
        for container in pod.spec.containers:
            assert container.image == f"{REPOSITORY}@{image.digest}", pod.metadata.name
            assert container.security_context.read_only_root_filesystem is True


def _job(batch, name=f"{FULLNAME}-migrate"):
    try:
        return batch.read_namespaced_job(name, NAMESPACE)
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def test_install_under_pod_security_restricted(chart_cluster, api, helm, values_file, image):
    core, apps, batch = k8s.CoreV1Api(api), k8s.AppsV1Api(api), k8s.BatchV1Api(api)
    core.create_namespace(
        {
            "metadata": {
                "name": NAMESPACE,
                "labels": {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                },
            }
        }
    )
    # The chart's values ask ReadWriteMany; the local provisioner's hostPath volumes bind any mode.
    install = ("install", RELEASE, str(CHART), "-f", str(values_file), "--wait", "--timeout", "3m")
    result = _kube(helm, chart_cluster, *install, check=False)
    assert result.returncode == 0, result.stdout + result.stderr

    pods = wait_for(
        lambda: _all_running(core, {"web": 2, "default": 1, "agent-eu-west": 1, "audit-stream": 1}),
        timeout=60,
        what="every pod of the release Running and Ready",
    )
    _check_pods(pods, image)
    # The migrations ran as the pre-install hook, with the built image, and their Secret is gone.
    job = _job(batch)
    assert job is not None and job.status.succeeded == 1
    assert job.spec.template.spec.containers[0].image == f"{REPOSITORY}@{image.digest}"
    secret_names = {s.metadata.name for s in core.list_namespaced_secret(NAMESPACE).items}
    assert FULLNAME in secret_names and f"{FULLNAME}-migrate" not in secret_names

    deployments = {d.metadata.name for d in apps.list_namespaced_deployment(NAMESPACE).items}
    assert deployments == {
        f"{FULLNAME}-web",
        f"{FULLNAME}-worker-default",
        f"{FULLNAME}-worker-agent-eu-west",
        f"{FULLNAME}-audit-stream",
    }
    assert k8s.AutoscalingV2Api(api).read_namespaced_horizontal_pod_autoscaler(f"{FULLNAME}-web", NAMESPACE)
    assert k8s.PolicyV1Api(api).read_namespaced_pod_disruption_budget(f"{FULLNAME}-web", NAMESPACE)
    networking = k8s.NetworkingV1Api(api)
    assert networking.read_namespaced_ingress(FULLNAME, NAMESPACE)
    assert {p.metadata.name for p in networking.list_namespaced_network_policy(NAMESPACE).items} == {
        f"{FULLNAME}-default-deny",
        f"{FULLNAME}-web-ingress",
        f"{FULLNAME}-worker-metrics",
        f"{FULLNAME}-egress",
    }
    claim = core.read_namespaced_persistent_volume_claim(f"{FULLNAME}-audit-checkpoints", NAMESPACE)
    assert claim.status.phase == "Bound"
    # No ServiceMonitor: the cluster serves no monitoring.coreos.com API yet.
    groups = {g.name for g in k8s.ApisApi(api).get_api_versions().groups}
    assert "monitoring.coreos.com" not in groups
    manifest = _kube(helm, chart_cluster, "get", "manifest", RELEASE).stdout
    assert "kind: ServiceMonitor" not in manifest


FORBIDDEN = {
    "privileged": [
        "containerSecurityContext.privileged=true",
        "containerSecurityContext.allowPrivilegeEscalation=true",
    ],
    "root": [
        "podSecurityContext.runAsUser=0",
        "podSecurityContext.runAsNonRoot=false",
        "containerSecurityContext.runAsUser=0",
        "containerSecurityContext.runAsNonRoot=false",
    ],
}


@pytest.mark.parametrize("change", sorted(FORBIDDEN))
def test_a_forbidden_change_is_refused_by_admission(chart_cluster, api, helm, values_file, change):
    """Every workload of the chart rendered with a forbidden override is refused by Pod Security
    admission in the namespace (the Pod created directly, as a ReplicaSet or Job would create it)."""
    core = k8s.CoreV1Api(api)
    sets = [arg for item in FORBIDDEN[change] for arg in ("--set", item)]
    for obj, spec in _pod_specs(_template(helm, values_file, *sets)):
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"generateName": "forbidden-", "labels": {"test": "forbidden"}},
            "spec": spec,
        }
        with pytest.raises(ApiException) as refused:
            core.create_namespaced_pod(NAMESPACE, pod)
        assert refused.value.status == 403, obj["metadata"]["name"]
        assert 'violates PodSecurity "restricted:latest"' in json.loads(refused.value.body)["message"]
    assert not _pods(core, "test=forbidden")


def test_a_forbidden_upgrade_leaves_the_running_release_serving(chart_cluster, api, helm, values_file):
    """``helm upgrade`` running every process as root: the Deployments change, but their new pods are
    refused by admission, and the old ones keep running (a rolling update never goes below the
    replicas).  ``--no-hooks``: with its hook the migrations Job's pods would be refused first and the
    upgrade would fail before any Deployment changed, after helm's timeout."""
    core, apps = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
    before = {p.metadata.name for p in _pods(core, "app.kubernetes.io/component=web")}
    root = [arg for item in FORBIDDEN["root"] for arg in ("--set", item)]
    result = _kube(
        helm,
        chart_cluster,
        "upgrade",
        RELEASE,
        str(CHART),
        "-f",
        str(values_file),
        "--no-hooks",
        *root,
        check=False,
    )
    assert result.returncode == 0, result.stderr

    def refused():
        status = apps.read_namespaced_deployment_status(f"{FULLNAME}-web", NAMESPACE).status
        for condition in status.conditions or []:
            if condition.type == "ReplicaFailure" and "violates PodSecurity" in (condition.message or ""):
                return condition
        return None

    wait_for(refused, timeout=60, what="the web Deployment's new ReplicaSet refused by Pod Security")
    after = {p.metadata.name for p in _pods(core, "app.kubernetes.io/component=web")}
    assert after == before
    for pod in _pods(core):
        assert pod.spec.security_context.run_as_user == 10001


def test_upgrade_in_place(chart_cluster, api, helm, values_file, image):
    """With the Prometheus Operator's CRD installed, an upgrade adding an agent's workers and a replica:
    the migrations hook runs again, the ServiceMonitor appears, every pod runs the digest."""
    core, batch = k8s.CoreV1Api(api), k8s.BatchV1Api(api)
    names = crds.install(api, crds.MONITORING_MODULES)
    assert names == ["servicemonitors.monitoring.coreos.com"]
    first_job = _job(batch)

    changes = ("--set", "workers.agents={agent-eu-west,agent-us-east}", "--set", "workers.replicas=2")
    upgrade = ("upgrade", RELEASE, str(CHART), "-f", str(values_file), *changes, "--wait", "--timeout", "3m")
    result = _kube(helm, chart_cluster, *upgrade, check=False)
    assert result.returncode == 0, result.stdout + result.stderr

    expected = {"web": 2, "default": 2, "agent-eu-west": 2, "agent-us-east": 2, "audit-stream": 1}
    pods = wait_for(
        lambda: _all_running(core, expected), timeout=90, what="the upgraded release's pods Running and Ready"
    )
    _check_pods(pods, image)
    job = _job(batch)
    assert job.metadata.uid != first_job.metadata.uid and job.status.succeeded == 1
    status = json.loads(_kube(helm, chart_cluster, "status", RELEASE, "-o", "json").stdout)
    assert status["info"]["status"] == "deployed" and status["version"] == 3

    monitor = k8s.CustomObjectsApi(api).get_namespaced_custom_object(
        "monitoring.coreos.com", "v1", NAMESPACE, "servicemonitors", FULLNAME
    )
    assert {e["port"] for e in monitor["spec"]["endpoints"]} == {"http", "metrics"}
    assert monitor["spec"]["endpoints"][0]["authorization"]["credentials"]["key"] == "PAAS_METRICS_TOKEN"
