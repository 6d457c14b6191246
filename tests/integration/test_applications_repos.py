"""Applications pulled from repositories, end to end on the local control plane: K8s YAML from Git (the
commit recorded, an update to a new commit, a rollback pinned to the old one, a cluster-scoped object
refused by name), a Helm chart from a chart repository with value overrides and from the application
catalog, and a repository that cannot be reached (the run retried with the reason, then failed)."""

import socket

import pytest
from django_q.models import Schedule

from catalog.models import CatalogApplication, Repository
from instances import applications, deployer
from instances.models import Run
from tests.support.applications import bundle, config_map, deployment, last_run, run_app
from tests.support.canary import CANARY
from tests.support.helm_charts import write_chart
from tests.support.instances import launch_instance
from tests.support.integration_servers import GIT_PASSWORD, GIT_USER

pytestmark = pytest.mark.kube


def _repository(world, *, kind: str, url: str, name: str, **extra) -> Repository:
    """A workspace repository of tenant A's 'team' workspace (made directly: its services are another
    part's)."""
    return Repository.objects.create(
        org=world.a.org, project=world.a.project, name=name, display_name=name, kind=kind, url=url, **extra
    )


def _data(live, namespace: str, name: str) -> dict:
    return live["core"].read_namespaced_config_map(name, namespace).data


def test_yaml_from_git_commit_update_rollback_and_refusal(live, git_server):
    world = live["world"]
    instance = launch_instance(live)
    owner, namespace = instance.owner, instance.namespace
    repo = git_server.create_repository("app")
    first = repo.commit(
        {"deploy/app.yaml": bundle(deployment("gitapp"), config_map("gitapp-config", "first"))}, "first"
    )
    repository = _repository(world, kind="git", url=repo.url, name="app-repo", path="deploy")

    app = applications.application_create(
        actor=owner,
        compute_instance=instance,
        name="gitapp",
        package_type="yaml",
        sync="repository",
        repository=repository,
        ref="main",
    )
    assert run_app(app) == "ready", last_run(app).log
    assert app.revisions.get(number=1).commit == first
    assert _data(live, namespace, "gitapp-config") == {"greeting": "first"}
    assert any(f"commit {first[:12]}" in e["message"] for e in last_run(app).log)

    second = repo.commit(
        {"deploy/app.yaml": bundle(deployment("gitapp"), config_map("gitapp-config", "second"))}, "2"
    )
    applications.application_update(actor=owner, application=app, ref="main")
    assert run_app(app) == "ready", last_run(app).log
    assert app.revisions.get(number=2).commit == second
    assert _data(live, namespace, "gitapp-config") == {"greeting": "second"}

    rollback = applications.application_rollback(actor=owner, application=app)
    assert rollback.ref == first and rollback.rollback_of.number == 1  # pinned to what revision 1 deployed
    assert run_app(app) == "ready", last_run(app).log
    assert app.revisions.get(number=3).commit == first
    assert _data(live, namespace, "gitapp-config") == {"greeting": "first"}
    assert dict(app.revisions.values_list("number", "outcome")) == {
        1: "superseded",
        2: "superseded",
        3: "deployed",
    }

    # A cluster-scoped object in the repository: the run fails at once, naming it; nothing is applied.
    repo.commit({"hostile/rbac.yaml": "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\n"
                 "metadata:\n  name: admin-again\n"}, "hostile")  # fmt: skip
    hostile = applications.application_create(
        actor=owner,
        compute_instance=instance,
        name="hostile",
        package_type="yaml",
        sync="repository",
        repository=repository,
        path="hostile",
    )
    assert run_app(hostile) == "failed"
    hostile.refresh_from_db()
    assert "ClusterRole admin-again (hostile/rbac.yaml) is cluster-scoped" in hostile.state_reason
    assert last_run(hostile).attempt == 1 and hostile.objects_applied == []

    # A Helm repository cannot hold K8s YAML; another org's repository is not this workspace's.
    other = Repository.objects.create(
        org=world.b.org,
        project=world.b.project,
        name="theirs",
        display_name="theirs",
        kind="git",
        url=repo.url,
    )
    for wrong, field in ((other, "repository"), (None, "repository")):
        with pytest.raises(applications.ValidationFailed) as refused:
            applications.application_create(
                actor=owner,
                compute_instance=instance,
                name="wrong",
                package_type="yaml",
                sync="repository",
                repository=wrong,
            )
        assert field in refused.value.fields


