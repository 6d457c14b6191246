"""Every studio edit writes its audit event: generated over every registered admin page and action.

``test_every_studio_operation_is_covered`` walks the studio's registry and asks each ModelAdmin, as
each studio role, what it offers (add, change, delete, each action, each extra page). Every offered
operation must be either exercised below (``OPERATIONS``: submitted through the studio as a real user,
asserting the audit event it wrote) or listed in ``READ_ONLY`` with the reason. A new admin page or
action that is in neither fails the suite; so does one listed here that writes no event.
"""

import datetime as dt
import re
import uuid
from dataclasses import dataclass, field

import pytest
from django.contrib import admin
from django.contrib.messages import constants as message_levels
from django.contrib.messages import get_messages
from django.test import RequestFactory
from django.utils import timezone
from django_q.models import Failure, Schedule, Success

from catalog import custom_resources
from catalog import services as catalog_services
from catalog.models import ServiceProfile
from instances import services as instance_services
from instances.models import ComputeInstance, StandbyInstance, WarmPool
from inventory.models import Agent, Datacenter, DatacenterAgent, MigChange, Storage
from paas.audit_sinks import audit_sink_create
from paas.branding import brand_update
from paas.models import AuditEvent, AuditSettings
from tenancy import services as tenancy_services
from tenancy import support
from tenancy.models import RoleAssignment
from tenancy.roles import Role
from tests.factories import DEAD_KUBECONFIG, ONE_A100, make_operator, make_profile, make_synced_cluster
from tests.support.html_forms import form_data
from tests.support.roles import user_for

pytestmark = pytest.mark.django_db

MANIFESTS = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  a: b\n"


# --- what each admin offers ---------------------------------------------------------------------------


def _offered(model_admin, request, obj) -> set[str]:
    ops = set()
    if model_admin.has_add_permission(request):
        ops.add("add")
    if obj is not None and model_admin.has_change_permission(request, obj):
        # A change form with nothing editable is a view page, whatever the permission says.
        form_fields = model_admin.get_fields(request, obj)
        readonly = set(model_admin.get_readonly_fields(request, obj))
        if any(f not in readonly for f in form_fields):
            ops.add("change")
    if obj is not None and model_admin.has_delete_permission(request, obj):
        ops.add("delete")
    ops |= {f"action:{name}" for name in model_admin.get_actions(request)}
    for pattern in model_admin.get_urls():
        name = pattern.name or ""
        suffix = name.rsplit("_", 1)[-1]
        if suffix not in {"changelist", "add", "history", "delete", "change"} and name:
            ops.add(f"page:{suffix}")
    return ops


# --- sample objects: one of each kind the studio edits ------------------------------------------------


@dataclass
class Samples:
    objects: dict = field(default_factory=dict)

    def __getitem__(self, label):
        return self.objects[label]


