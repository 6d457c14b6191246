"""Container registries' pull credentials in instance namespaces (worker side, and pure helpers).

Every container registry a workspace sees (``catalog.selectors.visible_in_project_q``) and that has a
credential to deliver becomes one Secret of type ``kubernetes.io/dockerconfigjson`` named
``paas-registry-<id>`` in the namespace of each of the workspace's compute instances:

* :func:`desired`: the Secrets a compute instance's namespace must hold now (labelled
  ``paas.gpu/registry: "<id>"`` and ``app.kubernetes.io/managed-by: gpu-paas``, annotated with the
  registry's ``credential_version``). Amazon ECR delivers its current short-lived token (username
  ``AWS``); an ECR registry whose token is missing or expired is left out until the refresh
  (``catalog.registries.registry_token_refresh``) brings a new one and sends ``registry_changed``.
* :func:`ensure`: applies them (server-side apply, the platform's field manager) and deletes the
  labelled ones no longer desired (sharing ended, registry deleted, credential removed). Returns the
  names, for :func:`inject`.
* :func:`inject`: adds ``imagePullSecrets`` to every pod spec of rendered objects (a template's own
  entries are kept), so that the pods the platform deploys (compute templates, services, applications)
  pull with them without anyone writing them in YAML.
* :func:`sync`: the task body (``instances.tasks.pull_secrets_sync``), enqueued by the receivers of
  ``catalog.signals.registry_changed`` and of an instance becoming ready (``instances.receivers``).

Tenants cannot tamper with what is delivered: ``paas-*`` names are the platform's
(``paas.platform_owned.reserved_name``: templates may not render them), and the cluster's
``platform-objects`` guardrail refuses a tenant's change or delete of an object carrying the platform's
labels, and a tenant's object carrying them. A tenant *can read* the Secret (their role reads secrets
of their namespace): what is delivered must be a pull-only credential. Credentials are only ever in the
Secret's data: never logged, never in a run's log or an exception.
"""

from __future__ import annotations

import base64
import json
import logging

from django.db import transaction
from django.utils import timezone

from catalog.models import ContainerRegistry
from catalog.selectors import visible_in_project_q
from instances import workloads
from instances.models import ComputeInstance
from instances.states import State
from inventory import kube
from paas.platform_owned import LABEL_MANAGED_BY, LABEL_PREFIX, MANAGED_BY
from paas.secrets import UnreadableSecret

log = logging.getLogger(__name__)

SECRET_PREFIX = "paas-registry-"  # noqa: S105  (a name, not a password)
LABEL_REGISTRY = f"{LABEL_PREFIX}registry"
ANNOTATION_VERSION = f"{LABEL_PREFIX}credential-version"
SECRET_TYPE = "kubernetes.io/dockerconfigjson"  # noqa: S105
#: The key Docker Hub credentials go under (the kubelet matches docker.io images against it).
DOCKER_HUB_KEY = "https://index.docker.io/v1/"
#: States whose instances have (or are getting) a namespace that should hold the Secrets.
SYNCED_STATES = frozenset({State.PROVISIONING, State.READY, State.STOPPED, State.FAILED})


def secret_name(registry_id: int) -> str:
    return f"{SECRET_PREFIX}{int(registry_id)}"


def registries_for(project) -> list[ContainerRegistry]:
    """The registries ``project`` sees, in id order."""
    visible = visible_in_project_q(ContainerRegistry, project)
    return list(ContainerRegistry.objects.filter(visible).order_by("pk"))


def pull_credential(registry: ContainerRegistry, *, now=None) -> tuple[str, str, str] | None:
    """``(server key, username, password)`` to deliver for ``registry``, or None when there is nothing
    to deliver (a public registry without credential; an ECR registry without a current token; a
    credential whose org's keys were destroyed: unreadable, the registry's page says so)."""
    if isinstance(registry.credential, UnreadableSecret) or isinstance(registry.token, UnreadableSecret):
        return None
    if registry.provider == ContainerRegistry.Provider.ECR:
        now = now or timezone.now()
        if not registry.token or registry.token_expires_at is None or registry.token_expires_at <= now:
            return None
        username, password = "AWS", registry.token.reveal()
    else:
        if not registry.credential:
            return None
        username, password = registry.username, registry.credential.reveal()
    hub = registry.provider == ContainerRegistry.Provider.DOCKERHUB
    server = DOCKER_HUB_KEY if hub else registry.endpoint
    return server, username, password


