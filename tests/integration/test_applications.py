"""Applications (uploaded Kubernetes YAML) on compute instances, end to end on the local control plane:
deploy to ready with labels and object status, an update that drops an object deletes it, rollback,
delete leaves nothing; refusals (cluster-scoped and policy-breaking objects named, an application that
does not fit, objects of a service), who may, and the compute instance's delete taking them along."""

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from catalog import registries
from catalog.models import CatalogApplication
from catalog.sources import spec
from instances import actions, application_selectors, applications, service_instances
from instances import services as instance_services
from instances import tasks as instance_tasks
from instances.models import Application, ApplicationRevision, Run
from paas.audit import AuditEvent
from paas.errors import Conflict, Forbidden, NotFound, ValidationFailed
from paas.platform_owned import LABEL_APPLICATION, LABEL_SERVICE
from tests.support.applications import bundle, config_map, deployment, last_run, run_app, service
from tests.support.instances import launch_instance
from tests.support.services import deploy_service, make_service_profile
from tests.support.wait import wait_for

pytestmark = pytest.mark.kube

V1 = {"app.yaml": bundle(deployment("hello"), service("hello")), "config.yaml": config_map("hello-config")}
V2 = {"app.yaml": bundle(deployment("hello", env="two"), service("hello"))}


def _gone(read, *args) -> bool:
    try:
        read(*args)
    except ApiException as exc:
        return exc.status == 404
    return False


def _labelled(live, namespace: str, name: str) -> list[str]:
    """Every object left in the namespace carrying the application's label (the kinds our bundles use)."""
    api = live["core"].api_client
    selector = f"{LABEL_APPLICATION}={name}"
    core, apps = live["core"], k8s.AppsV1Api(api)
    found = []
    for kind, listed in (
        ("Deployment", apps.list_namespaced_deployment(namespace, label_selector=selector)),
        ("ReplicaSet", apps.list_namespaced_replica_set(namespace, label_selector=selector)),
        ("Service", core.list_namespaced_service(namespace, label_selector=selector)),
        ("ConfigMap", core.list_namespaced_config_map(namespace, label_selector=selector)),
        ("Pod", core.list_namespaced_pod(namespace, label_selector=selector)),
    ):
        found += [
            f"{kind}/{item.metadata.name}" for item in listed.items if not item.metadata.deletion_timestamp
        ]
    return found