@pytest.fixture
def samples(world) -> Samples:
    op, a = world.operator, world.a
    admin_a = a.users["org_admin"]
    cluster = make_synced_cluster(name="cov-cluster")
    datacenter = Datacenter.objects.create(
        name="cov-dc", display_name="Cov DC", kind="data_center", infrastructure_type="bare_metal"
    )
    storage = Storage.objects.create(
        name="cov-st", kind="high-speed-storage", datacenter=datacenter, storage_class="fast"
    )
    agent = Agent.objects.create(name="cov-agent")
    other_dc = Datacenter.objects.create(
        name="cov-dc2", display_name="Cov DC2", kind="data_center", infrastructure_type="bare_metal"
    )
    mapping = DatacenterAgent.objects.create(datacenter=other_dc, agent=agent)
    cluster.nodes.update(mig_capable=True)
    mig = MigChange.objects.create(cluster=cluster, config="all-1g.5gb", requested_by=op)
    profile = make_profile(
        actor=admin_a, project=a.project, manifests=MANIFESTS, resource_groups=ONE_A100, name="cov-profile"
    )
    template = profile.template_version.template
    draft = catalog_services.template_version_create(
        actor=admin_a, template=template, version="v2", manifests=MANIFESTS
    )
    service_profile = catalog_services.profile_create(
        actor=admin_a,
        model=ServiceProfile,
        project=a.project,
        name="cov-service",
        service_type="notebook",
        template_version=profile.template_version,
        published=True,
    )
    invitation, _ = tenancy_services.invitation_create(
        actor=admin_a, org=a.org, email="cov@example.com", role=Role.COLLABORATOR_RO, project=a.project
    )
    idp = tenancy_services.idp_mapping_create(
        actor=admin_a, org=a.org, group="cov-group", role=Role.COLLABORATOR_RO, project=a.project
    )
    instance_limit = tenancy_services.instance_limit_set(
        actor=admin_a, project=a.project, max_active_instances_per_user=5
    )
    instance = instance_services.instance_launch(
        actor=a.users["workspace_admin"], project=a.project, name="cov-instance", profile=profile
    )
    ComputeInstance.objects.filter(pk=instance.pk).update(state="failed")
    now = timezone.now()
    success = Success.objects.create(
        id=uuid.uuid4().hex,
        name="cov-ok",
        func="paas.tasks.worker_heartbeat",
        started=now,
        stopped=now,
        success=True,
    )
    failure = Failure.objects.create(
        id=uuid.uuid4().hex,
        name="cov-failed",
        func="paas.tasks.worker_heartbeat",
        started=now,
        stopped=now,
        success=False,
    )
    from paas.services import api_token_create

    token, _ = api_token_create(actor=admin_a, name="cov")
    allowed_cr = custom_resources.allowed_custom_resource_create(actor=op, group="ray.io", kind="RayCluster")
    warm = make_profile(
        actor=admin_a,
        project=a.project,
        manifests=MANIFESTS,
        resource_groups=ONE_A100,
        name="cov-warm",
        template="cov-warm",
    )
    catalog_services.profile_update(
        actor=admin_a, profile=warm, allocation_strategy="warm_pool", warm_pool_size=1
    )
    pool = WarmPool.objects.create(profile=warm, cluster=cluster, desired=1)
    standby = StandbyInstance.objects.create(
        pool=pool, profile=warm, snapshot_digest="cov", cluster=cluster, namespace="w-cov-1", state="ready"
    )
    from catalog import app_catalog, registries, repositories
    from instances.models import Application

    catalog_app = app_catalog.catalog_application_create(
        actor=admin_a, org=a.org, name="cov-app", package_type="yaml", files={"cm.yaml": MANIFESTS}
    )
    repository = repositories.repository_create(
        actor=admin_a, project=a.project, name="cov-repo", kind="git", url="https://127.0.0.1:9/cov.git"
    )
    registry = registries.registry_create(
        actor=admin_a, org=a.org, name="cov-registry", provider="generic", endpoint="127.0.0.1:9"
    )
    application = Application.objects.create(  # a sample for a read-only page: what it offers
        org=a.org,
        project=a.project,
        compute_instance=instance,
        name="cov-application",
        owner=a.users["workspace_admin"],
        package_type="yaml",
    )
    from billing import budgets, cost_profiles

    rates = cost_profiles.cost_profile_set(  # not in force yet: the one kind a studio delete is offered for
        actor=op, cluster=cluster, effective_from=now + dt.timedelta(days=1), currency="USD"
    )
    budget = budgets.budget_set(actor=admin_a, org=a.org, project=a.project, amount="100")
    return Samples(
        objects={
            "billing.costprofile": rates,
            "billing.budget": budget,
            # Another operator's pending request (the sample operator asks in the "add" operation).
            "tenancy.supportaccess": support.support_request(
                actor=make_operator(username="cov-support"),
                org=a.org,
                reason="cov",
                level="read",
                duration_minutes=60,
            ),
            "catalog.catalogapplication": catalog_app,
            "catalog.repository": repository,
            "catalog.containerregistry": registry,
            "instances.application": application,
            "inventory.cluster": cluster,
            "inventory.datacenter": datacenter,
            "inventory.storage": storage,
            "inventory.agent": agent,
            "inventory.datacenteragent": mapping,
            "inventory.migchange": mig,
            "inventory.node": cluster.nodes.first(),
            "catalog.environmenttemplate": template,
            "catalog.templateversion": draft,
            "catalog.computeprofile": profile,
            "catalog.serviceprofile": service_profile,
            "catalog.allowedcustomresource": allowed_cr,
            "tenancy.organization": a.org,
            "tenancy.project": a.spare_project,
            "tenancy.user": a.users["collaborator_ro"],
            "tenancy.roleassignment": RoleAssignment.objects.filter(project=a.project).first(),
            "tenancy.invitation": invitation,
            "tenancy.idpgroupmapping": idp,
            "tenancy.quota": a.project.quota,
            "tenancy.instancelimit": instance_limit,
            "instances.computeinstance": instance,
            "instances.warmpool": pool,
            "instances.standbyinstance": standby,
            "django_q.success": success,
            "django_q.failure": failure,
            "django_q.schedule": Schedule.objects.first(),
            "django_q.ormq": None,
            "paas.apitoken": token,
            "paas.auditevent": AuditEvent.objects.filter(chain=a.org.pk).first(),
            "paas.workerheartbeat": None,
            "paas.auditsettings": AuditSettings.objects.get_or_create(pk=1)[0],
            "paas.auditsink": audit_sink_create(
                actor=admin_a,
                org=a.org,
                name="cov-sink",
                kind="https",
                url="https://127.0.0.1:9/audit",
                secret="cov-sink-hmac-key-0123",
            ),
            "paas.orgdatakey": None,  # one row per org on the keys page (paas/admin_org_keys.py)
            "paas.brand": brand_update(actor=world.operator, org=a.org, product_name="Orga Cloud"),
            "billing.usagerecord": None,  # the chargeback dashboard (read-only; no row page)
            "billing.meter": None,  # instance usage: the billing API's figures (read-only; no row page)
        }
    )