def docker_config(server: str, username: str, password: str) -> str:
    """The ``.dockerconfigjson`` document for one registry."""
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    return json.dumps({"auths": {server: {"username": username, "password": password, "auth": auth}}})


def _secret(registry: ContainerRegistry, credential: tuple[str, str, str]) -> dict:
    payload = base64.b64encode(docker_config(*credential).encode()).decode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": SECRET_TYPE,
        "metadata": {
            "name": secret_name(registry.pk),
            "labels": {LABEL_REGISTRY: str(registry.pk), LABEL_MANAGED_BY: MANAGED_BY},
            "annotations": {
                ANNOTATION_VERSION: str(registry.credential_version),
                f"{LABEL_PREFIX}registry-endpoint": registry.endpoint,
            },
        },
        "data": {".dockerconfigjson": payload},
    }


def desired(compute_instance: ComputeInstance) -> list[dict]:
    """The pull Secrets ``compute_instance``'s namespace must hold now (one per visible registry with a
    credential to deliver), in registry id order."""
    now = timezone.now()
    secrets = []
    for registry in registries_for(compute_instance.project):
        credential = pull_credential(registry, now=now)
        if credential is not None:
            secrets.append(_secret(registry, credential))
    return secrets


def names(compute_instance: ComputeInstance) -> list[str]:
    """The names :func:`desired` gives, without building the Secrets (for re-applies of templates)."""
    now = timezone.now()
    registries = registries_for(compute_instance.project)
    return [secret_name(r.pk) for r in registries if pull_credential(r, now=now)]


def ensure(compute_instance: ComputeInstance, kubeconfig) -> list[str]:
    """Make the namespace hold exactly the desired pull Secrets: apply them, delete the platform's
    registry Secrets no longer desired. ``kubeconfig``: the cluster's (text or a ``kube.Session``).
    Returns the desired Secrets' names. Raises ``kube.KubeUnreachable`` / ``kube.ApplyError``."""
    namespace = compute_instance.namespace
    wanted = desired(compute_instance)
    wanted_names = [s["metadata"]["name"] for s in wanted]
    replaced: set[str] = set()
    while wanted:
        try:
            kube.apply(kubeconfig, wanted, namespace=namespace)
            break
        except kube.ApplyError as exc:
            # A tenant's own Secret squatting the name (of another type, which cannot change): ours
            # replaces it, once. (The platform's own are protected by the platform-objects guardrail.)
            if exc.kind != "Secret" or exc.name not in wanted_names or exc.name in replaced:
                raise
            replaced.add(exc.name)
            kube.delete_objects(kubeconfig, [_ref(exc.name, namespace)])
    present = kube.list_secret_names(kubeconfig, namespace, label_selector=LABEL_REGISTRY)
    stale = [name for name in present if name not in wanted_names]
    if stale:
        kube.delete_objects(kubeconfig, [_ref(name, namespace) for name in stale])
    return wanted_names


def _ref(name: str, namespace: str) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace}}


# --- pod specs --------------------------------------------------------------------------------------


def inject(objects: list[dict], names: list[str]) -> list[dict]:
    """Add ``imagePullSecrets`` entries for ``names`` to every pod spec of ``objects`` (in place; the
    template's own entries come first and are kept). Returns ``objects``."""
    if not names:
        return objects
    for obj in objects:
        for spec in workloads.pod_specs(obj):
            own = spec.get("imagePullSecrets")
            own = [e for e in own if isinstance(e, dict)] if isinstance(own, list) else []
            present = {e.get("name") for e in own}
            spec["imagePullSecrets"] = own + [{"name": n} for n in names if n not in present]
    return objects


# --- the task body ----------------------------------------------------------------------------------


def sync(*, instance_id: int) -> list[str] | None:
    """Bring one compute instance's namespace to its desired pull Secrets (``instances.tasks``).

    Nothing to do for an instance without a namespace yet (its deploy ensures them) or one going away
    (its namespace takes them along). Two syncs of one instance are serialised by its row lock, so an
    older one cannot re-create what a newer one removed."""
    with transaction.atomic():
        instance = (
            ComputeInstance.objects.select_for_update(of=("self",))
            .select_related("cluster", "project")
            .filter(pk=instance_id)
            .first()
        )
        if instance is None or instance.state not in SYNCED_STATES or not instance.namespace:
            return None
        kubeconfig = instance.cluster.kubeconfig.reveal()
        if not kube.namespace_exists(kubeconfig, instance.namespace):
            return None
        result = ensure(instance, kubeconfig)
    log.info("Pull secrets of instance %s in sync: %s", instance_id, ", ".join(result) or "none")
    return result