def test_upload_deploy_update_rollback_delete_and_who_may(live):
    world = live["world"]
    instance = launch_instance(live)
    owner, namespace = instance.owner, instance.namespace
    apps = k8s.AppsV1Api(live["core"].api_client)

    registry = registries.registry_create(
        actor=world.a.users["org_admin"],
        project=world.a.project,
        name="team-registry",
        provider="generic",
        endpoint="127.0.0.1:5999",
        username="puller",
        credential="pull-only-token",
    )
    # (The YAML's own claim to be another application's or a service's objects is overwritten.)
    files = {
        **V1,
        "config.yaml": config_map("hello-config").replace(
            "metadata:\n", f"metadata:\n  labels: {{{LABEL_APPLICATION}: other, {LABEL_SERVICE}: web}}\n"
        ),
    }
    app = applications.application_create(
        actor=owner, compute_instance=instance, name="hello", package_type="yaml", sync="upload", files=files
    )
    assert app.state == "pending" and app.revision == 1 and run_app(app) == "ready", last_run(app).log
    app.refresh_from_db()
    assert app.state == "ready" and app.cpu_millis == 100
    assert sorted((r["kind"], r["name"]) for r in app.objects_applied) == [
        ("ConfigMap", "hello-config"),
        ("Deployment", "hello"),
        ("Service", "hello"),
    ]
    assert {(s["kind"], s["ready"]) for s in app.object_status} == {
        ("ConfigMap", True),
        ("Deployment", True),
        ("Service", True),
    }
    assert app.status_checked_at is not None
    deployed = apps.read_namespaced_deployment("hello", namespace)
    assert deployed.metadata.labels[LABEL_APPLICATION] == "hello"
    assert deployed.spec.template.metadata.labels[LABEL_APPLICATION] == "hello"
    # The workspace's registry: its pull secret in the namespace, referenced from the pods' spec.
    pull = f"paas-registry-{registry.pk}"
    assert [r.name for r in deployed.spec.template.spec.image_pull_secrets] == [pull]
    assert live["core"].read_namespaced_secret(pull, namespace).type == "kubernetes.io/dockerconfigjson"
    labels = live["core"].read_namespaced_config_map("hello-config", namespace).metadata.labels
    assert labels[LABEL_APPLICATION] == "hello" and LABEL_SERVICE not in labels
    first = app.revisions.get(number=1)
    assert first.outcome == "deployed" and first.digest.startswith("sha256:") and first.deployed_at

    # Who may: another org's user does not see it; a read-only member sees it and may not change it.
    stranger, reader = world.b.users["workspace_admin"], world.a.users["collaborator_ro"]
    with pytest.raises(NotFound):
        applications.application_update(actor=stranger, application=app, files=V2)
    with pytest.raises(NotFound):
        applications.application_create(
            actor=stranger, compute_instance=instance, name="mine", package_type="yaml", files=V1
        )
    assert not application_selectors.application_list_for(stranger).filter(pk=app.pk).exists()
    with pytest.raises(NotFound):
        application_selectors.application_get_for(stranger, app.pk)
    assert application_selectors.application_get_for(reader, app.pk) == app
    with pytest.raises(Forbidden):
        applications.application_create(
            actor=reader, compute_instance=instance, name="mine", package_type="yaml", files=V1
        )
    with pytest.raises(Forbidden):
        applications.application_delete(actor=reader, application=app)
    assert not application_selectors.can_manage_application(reader, app)
    assert application_selectors.can_manage_application(world.a.users["collaborator_rw"], app)

    # An update that drops the ConfigMap deletes it; the Deployment changes in place.
    revision = applications.application_update(actor=owner, application=app, files=V2)
    assert revision.number == 2
    with pytest.raises(Conflict):  # one deploy at a time
        applications.application_update(actor=owner, application=app, files=V1)
    assert run_app(app) == "ready", last_run(app).log
    app.refresh_from_db()
    assert _gone(live["core"].read_namespaced_config_map, "hello-config", namespace)
    env = apps.read_namespaced_deployment("hello", namespace).spec.template.spec.containers[0].env
    assert env[0].value == "two" and len(app.objects_applied) == 2
    assert dict(app.revisions.values_list("number", "outcome")) == {1: "superseded", 2: "deployed"}
    assert any("no longer has: ConfigMap/hello-config" in e["message"] for e in last_run(app).log)

    # Roll back: revision 1's objects again, as a new revision 3.
    rollback = applications.application_rollback(actor=world.a.users["collaborator_rw"], application=app)
    assert rollback.number == 3 and rollback.rollback_of.number == 1 and rollback.files == files
    assert run_app(app) == "ready", last_run(app).log
    assert live["core"].read_namespaced_config_map("hello-config", namespace).data == {"greeting": "hello"}
    env = apps.read_namespaced_deployment("hello", namespace).spec.template.spec.containers[0].env
    assert env[0].value == "one"
    assert dict(app.revisions.values_list("number", "outcome")) == {
        1: "superseded",
        2: "superseded",
        3: "deployed",
    }

    # The debug view: an object that stops being ready is shown with the events of its pods.
    apps.patch_namespaced_deployment(
        "hello", namespace, {"spec": {"template": {"spec": {"nodeSelector": {"example.com/nowhere": "x"}}}}}
    )
    applications.application_status_refresh(actor=reader, application=app)  # (enqueued for the agent)

    def failing():
        instance_tasks.application_status(app.pk)
        app.refresh_from_db()
        rows = {s["kind"]: s for s in app.object_status}
        events = rows["Deployment"]["events"]
        return not rows["Deployment"]["ready"] and any(e["reason"] == "FailedScheduling" for e in events)

    wait_for(failing, timeout=90, what="the Deployment's pod events in the application's status")
    rows = {s["kind"]: s for s in app.object_status}
    assert (
        rows["Service"]["ready"]
        and rows["Service"]["events"] == []
        and "rolling out" in rows["Deployment"]["message"]
    )
    assert any(e["object"].startswith("Pod/hello-") for e in rows["Deployment"]["events"])

    # Delete leaves nothing of it.
    run = applications.application_delete(actor=owner, application=app)
    assert run.kind == Run.Kind.DELETE and run_app(app) == "deleted", last_run(app).log
    app.refresh_from_db()
    assert app.state == "deleted" and app.objects_applied == [] and _labelled(live, namespace, "hello") == []
    assert _gone(apps.read_namespaced_deployment, "hello", namespace)
    actions = set(AuditEvent.objects.filter(target_id=str(app.pk)).values_list("action", flat=True))
    assert {
        "application.create",
        "application.update",
        "application.rollback",
        "application.delete",
    } <= actions
    assert {"application.ready", "application.deleted"} <= actions
    # The name is free again.
    again = applications.application_create(
        actor=owner, compute_instance=instance, name="hello", package_type="yaml", files=V2
    )
    assert again.pk != app.pk