# --- the HTML form a user would submit -----------------------------------------------------------------


def _submit(client, url: str, changes: dict) -> "HttpResponse":  # noqa: F821
    page = client.get(url)
    assert page.status_code == 200, (url, page.status_code)
    data = form_data(page.content.decode())
    for name, value in changes.items():
        data[name] = value if isinstance(value, list) else [value]
    return client.post(url, data)


def _url(obj, view: str) -> str:
    meta = obj._meta
    return f"/studio/{meta.app_label}/{meta.model_name}/{obj.pk}/{view}/"


def _add_url(label: str) -> str:
    return f"/studio/{label.replace('.', '/')}/add/"


def _action(client, obj, action: str, **extra):
    meta = obj._meta
    data = {"action": action, "_selected_action": [obj.pk], "index": 0, **extra}
    return client.post(f"/studio/{meta.app_label}/{meta.model_name}/", data)


def _with_prometheus(cluster):
    """The cluster with a Prometheus URL where nothing listens (the check fails fast, and is audited)."""
    type(cluster).objects.filter(pk=cluster.pk).update(prometheus_url="http://127.0.0.1:9/")
    return cluster


def _lone_datacenter():
    return Datacenter.objects.create(
        name="lone", display_name="Lone", kind="data_center", infrastructure_type="bare_metal"
    )


# --- every write the studio offers, and the event it must write --------------------------------------
# key: (model label, operation) -> (role, run(client, world, samples) -> response, expected action)


def _deletes(label: str, role: str, event: str) -> dict:
    """Deleting one object from its page and several with the changelist action: the same event each."""
    return {
        (label, "delete"): (role, lambda c, w, s: c.post(_url(s[label], "delete"), {"post": "yes"}), event),
        (label, "action:delete_selected"): (
            role,
            lambda c, w, s: _action(c, s[label], "delete_selected", post="yes"),
            event,
        ),
    }


def _profile_operations(model: str, *, service: bool) -> dict:
    """The studio operations of a compute or a service profile (the same pages, the same events)."""
    label = f"catalog.{model}"
    return {
        (label, "add"): (
            "org_admin",
            lambda c, w, s: _submit_add_profile(c, w, s, service=service),
            f"{model}.create",
        ),
        (label, "change"): (
            "org_admin",
            lambda c, w, s: _submit(c, _url(s[label], "change"), {"description": "changed"}),
            f"{model}.update",
        ),
        (label, "delete"): (
            "org_admin",
            lambda c, w, s: c.post(_url(s[label], "delete"), {"post": "yes"}),
            f"{model}.delete",
        ),
        (label, "page:share"): (
            "org_admin",
            lambda c, w, s: c.post(_url(s[label], "share"), {"sharing": "all"}),
            f"{model}.share",
        ),
        (label, "page:launch"): (
            "org_admin",
            lambda c, w, s: c.post(_url(s[label], "launch"), {"targets": [str(w.a.spare_project.pk)]}),
            f"{model}.share",
        ),
        (label, "page:clone"): (
            "org_admin",
            lambda c, w, s: c.post(
                _url(s[label], "clone"),
                {"name": "cloned-s" if service else "cloned", "target_project": str(w.a.project.pk)},
            ),
            f"{model}.clone",
        ),
    }


