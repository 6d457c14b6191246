"""The demo set-up of `make run`: every seeder, twice (idempotent), with the local cluster."""

import pytest
from django.core.management import call_command

from instances.models import ComputeInstance

pytestmark = pytest.mark.kube


def test_demo_setup_is_idempotent_and_gives_bob_an_instance(db, kube_cluster, monkeypatch, capsys):
    monkeypatch.setenv("PAAS_DEMO_KUBECONFIG", str(kube_cluster.kubeconfig_path))
    call_command("demo_setup")
    first = capsys.readouterr().out
    assert "Demo logins" in first and "nodes synced" in first
    assert "bob's 'demo-box' (Small) launched in acme/research" in first
    call_command("demo_setup")
    second = capsys.readouterr().out
    assert "'demo-box' in acme/research is pending" in second
    box = ComputeInstance.objects.get(name="demo-box")
    assert box.owner.username == "bob" and box.project.name == "research"
    assert ComputeInstance.objects.count() == 1