def test_refusals_fit_conflicts_and_delete_with_the_instance(live):
    world = live["world"]
    instance = launch_instance(live)
    owner, namespace = instance.owner, instance.namespace

    # Request side: a cluster-scoped object is refused by name; a bad name; values that are not a mapping.
    cluster_role = (
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: grab}\nrules: []\n"
    )
    with pytest.raises(ValidationFailed) as refused:
        applications.application_create(
            actor=owner,
            compute_instance=instance,
            name="evil",
            package_type="yaml",
            files={"x.yaml": cluster_role},
        )
    assert "ClusterRole" in str(refused.value.fields["files"]) and "grab" in str(
        refused.value.fields["files"]
    )
    with pytest.raises(ValidationFailed) as refused:
        applications.application_create(
            actor=owner, compute_instance=instance, name="Bad_Name", package_type="yaml", files=V1
        )
    assert "name" in refused.value.fields
    with pytest.raises(ValidationFailed) as refused:
        applications.application_create(
            actor=owner,
            compute_instance=instance,
            name="vals",
            package_type="yaml",
            files=V1,
            values="- a\n- b\n",
        )
    assert "values" in refused.value.fields

    # Worker side: an object the template policy refuses (the namespace's own controls) fails the run,
    # named, at once (not retried).
    quota = "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: more}\nspec: {hard: {pods: '1000'}}\n"
    bad = applications.application_create(
        actor=owner,
        compute_instance=instance,
        name="grabby",
        package_type="yaml",
        files={"app.yaml": bundle(config_map("grabby-config"), quota)},
    )
    assert run_app(bad) == "failed"
    bad.refresh_from_db()
    assert bad.state == "failed" and "ResourceQuota" in bad.state_reason and "more" in bad.state_reason
    assert bad.revisions.get().outcome == ApplicationRevision.Outcome.FAILED
    assert bad.objects_applied == [] and _gone(
        live["core"].read_namespaced_config_map, "grabby-config", namespace
    )

    # An application that does not fit what is left of the instance fails with the numbers.
    big = applications.application_create(
        actor=owner,
        compute_instance=instance,
        name="big",
        package_type="yaml",
        files={"app.yaml": deployment("big", cpu="64")},
    )
    assert run_app(big) == "failed"
    big.refresh_from_db()
    assert "big does not fit on" in big.state_reason and "CPU: needs 64 CPU" in big.state_reason, (
        big.state_reason
    )
    assert "left of 26 CPU" in big.state_reason and big.cpu_millis == 0

    # A service's objects are not an application's to take, nor the other way round.
    profile = make_service_profile(world)
    deploy_service(live, instance, profile, "web")
    taker = applications.application_create(
        actor=owner,
        compute_instance=instance,
        name="taker",
        package_type="yaml",
        files={"a.yaml": deployment("web")},
    )
    assert run_app(taker) == "failed"
    taker.refresh_from_db()
    assert "Deployment 'web' belongs to the service web" in taker.state_reason, taker.state_reason
    mine = applications.application_create(
        actor=owner,
        compute_instance=instance,
        name="mine",
        package_type="yaml",
        files={"a.yaml": deployment("api")},
    )
    assert run_app(mine) == "ready", last_run(mine).log
    with pytest.raises(ValidationFailed) as refused:
        service_instances.service_launch(actor=owner, compute_instance=instance, profile=profile, name="api")
    assert "belongs to the application mine" in str(refused.value.fields)
    usage = service_instances.services_usage(instance)
    assert usage.cpu_millis == 100 + 100  # the service's and the application's
    apps_api = k8s.AppsV1Api(live["core"].api_client)

    # The compute instance's stop stops its ready applications (their CPU and memory released); its
    # start brings them back; nothing is deployed onto a stopped instance.
    stop = actions.action_run(actor=owner, target=instance, action="stop")
    assert deployer_execute(stop.pk) == "stopped", Run.objects.get(pk=stop.pk).log
    mine.refresh_from_db()
    assert mine.state == "stopped" and "Stopped with its compute instance" in mine.state_reason
    assert service_instances.services_usage(instance).cpu_millis == 0
    assert apps_api.read_namespaced_deployment("api", namespace).spec.replicas == 0
    with pytest.raises(Conflict):
        applications.application_update(actor=owner, application=mine, files={"a.yaml": deployment("api")})
    start = actions.action_run(actor=owner, target=instance, action="start")
    assert deployer_execute(start.pk) == "ready", Run.objects.get(pk=start.pk).log
    mine.refresh_from_db()
    assert mine.state == "ready" and apps_api.read_namespaced_deployment("api", namespace).spec.replicas == 1

    # A failed application is retried (the same revision, a new run).
    run = applications.application_retry(actor=owner, application=taker)
    assert run.kind == Run.Kind.RETRY and taker.revisions.get().run_id == run.pk

    # The compute instance's delete takes its applications along.
    delete = instance_services.instance_delete(actor=world.a.users["workspace_admin"], instance=instance)
    mine.refresh_from_db()
    assert mine.state == "deleting"
    assert deployer_execute(delete.pk) == "deleted"
    for app in (mine, big, bad, taker):
        app.refresh_from_db()
        assert app.state == "deleted", (app.name, app.state)
    assert Application.objects.filter(compute_instance=instance).count() == 4