def _integration_operations(model: str, add: dict, event: str) -> dict:
    """The studio operations of an integration (repositories, registries, the application catalog)."""
    label = f"catalog.{model}"
    return {
        (label, "add"): (
            "org_admin",
            lambda c, w, s: _submit(c, _add_url(label), {"project": str(w.a.project.pk), **add}),
            f"{event}.create",
        ),
        (label, "change"): (
            "org_admin",
            lambda c, w, s: _submit(c, _url(s[label], "change"), {"description": "changed"}),
            f"{event}.update",
        ),
        (label, "delete"): (
            "org_admin",
            lambda c, w, s: c.post(_url(s[label], "delete"), {"post": "yes"}),
            f"{event}.delete",
        ),
        (label, "page:share"): (
            "org_admin",
            lambda c, w, s: c.post(_url(s[label], "share"), {"sharing": "all"}),
            f"{event}.share" if model == "catalogapplication" else f"{event}.update",
        ),
    }


OPERATIONS = {
    **_integration_operations(
        "catalogapplication",
        {
            "name": "added",
            "package_type": "yaml",
            "sync": "upload",
            "files": '{"cm.yaml": "kind: ConfigMap\\napiVersion: v1\\nmetadata:\\n  name: x\\n"}',
        },
        "catalogapplication",
    ),
    ("catalog.catalogapplication", "action:publish"): (
        "org_admin",
        lambda c, w, s: _action(c, s["catalog.catalogapplication"], "publish"),
        "catalogapplication.update",
    ),
    ("catalog.catalogapplication", "action:withdraw"): (
        "org_admin",
        lambda c, w, s: (
            _action(c, s["catalog.catalogapplication"], "publish")
            and _action(c, s["catalog.catalogapplication"], "withdraw")
        ),
        "catalogapplication.update",
    ),
    **_integration_operations(
        "repository", {"name": "added", "kind": "git", "url": "https://127.0.0.1:9/added.git"}, "repository"
    ),
    ("catalog.repository", "action:check_now"): (
        "org_admin",
        lambda c, w, s: _action(c, s["catalog.repository"], "check_now"),
        "repository.check_requested",
    ),
    **_integration_operations(
        "containerregistry",
        {"name": "added", "provider": "generic", "endpoint": "127.0.0.1:9"},
        "containerregistry",
    ),
    ("catalog.containerregistry", "action:check_now"): (
        "org_admin",
        lambda c, w, s: _action(c, s["catalog.containerregistry"], "check_now"),
        "containerregistry.check",
    ),
    ("tenancy.supportaccess", "add"): (
        "operator",
        lambda c, w, s: _submit(
            c,
            _add_url("tenancy.supportaccess"),
            {"org": str(w.a.org.pk), "reason": "cov", "level": "read", "duration_minutes": "60"},
        ),
        "support.request",
    ),
    ("tenancy.supportaccess", "page:settings"): (
        "org_admin",
        lambda c, w, s: c.post(
            f"/studio/tenancy/supportaccess/settings/{w.a.org.pk}/",
            {"support_preapproval": "read", "support_max_minutes": "60"},
        ),
        "support.settings",
    ),
    ("paas.apitoken", "add"): (
        "org_admin",
        lambda c, w, s: _submit(c, _add_url("paas.apitoken"), {"name": "ci", "expires_in_days": "30"}),
        "api_token.create",
    ),
    ("paas.apitoken", "action:revoke"): (
        "org_admin",
        lambda c, w, s: _action(c, s["paas.apitoken"], "revoke"),
        "api_token.revoke",
    ),
    ("tenancy.organization", "add"): (
        "operator",
        lambda c, w, s: _submit(
            c,
            _add_url("tenancy.organization"),
            {
                "name": "covorg",
                "display_name": "Cov",
                "admin_email": "boss@cov.example.com",
                "admin_first_name": "B",
                "admin_last_name": "O",
            },
        ),
        "org.create",
    ),
    ("tenancy.organization", "change"): (
        "org_admin",
        lambda c, w, s: _submit(c, _url(s["tenancy.organization"], "change"), {"display_name": "Renamed"}),
        "org.update",
    ),
    ("tenancy.project", "add"): (
        "org_admin",
        lambda c, w, s: _submit(
            c, _add_url("tenancy.project"), {"org": str(w.a.org.pk), "name": "covproj", "display_name": "P"}
        ),
        "project.create",
    ),
    ("tenancy.project", "change"): (
        "org_admin",
        lambda c, w, s: _submit(c, _url(s["tenancy.project"], "change"), {"description": "changed"}),
        "project.update",
    ),
    **_deletes("tenancy.project", "org_admin", "project.delete"),
    ("tenancy.user", "change"): (
        "operator",
        lambda c, w, s: _submit(c, _url(s["tenancy.user"], "change"), {"first_name": "Changed"}),
        "user.update",
    ),
    ("tenancy.user", "action:reset_mfa"): (
        "org_admin",
        lambda c, w, s: _action(c, s["tenancy.user"], "reset_mfa"),
        "mfa.reset",
    ),
    ("tenancy.user", "action:require_email_verification"): (
        "operator",
        lambda c, w, s: _action(c, s["tenancy.user"], "require_email_verification"),
        "email.verification_required",
    ),
    ("tenancy.roleassignment", "add"): (
        "org_admin",
        lambda c, w, s: _submit(
            c,
            _add_url("tenancy.roleassignment"),
            {
                "user": str(w.a.users["collaborator_rw"].pk),
                "role": Role.WORKSPACE_ADMIN.value,
                "project": str(w.a.spare_project.pk),
                "org": str(w.a.org.pk),
            },
        ),
        "role.assign",
    ),
    **_deletes("tenancy.roleassignment", "org_admin", "role.revoke"),
    ("tenancy.roleassignment", "action:remove_from_org"): (
        "org_admin",
        lambda c, w, s: _action(c, s["tenancy.roleassignment"], "remove_from_org", confirm="yes"),
        "org.member_remove",
    ),
    ("tenancy.invitation", "add"): (
        "org_admin",
        lambda c, w, s: _submit(
            c,
            _add_url("tenancy.invitation"),
            {
                "email": "new@example.com",
                "role": Role.COLLABORATOR_RO.value,
                "org": str(w.a.org.pk),
                "project": str(w.a.project.pk),
            },
        ),
        "invitation.create",
    ),
    ("tenancy.invitation", "action:revoke"): (
        "org_admin",
        lambda c, w, s: _action(c, s["tenancy.invitation"], "revoke"),
        "invitation.revoke",
    ),
    ("tenancy.idpgroupmapping", "add"): (
        "org_admin",
        lambda c, w, s: _submit(
            c,
            _add_url("tenancy.idpgroupmapping"),
            {
                "org": str(w.a.org.pk),
                "group": "g2",
                "role": Role.COLLABORATOR_RO.value,
                "project": str(w.a.project.pk),
            },
        ),
        "idp_mapping.create",
    ),
    **_deletes("tenancy.idpgroupmapping", "org_admin", "idp_mapping.delete"),
    ("tenancy.quota", "change"): (
        "org_admin",
        lambda c, w, s: _submit(c, _url(s["tenancy.quota"], "change"), {"gpus": "3"}),
        "quota.update",
    ),
    ("tenancy.instancelimit", "add"): (
        "org_admin",
        lambda c, w, s: _submit(
            c, _add_url("tenancy.instancelimit"), {"org": str(w.a.org.pk), "max_gpus_per_user": "8"}
        ),
        "instance_limit.set",
    ),
    ("tenancy.instancelimit", "change"): (
        "org_admin",
        lambda c, w, s: _submit(
            c, _url(s["tenancy.instancelimit"], "change"), {"max_active_instances_per_user": "3"}
        ),
        "instance_limit.set",
    ),
    **_deletes("tenancy.instancelimit", "org_admin", "instance_limit.delete"),
    ("inventory.datacenter", "add"): (
        "operator",
        lambda c, w, s: _submit(
            c,
            _add_url("inventory.datacenter"),
            {"name": "dc9", "display_name": "DC9", "kind": "data_center", "infrastructure_type": "vsphere"},
        ),
        "datacenter.create",
    ),
    ("inventory.datacenter", "change"): (
        "operator",
        lambda c, w, s: _submit(c, _url(s["inventory.datacenter"], "change"), {"display_name": "Renamed"}),
        "datacenter.update",
    ),
    ("inventory.datacenter", "delete"): (
        "operator",
        lambda c, w, s: c.post(_url(_lone_datacenter(), "delete"), {"post": "yes"}),
        "datacenter.delete",
    ),
    ("inventory.datacenter", "action:delete_selected"): (
        "operator",
        lambda c, w, s: _action(c, _lone_datacenter(), "delete_selected", post="yes"),
        "datacenter.delete",
    ),
    ("inventory.cluster", "add"): (
        "operator",
        lambda c, w, s: _submit(
            c,
            _add_url("inventory.cluster"),
            {"name": "cov2", "display_name": "Cov 2", "tenancy": "shared", "new_kubeconfig": DEAD_KUBECONFIG},
        ),
        "cluster.register",
    ),
    ("inventory.cluster", "change"): (
        "operator",
        lambda c, w, s: _submit(c, _url(s["inventory.cluster"], "change"), {"display_name": "Renamed"}),
        "cluster.update",
    ),
    ("inventory.cluster", "delete"): (
        "operator",
        lambda c, w, s: c.post(_url(make_synced_cluster(name="lone"), "delete"), {"post": "yes"}),
        "cluster.delete",
    ),
    ("inventory.cluster", "action:delete_selected"): (
        "operator",
        lambda c, w, s: _action(c, make_synced_cluster(name="lone"), "delete_selected", post="yes"),
        "cluster.delete",
    ),
    ("inventory.cluster", "action:refresh"): (
        "operator",
        lambda c, w, s: _action(c, s["inventory.cluster"], "refresh"),
        "cluster.refresh_request",
    ),
    ("inventory.cluster", "action:prometheus_test"): (
        "operator",
        lambda c, w, s: _action(c, _with_prometheus(s["inventory.cluster"]), "prometheus_test"),
        "cluster.prometheus_check",
    ),
    ("inventory.migchange", "add"): (
        "operator",
        lambda c, w, s: _submit(
            c,
            _add_url("inventory.migchange"),
            {"cluster": str(s["inventory.cluster"].pk), "node_names": "n0", "config": "all-1g.5gb"},
        ),
        "mig.request",
    ),
    ("inventory.storage", "add"): (
        "operator",
        lambda c, w, s: _submit(
            c,
            _add_url("inventory.storage"),
            {"name": "st9", "kind": "high-speed-storage", "storage_class": "fast"},
        ),
        "storage.create",
    ),
    ("inventory.storage", "change"): (
        "operator",
        lambda c, w, s: _submit(c, _url(s["inventory.storage"], "change"), {"storage_class": "faster"}),
        "storage.update",
    ),
    **_deletes("inventory.storage", "operator", "storage.delete"),
    ("inventory.agent", "add"): (
        "operator",
        lambda c, w, s: _submit(c, _add_url("inventory.agent"), {"name": "agent9"}),
        "agent.create",
    ),
    ("inventory.agent", "delete"): (
        "operator",
        lambda c, w, s: c.post(_url(Agent.objects.create(name="lone"), "delete"), {"post": "yes"}),
        "agent.delete",
    ),
    ("inventory.agent", "action:delete_selected"): (
        "operator",
        lambda c, w, s: _action(c, Agent.objects.create(name="lone"), "delete_selected", post="yes"),
        "agent.delete",
    ),
    ("inventory.datacenteragent", "add"): (
        "operator",
        lambda c, w, s: _submit(
            c,
            _add_url("inventory.datacenteragent"),
            {"datacenter": str(s["inventory.datacenter"].pk), "agent": str(s["inventory.agent"].pk)},
        ),
        "datacenter.agent",
    ),
    ("inventory.datacenteragent", "change"): (
        "operator",
        lambda c, w, s: _submit(
            c,
            _url(s["inventory.datacenteragent"], "change"),
            {"agent": str(Agent.objects.create(name="agent-b").pk)},
        ),
        "datacenter.agent",
    ),
    **_deletes("inventory.datacenteragent", "operator", "datacenter.agent"),
    ("catalog.environmenttemplate", "add"): (
        "org_admin",
        lambda c, w, s: _submit(
            c,
            _add_url("catalog.environmenttemplate"),
            {"project": str(w.a.project.pk), "name": "tpl9", "display_name": "T9"},
        ),
        "template.create",
    ),
    ("catalog.environmenttemplate", "change"): (
        "org_admin",
        lambda c, w, s: _submit(
            c, _url(s["catalog.environmenttemplate"], "change"), {"description": "now described"}
        ),
        "template.update",
    ),
    ("catalog.environmenttemplate", "delete"): (
        "org_admin",
        lambda c, w, s: c.post(
            _url(
                catalog_services.template_create(
                    actor=w.a.users["org_admin"], project=w.a.project, name="t0"
                ),
                "delete",
            ),
            {"post": "yes"},
        ),
        "template.delete",
    ),
    ("catalog.environmenttemplate", "page:share"): (
        "org_admin",
        lambda c, w, s: c.post(_url(s["catalog.environmenttemplate"], "share"), {"sharing": "all"}),
        "environmenttemplate.share",
    ),
    ("catalog.templateversion", "add"): (
        "org_admin",
        lambda c, w, s: _submit(
            c,
            _add_url("catalog.templateversion"),
            {"template": str(s["catalog.environmenttemplate"].pk), "version": "v9", "manifests": MANIFESTS},
        ),
        "template_version.create",
    ),
    ("catalog.templateversion", "change"): (
        "org_admin",
        lambda c, w, s: _submit(
            c, _url(s["catalog.templateversion"], "change"), {"manifests": MANIFESTS.replace("a: b", "a: c")}
        ),
        "template_version.update",
    ),
    ("catalog.templateversion", "action:publish"): (
        "org_admin",
        lambda c, w, s: _action(c, s["catalog.templateversion"], "publish"),
        "template_version.publish",
    ),
    **_profile_operations("computeprofile", service=False),
    **_profile_operations("serviceprofile", service=True),
    ("catalog.allowedcustomresource", "add"): (
        "operator",
        lambda c, w, s: _submit(
            c, _add_url("catalog.allowedcustomresource"), {"group": "kubeflow.org", "kind": "PyTorchJob"}
        ),
        "custom_resource.allow",
    ),
    **_deletes("catalog.allowedcustomresource", "operator", "custom_resource.disallow"),
    # Retrying is managing the workspace's instances: an org admin who also works in the workspace (an
    # operator sees inside no org without a support access, and an org admin's permissions do not
    # manage instances).
    ("instances.computeinstance", "action:retry"): (
        "org_admin",
        lambda c, w, s: _working_in_the_workspace(w) and _action(c, s["instances.computeinstance"], "retry"),
        "instance.retry",
    ),
    ("instances.warmpool", "add"): (
        "operator",
        lambda c, w, s: _submit(
            c,
            _add_url("instances.warmpool"),
            {
                "profile": str(s["instances.warmpool"].profile_id),
                "datacenter": str(s["inventory.datacenter"].pk),
            },
        ),
        "warm_pool.create",
    ),
    ("instances.warmpool", "change"): (
        "operator",
        lambda c, w, s: _submit(c, _url(s["instances.warmpool"], "change"), {"desired": "3"}),
        "warm_pool.update",
    ),
    **_deletes("instances.warmpool", "operator", "warm_pool.delete"),
    ("instances.warmpool", "action:converge_now"): (
        "operator",
        lambda c, w, s: _action(c, s["instances.warmpool"], "converge_now"),
        "warm_pool.converge",
    ),
    ("billing.costprofile", "add"): (
        "operator",
        lambda c, w, s: _submit(
            c, _add_url("billing.costprofile"), {"cluster": str(s["billing.costprofile"].cluster_id)}
        ),
        "cost_profile.create",
    ),
    **_deletes("billing.costprofile", "operator", "cost_profile.delete"),
    ("billing.budget", "add"): (
        "org_admin",
        lambda c, w, s: _submit(
            c, _add_url("billing.budget"), {"org": str(w.a.org.pk), "amount": "50", "currency": "USD"}
        ),
        "budget.set",
    ),
    ("billing.budget", "change"): (
        "org_admin",
        lambda c, w, s: _submit(c, _url(s["billing.budget"], "change"), {"amount": "75"}),
        "budget.set",
    ),
    **_deletes("billing.budget", "org_admin", "budget.delete"),
    ("django_q.success", "action:resubmit"): (
        "operator",
        lambda c, w, s: _action(c, s["django_q.success"], "resubmit"),
        "task.resubmit",
    ),
    ("django_q.failure", "action:resubmit"): (
        "operator",
        lambda c, w, s: _action(c, s["django_q.failure"], "resubmit"),
        "task.resubmit",
    ),
    ("paas.auditsettings", "change"): (
        "operator",
        lambda c, w, s: _submit(
            c,
            _url(s["paas.auditsettings"], "change"),
            {"kubectl_reads": "sample", "kubectl_sample_every": "5"},
        ),
        "audit.settings_update",
    ),
    ("paas.auditsink", "add"): (
        "org_admin",
        lambda c, w, s: _submit(
            c,
            _add_url("paas.auditsink"),
            {
                "org": str(w.a.org.pk),
                "name": "added",
                "kind": "syslog",
                "url": "tls://127.0.0.1:6514",
            },
        ),
        "audit_sink.create",
    ),
    ("paas.auditsink", "change"): (
        "org_admin",
        lambda c, w, s: _submit(c, _url(s["paas.auditsink"], "change"), {"backoff_max_seconds": "600"}),
        "audit_sink.update",
    ),
    **_deletes("paas.auditsink", "org_admin", "audit_sink.delete"),
    ("paas.auditsink", "action:retry_now"): (
        "org_admin",
        lambda c, w, s: _action(c, s["paas.auditsink"], "retry_now"),
        "audit_sink.retry",
    ),
    ("paas.brand", "add"): (
        "operator",
        lambda c, w, s: _submit(
            c, _add_url("paas.brand"), {"org": str(w.b.org.pk), "product_name": "B Cloud"}
        ),
        "brand.create",
    ),
    ("paas.brand", "change"): (
        "operator",
        lambda c, w, s: _submit(c, _url(s["paas.brand"], "change"), {"product_name": "Orga Cloud 2"}),
        "brand.update",
    ),
    **_deletes("paas.brand", "operator", "brand.delete"),
    ("paas.orgdatakey", "page:rotate"): (
        "org_admin",
        lambda c, w, s: c.post(f"/studio/paas/orgdatakey/{w.a.org.pk}/rotate/"),
        "org_key.rotate",
    ),
    ("paas.orgdatakey", "page:destroy"): (
        "operator",
        lambda c, w, s: (
            tenancy_services.org_update(actor=w.operator, org=w.b.org, is_active=False),
            c.post(f"/studio/paas/orgdatakey/{w.b.org.pk}/destroy/", {"confirm": w.b.org.name}),
        )[1],
        "org_key.destroy",
    ),
}

