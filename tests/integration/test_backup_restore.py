"""Backup and restore (deploy/backup.sh, deploy/restore.sh; docs/operations.md "Backup and restore").

A populated platform (two orgs with their members, the local cluster registered with its encrypted
kubeconfig, a workspace registry whose credential is under the org's data key, an instance deployed on
the real local control plane, their audit events and checkpoints) is backed up, restored into a fresh
database and a fresh checkpoint store, and the restored platform is run as production runs it: a
``manage.py`` process of ``paas.settings.production`` with only the restored database, the restored
store and the keys in its environment. It finds everything: the audit chains verify against their
signed checkpoints, the secrets decrypt, and the instance reconciles against the cluster without a
redeploy (no run re-driven, no new run, every Kubernetes object of the instance keeps its uid and
resourceVersion). With other keys, the same restore reads no secret and verifies no checkpoint.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.db import connection
from kubernetes import client as k8s

from catalog import registries
from catalog.models import ContainerRegistry
from catalog.secret_inputs import unseal
from instances.models import Run, ServiceInstance
from paas import embedded_postgres
from paas.checkpoints import checkpoint_all
from paas.models import AuditEvent
from tests.support.instances import launch_instance
from tests.support.services import deploy_service, make_service_profile

pytestmark = pytest.mark.kube

REPO = Path(__file__).resolve().parents[2]
CREDENTIAL = "backup-test-registry-password"

# Run in the restored platform: what it reads from its database and does against the cluster.
RESTORED_CHECK = """
import hashlib, json
from catalog.models import ContainerRegistry
from catalog.secret_inputs import unseal
from instances import tasks
from instances.models import ComputeInstance, Run, ServiceInstance
from inventory.models import Cluster

def digest(secret):
    return hashlib.sha256(secret.reveal().encode()).hexdigest()

from django.db import connection
from django.db.migrations.executor import MigrationExecutor

executor = MigrationExecutor(connection)
cluster = Cluster.objects.get(name="local")
instance = ComputeInstance.objects.get(name="keep")
print(json.dumps({
    "unapplied": [str(m) for m, _ in executor.migration_plan(executor.loader.graph.leaf_nodes())],
    "kubeconfig": digest(cluster.kubeconfig),
    "credential": digest(ContainerRegistry.objects.get(name="robot").credential),
    "token": hashlib.sha256(
        unseal(ServiceInstance.objects.get(name="web").input_values)["token"].encode()
    ).hexdigest(),
    "state": instance.state,
    "redriven": tasks.reconcile(),
    "repaired": tasks.baseline_repair(cluster.pk),
    "pull_secrets": tasks.pull_secrets_sync(instance.pk),
    "runs": sorted([pk, outcome] for pk, outcome in Run.objects.values_list("pk", "outcome")),
}))
"""

# Run in a restored platform given other keys than the backed-up one's.
WRONG_KEYS_CHECK = """
from django.core.management import CommandError, call_command
from inventory.models import Cluster
from catalog.models import ContainerRegistry
try:
    Cluster.objects.get(name="local").kubeconfig.reveal()
    print("kubeconfig READ")
except Exception as exc:
    print("kubeconfig UNREADABLE", type(exc).__name__)
try:
    ContainerRegistry.objects.get(name="robot").credential.reveal()
    print("credential READ")
except Exception as exc:
    print("credential UNREADABLE", type(exc).__name__)
try:
    call_command("audit_verify")
    print("audit VERIFIED")
except CommandError:
    print("audit NOT VERIFIED")
