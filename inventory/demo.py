"""Demo inventory: the local Kubernetes cluster (tests/localkube) in a demo datacenter, synced.

``make run`` starts the demo cluster and passes its kubeconfig in ``PAAS_DEMO_KUBECONFIG``. Without
it (no Go on the machine, or DEMO_CLUSTER=0) the demo runs without capacity and says so.
"""

import os
from pathlib import Path

from django.db import transaction

from inventory import kube, services, tasks
from inventory.models import Cluster, Datacenter, Storage
from tenancy.models import User


def seed() -> list[str]:
    operator = User.objects.get(username="operator")
    with transaction.atomic():
        datacenter = Datacenter.objects.filter(name="local-lab").first() or services.datacenter_create(
            actor=operator,
            name="local-lab",
            display_name="Local lab",
            kind=Datacenter.Kind.DATA_CENTER,
            infrastructure_type=Datacenter.InfrastructureType.BARE_METAL,
            operating_system="Ubuntu 22.04 LTS",
            gpu_types=["A100", "H100"],
        )
        if not Storage.objects.filter(name="hss-local").exists():
            services.storage_create(
                actor=operator,
                name="hss-local",
                kind=Storage.Kind.HIGH_SPEED,
                storage_class="localkube-hostpath",
                datacenter=datacenter,
            )
            services.storage_create(
                actor=operator,
                name="hss-shared",
                kind=Storage.Kind.HIGH_SPEED,
                storage_class="localkube-hostpath",  # the demo cluster's default class (tests/localkube)
            )
    path = os.environ.get("PAAS_DEMO_KUBECONFIG", "").strip()
    if not path or not Path(path).is_file():
        return [
            "Demo inventory: no local Kubernetes cluster (start one with `python -m tests.localkube start "
            "--name demo --kata` and set PAAS_DEMO_KUBECONFIG to the path it prints)."
        ]
    kubeconfig = Path(path).read_text()
    with transaction.atomic():
        cluster = Cluster.objects.filter(name="local").first()
        if cluster is None:
            cluster = services.cluster_register(
                actor=operator,
                name="local",
                display_name="Local GPU cluster",
                datacenter=datacenter,
                kubeconfig=kubeconfig,
                labels={"demo": "true"},
            )
        elif cluster.kubeconfig.reveal() != kubeconfig:  # a restarted demo cluster has new credentials
            services.cluster_update(actor=operator, cluster=cluster, kubeconfig=kubeconfig)
    nodes = tasks.cluster_refresh(cluster.pk)
    cluster.refresh_from_db()
    return [
        f"Demo inventory: cluster 'local' at {kube.kubeconfig_server(kubeconfig)} is {cluster.status}, "
        f"{nodes} nodes synced."
    ]