# Offered by a page but writing nothing, by design; each with its reason.
READ_ONLY = {
    ("catalog.templateversion", "page:share"): "sharing belongs to templates; a version's share page is 403",
    ("catalog.serviceprofile", "page:wizardtables"): "the wizard's settings tables (htmx): a read",
    ("catalog.serviceprofile", "page:wizardstorage"): "the wizard's storage list (htmx): a read",
}


def _submit_add_profile(client, world, samples, service=False):
    label = "catalog.serviceprofile" if service else "catalog.computeprofile"
    changes = {
        "project": str(world.a.project.pk),
        "name": "added-s" if service else "added",
        "display_name": "Added",
        "template_version": str(samples["catalog.computeprofile"].template_version.pk),
    }
    if service:
        changes["service_type"] = "notebook"
    else:
        changes.update(
            {"resource_groups-TOTAL_FORMS": "1"}
            | {f"resource_groups-0-{k}": str(v) for k, v in ONE_A100[0].items()}
        )
    return _submit(client, _add_url(label), changes)


def _working_in_the_workspace(world) -> bool:
    admin = world.a.users["org_admin"]
    tenancy_services.role_assign(actor=admin, user=admin, role=Role.WORKSPACE_ADMIN, project=world.a.project)
    return True


def test_every_studio_operation_is_covered(world, samples):
    rf = RequestFactory()
    offered = set()
    for model, model_admin in admin.site._registry.items():
        label = model._meta.label_lower
        for role in ["operator", *world.a.users]:  # every role; the studio admits only some
            request = rf.get("/studio/")
            request.user = user_for(world, role)
            if admin.site.has_permission(request) and model_admin.has_module_permission(request):
                offered |= {(label, op) for op in _offered(model_admin, request, samples[label])}
    unknown = offered - set(OPERATIONS) - set(READ_ONLY)
    assert not unknown, f"studio operations neither audited nor listed read-only: {sorted(unknown)}"
    stale = (set(OPERATIONS) | set(READ_ONLY)) - offered
    assert not stale, f"listed here but no longer offered by the studio: {sorted(stale)}"


@pytest.mark.parametrize("key", sorted(OPERATIONS), ids=lambda key: f"{key[0]}:{key[1]}")
def test_studio_operation_writes_its_audit_event(world, samples, client, key):
    role, run, expected = OPERATIONS[key]
    client.force_login(user_for(world, role))
    mark = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first()
    response = run(client, world, samples)
    context = getattr(response, "context_data", None) or {}
    form = getattr(context.get("adminform"), "form", None) or context.get("form")
    assert response.status_code == 302, (
        response.status_code,
        form.errors if form is not None else "",
        re.findall(r'class="errorlist[^"]*"[^>]*>(.*?)</ul>', response.content.decode(), re.S)[:5],
    )
    errors = [m.message for m in get_messages(response.wsgi_request) if m.level >= message_levels.ERROR]
    assert not errors, errors
    actions = list(AuditEvent.objects.filter(pk__gt=mark).values_list("action", flat=True))
    assert expected in actions, actions