"""


def _url(database: str) -> str:
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{database}"


def _admin_connection():
    s = connection.settings_dict
    return psycopg.connect(
        host=s["HOST"] or "127.0.0.1",
        port=s["PORT"] or 5432,
        user=s["USER"],
        password=s["PASSWORD"] or None,
        dbname="postgres",
        autocommit=True,
    )


@pytest.fixture
def fresh_database():
    """A new, empty database on the suite's server (dropped afterwards)."""
    name = f"{connection.settings_dict['NAME']}_restored"[:63]
    with _admin_connection() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    yield name
    with _admin_connection() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _script(name: str, *args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["/bin/sh", str(REPO / "deploy" / name), *args],
        env={"PATH": os.environ["PATH"], "PG_BIN": str(embedded_postgres.bin_dir()), **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _manage(*args: str, env: dict) -> subprocess.CompletedProcess:
    """``manage.py`` in a process of its own, configured by ``env`` alone (as a production pod is)."""
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    return subprocess.run(
        [sys.executable, str(REPO / "manage.py"), *args],
        env={**base, "DJANGO_SETTINGS_MODULE": "paas.settings.production", **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _objects(api_client, namespace: str) -> dict[str, tuple[str, str]]:
    """Every object of the instance (its namespace and what is in it): ``kind/name -> (uid, rv)``."""
    core, rbac = k8s.CoreV1Api(api_client), k8s.RbacAuthorizationV1Api(api_client)
    apps, net = k8s.AppsV1Api(api_client), k8s.NetworkingV1Api(api_client)
    listings = {
        "Pod": core.list_namespaced_pod,
        "Service": core.list_namespaced_service,
        "Secret": core.list_namespaced_secret,
        "ConfigMap": core.list_namespaced_config_map,
        "ServiceAccount": core.list_namespaced_service_account,
        "PersistentVolumeClaim": core.list_namespaced_persistent_volume_claim,
        "ResourceQuota": core.list_namespaced_resource_quota,
        "LimitRange": core.list_namespaced_limit_range,
        "Role": rbac.list_namespaced_role,
        "RoleBinding": rbac.list_namespaced_role_binding,
        "Deployment": apps.list_namespaced_deployment,
        "StatefulSet": apps.list_namespaced_stateful_set,
        "NetworkPolicy": net.list_namespaced_network_policy,
        "Ingress": net.list_namespaced_ingress,
    }
    found = {}
    for kind, listing in listings.items():
        for obj in listing(namespace).items:
            found[f"{kind}/{obj.metadata.name}"] = (obj.metadata.uid, obj.metadata.resource_version)
    ns = core.read_namespace(namespace)
    found[f"Namespace/{namespace}"] = (ns.metadata.uid, ns.metadata.resource_version)
    return found


def test_backup_then_restore_into_a_fresh_database_finds_everything(
    transactional_db, live, kube_cluster, fresh_database, tmp_path
):
    world = live["world"]
    registry = registries.registry_create(
        actor=world.a.users["paas_admin_project"],
        project=world.a.project,
        name="robot",
        provider="generic",
        scheme="http",
        endpoint="127.0.0.1:5999",
        username="puller",
        credential=CREDENTIAL,
    )
    with connection.cursor() as cursor:
        table = ContainerRegistry._meta.db_table
        cursor.execute(f"SELECT credential FROM {table} WHERE id = %s", [registry.pk])
        stored = cursor.fetchone()[0]
    assert stored.startswith("ok1:") and CREDENTIAL not in stored  # under the org's data key
    instance = launch_instance(live, "keep")
    service = deploy_service(live, instance, make_service_profile(world), "web")
    token = unseal(ServiceInstance.objects.get(pk=service.pk).input_values)["token"]
    assert token and token not in json.dumps(service.input_values)  # a generated, sealed secret input
    api_client = kube_cluster.api_client()
    before = _objects(api_client, instance.namespace)
    assert {"Deployment/web", "Service/web", "Ingress/web"} <= set(before), before
    assert any(key.startswith("Secret/") for key in before), before  # the registry's pull secret
    runs = sorted([pk, outcome] for pk, outcome in Run.objects.values_list("pk", "outcome"))
    events = AuditEvent.objects.count()
    # The suite's shared world was committed before this test's store existed: anchor its chains too
    # (in production each chain is checkpointed as its events commit).
    checkpoint_all()
    store = Path(settings.PAAS_AUDIT_CHECKPOINT_DIR)
    checkpoints = sorted(p.name for p in store.glob("chain-*.json"))
    chains = AuditEvent.objects.values("chain").distinct().count()
    assert events > 10 and chains >= 3 and len(checkpoints) == chains  # the platform's and both orgs'

    # Back up the running platform.
    backup = _script(
        "backup.sh",
        str(tmp_path / "backups"),
        env={"DATABASE_URL": _url(connection.settings_dict["NAME"]), "PAAS_AUDIT_CHECKPOINT_DIR": str(store)},
    )
    assert backup.returncode == 0, backup.stderr
    backup_dir = Path(backup.stdout.strip().splitlines()[-1])
    assert sorted(p.name for p in backup_dir.iterdir()) == [
        "SHA256SUMS",
        "audit-checkpoints.tar",
        "database.dump",
        "migrations.txt",
    ]
    assert "paas.0001_initial" in (backup_dir / "migrations.txt").read_text().split()
    # The dump as SQL text: it holds the secrets encrypted only.
    sql = subprocess.run(
        [str(embedded_postgres.bin_dir() / "pg_restore"), "--file=-", str(backup_dir / "database.dump")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "ok1:" in sql and CREDENTIAL not in sql and token not in sql

    # Restore into the fresh database and a fresh checkpoint store.
    restored_store = tmp_path / "restored-checkpoints"
    restored = {"DATABASE_URL": _url(fresh_database), "PAAS_AUDIT_CHECKPOINT_DIR": str(restored_store)}
    result = _script("restore.sh", str(backup_dir), env=restored)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in restored_store.glob("chain-*.json")) == checkpoints
    again = _script("restore.sh", str(backup_dir), env=restored)
    assert again.returncode == 1 and "not empty" in again.stderr  # never over a database in use

    # The restored platform, as production runs it: the keys come from its environment only.
    keys = {
        "SECRET_KEY": settings.SECRET_KEY,
        "PAAS_ENCRYPTION_KEYS": ",".join(settings.PAAS_ENCRYPTION_KEYS),
        "PAAS_AUDIT_CHECKPOINT_KEY": settings.PAAS_AUDIT_CHECKPOINT_KEY,
        "PAAS_OUTBOUND_ALLOW_LOOPBACK": "true",  # the local cluster listens on 127.0.0.1
        "PAAS_VAR_DIR": str(tmp_path / "var"),
    }
    verify = _manage("audit_verify", env={**restored, **keys})
    assert verify.returncode == 0, verify.stdout + verify.stderr
    summary = re.search(r"OK: (\d+) events in (\d+) chains verified; (\d+) chain heads match", verify.stdout)
    assert summary, verify.stdout
    assert int(summary[1]) == events and int(summary[3]) == len(checkpoints) == int(summary[2])

    check = _manage("shell", "-c", RESTORED_CHECK, env={**restored, **keys})
    assert check.returncode == 0, check.stderr
    found = json.loads(check.stdout.strip().splitlines()[-1])
    digest = __import__("hashlib").sha256
    assert found["kubeconfig"] == digest(live["cluster"].kubeconfig.reveal().encode()).hexdigest()
    assert found["credential"] == digest(CREDENTIAL.encode()).hexdigest()
    assert found["token"] == digest(token.encode()).hexdigest()
    assert found["unapplied"] == []  # `manage.py migrate` has nothing to do: same release
    assert found["state"] == "ready"
    assert found["redriven"] == 0 and found["repaired"] == {}
    assert found["pull_secrets"]  # the registry's pull secret, applied again unchanged
    assert found["runs"] == runs  # no new deploy run in the restored platform
    assert _objects(api_client, instance.namespace) == before  # nothing redeployed or replaced
    assert sorted(Run.objects.values_list("pk", "outcome")) == [tuple(r) for r in runs]

    # The backup alone is not enough: with other keys nothing secret reads and the checkpoints are forged.
    other = {
        **keys,
        "PAAS_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "PAAS_AUDIT_CHECKPOINT_KEY": "another-installation-checkpoint-key-0123456789",
    }
    wrong = _manage("shell", "-c", WRONG_KEYS_CHECK, env={**restored, **other})
    assert wrong.returncode == 0, wrong.stderr
    assert "kubeconfig UNREADABLE" in wrong.stdout and "credential UNREADABLE" in wrong.stdout
    assert "audit NOT VERIFIED" in wrong.stdout
