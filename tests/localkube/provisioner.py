"""A small dynamic volume provisioner for the local cluster: volumes bind as on a real cluster.

The cluster gets a default StorageClass (:data:`STORAGE_CLASS`, ``volumeBindingMode: Immediate``,
provisioner :data:`PROVISIONER`).  The PV controller of the kube-controller-manager marks every
pending claim of that class with ``volume.kubernetes.io/storage-provisioner: <PROVISIONER>`` and
waits for an external provisioner, as it does for any CSI driver.  This process is that
provisioner: for each such claim without a volume it creates a ``hostPath`` PersistentVolume under
``<cluster dir>/volumes/<pv name>`` (capacity = the claim's request, same access modes and volume
mode, ``claimRef`` to the claim), and the PV controller then binds the two.  A volume whose claim
is gone (phase ``Released``, reclaim policy ``Delete``) is deleted with its directory.

Run by :class:`tests.localkube.cluster.LocalCluster` as one more component process
(``python provisioner.py --kubeconfig K --volumes-dir D``), under pytest and for the CLI's detached
demo cluster alike.  It needs only the ``kubernetes`` client, so it also runs as a plain script.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

STORAGE_CLASS = "localkube-hostpath"
PROVISIONER = "localkube.gpu-paas.io/hostpath"
PROVISIONER_ANNOTATION = "volume.kubernetes.io/storage-provisioner"
BETA_PROVISIONER_ANNOTATION = "volume.beta.kubernetes.io/storage-provisioner"
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
RESYNC_SECONDS = 10.0

log = logging.getLogger("localkube.provisioner")


def storage_class_manifest() -> dict[str, Any]:
    """The cluster's default StorageClass, served by this provisioner."""
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": STORAGE_CLASS,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
        "allowVolumeExpansion": True,
    }


def volume_name(claim: Any) -> str:
    """Like external-provisioner: ``pvc-<claim uid>``."""
    return f"pvc-{claim.metadata.uid}"


def volume_manifest(claim: Any, volumes_dir: Path) -> dict[str, Any]:
    """The PersistentVolume for one pending claim."""
    name = volume_name(claim)
    request = (claim.spec.resources.requests or {}).get("storage", "1Gi")
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": name,
            "annotations": {PROVISIONED_BY: PROVISIONER},
            "labels": {"localkube.gpu-paas.io/claim-namespace": claim.metadata.namespace},
        },
        "spec": {
            "capacity": {"storage": request},
            "accessModes": list(claim.spec.access_modes or ["ReadWriteOnce"]),
            "volumeMode": claim.spec.volume_mode or "Filesystem",
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": claim.spec.storage_class_name,
            "hostPath": {"path": str(volumes_dir / name), "type": "DirectoryOrCreate"},
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": claim.metadata.namespace,
                "name": claim.metadata.name,
                "uid": claim.metadata.uid,
                "resourceVersion": claim.metadata.resource_version,
            },
        },
    }


def _ours(claim: Any) -> bool:
    annotations = claim.metadata.annotations or {}
    wanted = annotations.get(PROVISIONER_ANNOTATION) or annotations.get(BETA_PROVISIONER_ANNOTATION)
    return wanted == PROVISIONER or claim.spec.storage_class_name == STORAGE_CLASS


class Provisioner:
    """Watches claims and volumes; every ``RESYNC_SECONDS`` it also re-lists both (missed events)."""

    def __init__(self, api: Any, volumes_dir: Path) -> None:
        from kubernetes import client

        self.core = client.CoreV1Api(api)
        self.volumes_dir = volumes_dir
        self.stopping = threading.Event()

    def provision(self, claim: Any) -> None:
        from kubernetes.client.exceptions import ApiException

        if claim.metadata.deletion_timestamp or claim.spec.volume_name or not _ours(claim):
            return
        if claim.status is not None and claim.status.phase not in (None, "Pending"):
            return
        manifest = volume_manifest(claim, self.volumes_dir)
        (self.volumes_dir / manifest["metadata"]["name"]).mkdir(parents=True, exist_ok=True)
        try:
            self.core.create_persistent_volume(manifest)
        except ApiException as error:
            if error.status != 409:  # 409: provisioned already (an earlier event)
                raise
            return
        log.info("provisioned %s for %s/%s", manifest["metadata"]["name"], *_claim_key(claim))

    def release(self, volume: Any) -> None:
        from kubernetes.client.exceptions import ApiException

        annotations = volume.metadata.annotations or {}
        if annotations.get(PROVISIONED_BY) != PROVISIONER or volume.metadata.deletion_timestamp:
            return
        phase = volume.status.phase if volume.status else None
        if phase not in ("Released", "Failed") or volume.spec.persistent_volume_reclaim_policy != "Delete":
            return
        with contextlib.suppress(ApiException):
            self.core.delete_persistent_volume(volume.metadata.name)
        shutil.rmtree(self.volumes_dir / volume.metadata.name, ignore_errors=True)
        log.info("deleted released volume %s", volume.metadata.name)

    def resync(self) -> str:
        """Handle every claim and volume once; returns the claims' list resourceVersion."""
        claims = self.core.list_persistent_volume_claim_for_all_namespaces()
        for claim in claims.items:
            self.provision(claim)
        for volume in self.core.list_persistent_volume().items:
            self.release(volume)
        return claims.metadata.resource_version

    def _watch(self, list_call: Any, handler: Any) -> None:
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        while not self.stopping.is_set():
            try:
                for event in watch.Watch().stream(list_call, timeout_seconds=int(RESYNC_SECONDS)):
                    if event["type"] in ("ADDED", "MODIFIED"):
                        handler(event["object"])
                    if self.stopping.is_set():
                        return
            except (ApiException, OSError, ValueError) as error:
                log.warning("watch failed (%s); retrying", error)
                self.stopping.wait(0.5)

    def run(self) -> None:
        threads = [
            threading.Thread(
                target=self._watch,
                args=(self.core.list_persistent_volume_claim_for_all_namespaces, self.provision),
                daemon=True,
            ),
            threading.Thread(
                target=self._watch, args=(self.core.list_persistent_volume, self.release), daemon=True
            ),
        ]
        for thread in threads:
            thread.start()
        while not self.stopping.wait(RESYNC_SECONDS):
            try:
                self.resync()
            except Exception as error:
                log.warning("resync failed: %s", error)


def _claim_key(claim: Any) -> tuple[str, str]:
    return claim.metadata.namespace, claim.metadata.name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--volumes-dir", required=True, type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stdout)
    from kubernetes import config

    args.volumes_dir.mkdir(parents=True, exist_ok=True)
    api = config.new_client_from_config(config_file=args.kubeconfig)
    provisioner = Provisioner(api, args.volumes_dir)
    signal.signal(signal.SIGTERM, lambda *_: provisioner.stopping.set())
    deadline = time.monotonic() + 30
    while True:  # the API server is up when we are started; tolerate a slow first answer
        try:
            provisioner.resync()
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    log.info("serving StorageClass %s (provisioner %s)", STORAGE_CLASS, PROVISIONER)
    provisioner.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