def deployer_execute(run_id: int) -> str:
    from instances import deployer

    return deployer.execute(run_id)


def test_from_the_catalog_values_merged(live):
    world = live["world"]
    instance = launch_instance(live)
    admin = world.a.users["workspace_admin"]
    item = CatalogApplication.objects.create(
        org=world.a.org,
        project=world.a.project,
        name="greeter",
        display_name="Greeter",
        package_type="yaml",
        sync="upload",
        files={"app.yaml": bundle(deployment("greeter"), config_map("greeter"))},
        values="greeting: hi\nnested: {a: 1, b: 2}\n",
        published=True,
        created_by=admin,
    )
    hidden = CatalogApplication.objects.create(
        org=world.b.org,
        project=world.b.project,
        name="other",
        display_name="Other",
        package_type="yaml",
        sync="upload",
        files=item.files,
        published=True,
    )
    with pytest.raises(ValidationFailed):
        applications.application_create(actor=admin, compute_instance=instance, name="x", catalog_item=hidden)
    app = applications.application_create(
        actor=admin, compute_instance=instance, name="greeter", catalog_item=item, values="nested: {b: 3}\n"
    )
    revision = app.revisions.get()
    assert app.catalog_item == item and app.package_type == "yaml" and revision.files == item.files
    assert spec.values_mapping(revision.values) == {"greeting": "hi", "nested": {"a": 1, "b": 3}}
    assert run_app(app) == "ready", last_run(app).log
    assert live["core"].read_namespaced_config_map("greeter", instance.namespace).data == {
        "greeting": "hello"
    }
    # The system catalog's own application (catalog/system_catalog/applications/) deploys as shipped: it
    # passes Pod Security "restricted" and the guardrails without a change.
    nginx = CatalogApplication.objects.get(org__isnull=True, name="nginx")
    shipped = applications.application_create(
        actor=admin, compute_instance=instance, name="web", catalog_item=nginx
    )
    assert run_app(shipped) == "ready", last_run(shipped).log
    assert live["core"].read_namespaced_service("nginx", instance.namespace).spec.ports[0].port == 80
