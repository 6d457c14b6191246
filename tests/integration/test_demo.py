"""The demo set-up of `make run`: every seeder, twice (idempotent), with the local cluster."""

import pytest
from django.core.management import call_command

from billing.models import Budget, CostProfile, Meter, UsageRecord
from instances.models import ComputeInstance, ServiceInstance

pytestmark = pytest.mark.kube


def test_demo_setup_is_idempotent_and_gives_bob_an_instance_and_a_notebook(
    db, kube_cluster, monkeypatch, capsys
):
    monkeypatch.setenv("PAAS_DEMO_KUBECONFIG", str(kube_cluster.kubeconfig_path))
    call_command("demo_setup")
    first = capsys.readouterr().out
    assert "Demo logins" in first and "nodes synced" in first
    assert "bob's 'demo-box' (Small) in acme/research is ready" in first
    assert "bob's Jupyter notebook 'demo-notebook' on demo-box is ready" in first
    assert "chargeback rates on the 'local' cluster" in first and "acme's monthly budget" in first
    call_command("demo_setup")
    second = capsys.readouterr().out
    assert "'demo-box' in acme/research is ready" in second and "demo-notebook" not in second
    box = ComputeInstance.objects.get(name="demo-box")
    assert box.owner.username == "bob" and box.project.name == "research"
    assert ComputeInstance.objects.count() == 1
    notebook = ServiceInstance.objects.get()
    assert (notebook.name, notebook.compute_instance, notebook.state) == ("demo-notebook", box, "ready")
    assert notebook.outputs["url"].startswith("http://demo-notebook.")
    # billing: the demo instance is metered from its launch and rolled up; the rates and budgets once
    meter = Meter.objects.get(instance_key=f"compute:{box.pk}")
    assert meter.intervals.filter(kind="running", ended_at__isnull=True).exists()
    assert UsageRecord.objects.filter(meter=meter).exists()
    assert CostProfile.objects.count() == 1 and Budget.objects.count() == 2
    assert "rates" not in second and "budget of" not in second