def test_helm_chart_with_overrides_and_from_the_catalog(
    live, chart_repo, helm_cli, helm_binary, settings, tmp_path
):
    settings.PAAS_HELM_BINARY = str(helm_binary)
    world = live["world"]
    instance = launch_instance(live)
    owner, namespace = instance.owner, instance.namespace
    templates = {
        "deploy.yaml": deployment("{{ .Release.Name }}"),
        "cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-config\n"
        "data:\n  greeting: {{ .Values.greeting | quote }}\n  size: {{ .Values.size | quote }}\n",
    }
    for version in ("0.1.0", "0.2.0"):
        chart = write_chart(
            tmp_path / version,
            "hello",
            version,
            templates=templates,
            values={"greeting": version, "size": "s"},
        )
        chart_repo.publish(helm_cli, chart)
    repository = _repository(world, kind="helm", url=chart_repo.url, name="charts")

    app = applications.application_create(
        actor=owner,
        compute_instance=instance,
        name="helmapp",
        package_type="helm",
        sync="repository",
        repository=repository,
        chart="hello",
        chart_version="0.1.0",
        values="size: xl\n",
    )
    assert run_app(app) == "ready", last_run(app).log
    assert _data(live, namespace, "helmapp-config") == {"greeting": "0.1.0", "size": "xl"}
    assert app.revisions.get().resolved_chart_version == "0.1.0"
    app.refresh_from_db()
    assert {r["kind"] for r in app.objects_applied} == {"Deployment", "ConfigMap"} and app.cpu_millis == 100
    applications.application_update(actor=owner, application=app, chart_version="")  # the latest
    assert run_app(app) == "ready", last_run(app).log
    assert _data(live, namespace, "helmapp-config") == {"greeting": "0.2.0", "size": "xl"}
    assert app.revisions.get(number=2).resolved_chart_version == "0.2.0"

    # A chart repository needs the chart's name.
    with pytest.raises(applications.ValidationFailed) as refused:
        applications.application_create(
            actor=owner, compute_instance=instance, name="x", package_type="helm", sync="repository",
            repository=repository,
        )  # fmt: skip
    assert "chart" in refused.value.fields

    item = CatalogApplication.objects.create(
        org=world.a.org,
        project=world.a.project,
        name="hello",
        display_name="Hello",
        package_type="helm",
        sync="repository",
        repository=repository,
        chart="hello",
        values="greeting: from the catalog\nsize: s\n",
        published=True,
    )
    from_catalog = applications.application_create(
        actor=world.a.users["collaborator_rw"],
        compute_instance=instance,
        name="cat",
        catalog_item=item,
        values="size: m\n",
    )
    assert run_app(from_catalog) == "ready", last_run(from_catalog).log
    assert _data(live, namespace, "cat-config") == {"greeting": "from the catalog", "size": "m"}


def test_an_unreachable_repository_is_retried_with_the_reason_then_fails(live):
    world = live["world"]
    instance = launch_instance(live)
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    repository = _repository(world, kind="git", url=f"http://127.0.0.1:{port}/app.git", name="gone")
    app = applications.application_create(
        actor=instance.owner,
        compute_instance=instance,
        name="far",
        package_type="yaml",
        sync="repository",
        repository=repository,
    )
    run = last_run(app)
    assert deployer.execute(run.pk) == "retrying"
    run.refresh_from_db()
    assert run.outcome == Run.Outcome.QUEUED and str(port) in run.message and run.message
    assert Schedule.objects.filter(
        name=f"retry run {run.pk} attempt 2", func="instances.tasks.run_execute"
    ).exists()
    assert deployer.execute(run.pk) == "retrying"
    assert deployer.execute(run.pk) == "failed"
    app.refresh_from_db()
    run.refresh_from_db()
    assert app.state == "failed" and app.state_reason == run.message and run.attempt == 3
    assert app.revisions.get().outcome == "failed" and app.revisions.get().message == run.message


def test_a_private_git_repository_and_a_wrong_credential_never_shown(live, git_server_auth):
    world = live["world"]
    instance = launch_instance(live)
    repo = git_server_auth.create_repository("private")
    commit = repo.commit({"app.yaml": config_map("private-config", "secret-free")}, "c")
    repository = _repository(
        world,
        kind="git",
        url=repo.url,
        name="private",
        auth="basic",
        username=GIT_USER,
        credential=GIT_PASSWORD,
    )
    app = applications.application_create(
        actor=instance.owner,
        compute_instance=instance,
        name="private",
        package_type="yaml",
        sync="repository",
        repository=repository,
    )
    assert run_app(app) == "ready", last_run(app).log
    assert app.revisions.get().commit == commit
    assert _data(live, instance.namespace, "private-config") == {"greeting": "secret-free"}

    Repository.objects.filter(pk=repository.pk).update(credential=GIT_PASSWORD + "-wrong")
    applications.application_update(actor=instance.owner, application=app, ref="main")
    run = last_run(app)
    for _attempt in range(3):
        result = deployer.execute(run.pk)
    app.refresh_from_db()
    run.refresh_from_db()
    assert result == "failed" and "401" in run.message and app.state == "failed", run.message
    shown = (
        f"{run.log} {run.message} {app.state_reason} {list(app.revisions.values_list('message', flat=True))}"
    )
    assert CANARY not in shown
    # The deployed revision's objects stay; a rollback pulls its pinned commit again (credential fixed).
    assert _data(live, instance.namespace, "private-config") == {"greeting": "secret-free"}
    Repository.objects.filter(pk=repository.pk).update(credential=GIT_PASSWORD)
    rollback = applications.application_rollback(actor=instance.owner, application=app)
    assert rollback.ref == commit and run_app(app) == "ready", last_run(app).log
