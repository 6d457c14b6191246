"""A bulk data set for measuring pages and lists at scale (issue 20): orgs, their members, workspaces,
quotas, compute instances (most of them deleted) with their runs, the services deployed onto them, and
each org's audit chain, written with bulk inserts.

``generate(size=FULL)`` writes 1,000 orgs, 10,000 workspaces and 100,000 instances in minutes; tests use
tiny sizes (``Size(orgs=2, ...)``). The rows are those the services would leave (role assignments with
their django-guardian permissions, a quota row per org and per workspace, a snapshot of the profile in
every instance, one audit event per state change), but written set-wise: a service call per row would
take hours. Every org's audit trail is imported as a sealed hash chain (``paas.audit.audit_import_sealed``:
``audit_verify`` passes; checkpointed on commit); the usage counters and the clusters' capacity held
are rebuilt from the instances at the end.

Each call adds a new set of orgs (names carry a prefix unique to the call), so a test can grow the data
(measure, generate again, measure) without colliding with what is there.
"""

import itertools
import json
import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection, connections, models, transaction
from django.utils import timezone

from catalog import services as catalog_services
from catalog.models import ComputeProfile, ServiceProfile
from instances.capacity import capacity_rebuild
from instances.counters import counters_rebuild
from instances.models import ComputeInstance, ComputeInstanceUserObjectPermission, Run, ServiceInstance
from instances.pool_claims import launch_snapshot
from instances.quota import profile_totals
from instances.service_instances import service_snapshot
from instances.states import State
from inventory.models import Cluster
from paas.audit import Entry, audit_import_sealed
from tenancy.models import (
    Organization,
    OrganizationUserObjectPermission,
    Project,
    ProjectUserObjectPermission,
    Quota,
    RoleAssignment,
    User,
)
from tenancy.roles import ORG_PERMISSIONS, PROJECT_PERMISSIONS, Role
from tests.factories import PASSWORD, make_profile, make_synced_cluster

BATCH = 5000
MANIFESTS = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: scale-{{ instance.name }}\ndata:\n  a: b\n"
CPU_ONLY = [{"gpu_model": "", "gpu_count": 0, "cpu_cores": "2", "memory_gib": 8, "storage_gib": 10}]
ONE_GPU = [
    {"gpu_model": "A100-SXM4-40GB", "gpu_count": 1, "cpu_cores": "4", "memory_gib": 16, "storage_gib": 10}
]


@dataclass(frozen=True)
class Size:
    """How much to generate. Per org: ``members`` people (the first is its org admin, the second a
    workspace admin of every team workspace, the rest read-write/read-only collaborators), each with a
    personal workspace, and team workspaces up to ``workspaces_per_org``. Per workspace:
    ``instances_per_workspace`` compute instances of which ``live_per_workspace`` are running (the
    rest deleted), each with ``services_per_instance`` services (deleted with it)."""

    orgs: int
    workspaces_per_org: int = 10
    members: int = 4
    instances_per_workspace: int = 10
    live_per_workspace: int = 1
    services_per_instance: int = 1
    clusters: int = 20

    @property
    def workspaces(self) -> int:
        return self.orgs * self.workspaces_per_org

    @property
    def instances(self) -> int:
        return self.workspaces * self.instances_per_workspace


FULL = Size(orgs=1000)  # 1,000 orgs, 10,000 workspaces, 100,000 instances (90,000 deleted), 100,000 services


@dataclass
class Dataset:
    """What ``generate`` wrote (ids), and the people a test or benchmark signs in as."""

    prefix: str
    org_ids: list[int] = field(default_factory=list)
    project_ids: list[int] = field(default_factory=list)
    admin_ids: list[int] = field(default_factory=list)  # each org's org admin, in org order
    workspace_admin_ids: list[int] = field(default_factory=list)  # each org's workspace admin
    counts: dict = field(default_factory=dict)


class _Clock:
    """Increasing timestamps in the past: audit events of a chain must be in time order."""

    def __init__(self, start: datetime):
        self.now = start

    def tick(self, seconds: float = 1.0) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


class _Chain:
    """One org's audit trail, collected in time order: chained (seq, prev_hash, hash) when imported
    (``paas.audit.audit_import_sealed``)."""

    def __init__(self, org_id: int):
        self.org_id = org_id
        self.entries: list[Entry] = []

    def add(
        self,
        *,
        at: datetime,
        actor: User | None,
        action: str,
        target_type: str,
        target_id,
        target_repr,
        project_id=None,
        details=None,
    ) -> None:
        self.entries.append(
            Entry(
                action=action,
                actor_id=actor.pk if actor else None,
                actor_repr=actor.email if actor else "system",
                target_type=target_type,
                target_id=str(target_id),
                target_repr=str(target_repr)[:255],
                details=details or {},
                project_id=project_id,
                created_at=at,
                client="api",
                request_id=uuid.uuid4().hex,
            )
        )


@dataclass
class _Catalog:
    operator: User
    clusters: list[Cluster]
    compute: list[ComputeProfile]
    service: ServiceProfile
    snapshots: dict
    totals: dict
    service_snapshot: dict


def _operator() -> User:
    operator = User.objects.filter(is_superuser=True).order_by("pk").first()
    if operator is None:
        from tests.factories import make_operator

        operator = make_operator(username="scale-operator", email="scale-operator@example.com")
    return operator


def _catalog(size: Size, prefix: str) -> _Catalog:
    """System profiles (through the catalog's services: real template versions and snapshots) and
    clusters with room for every running instance (as the inventory sync would leave them)."""
    operator = _operator()
    live_gpus = size.workspaces * size.live_per_workspace  # at most one GPU each
    nodes = max(1, math.ceil(live_gpus / max(size.clusters, 1) / 8) + 1)
    clusters = [make_synced_cluster(name=f"{prefix}-c{i}", nodes=nodes) for i in range(size.clusters)]
    compute = [
        make_profile(
            actor=operator,
            project=None,
            manifests=MANIFESTS,
            resource_groups=groups,
            name=f"{prefix}-{kind}",
            template=f"{prefix}-{kind}",
        )
        for kind, groups in (("gpu", ONE_GPU), ("cpu", CPU_ONLY))
    ]
    service = catalog_services.profile_create(
        actor=operator,
        model=ServiceProfile,
        project=None,
        name=f"{prefix}-notebook",
        service_type="notebook",
        template_version=compute[1].template_version,
        published=True,
    )
    return _Catalog(
        operator=operator,
        clusters=clusters,
        compute=compute,
        service=service,
        snapshots={p.pk: launch_snapshot(p) for p in compute},
        totals={(p.pk, c.pk): dict(profile_totals(p, cluster_id=c.pk)) for p in compute for c in clusters},
        service_snapshot=service_snapshot(service, datacenter=None, storage=[]),
    )


_PLAIN_TYPES = {
    "AutoField",
    "BigAutoField",
    "BigIntegerField",
    "BooleanField",
    "CharField",
    "DateTimeField",
    "DecimalField",
    "ForeignKey",
    "OneToOneField",
    "IntegerField",
    "PositiveBigIntegerField",
    "PositiveIntegerField",
    "SlugField",
    "TextField",
}
# A field class whose value preparation is Django's own for its type (not an encrypted field's).
_PLAIN_PREP = {
    cls: cls.get_db_prep_save
    for cls in (
        models.AutoField,
        models.BigAutoField,
        models.BigIntegerField,
        models.BooleanField,
        models.CharField,
        models.DateTimeField,
        models.DecimalField,
        models.EmailField,
        models.ForeignKey,
        models.OneToOneField,
        models.IntegerField,
        models.PositiveBigIntegerField,
        models.PositiveIntegerField,
        models.SlugField,
        models.TextField,
    )
}


def _create(model, objs: list) -> list:
    """Insert ``objs`` with COPY (``bulk_create`` binds every value of a batch client-side: 3 ms a row
    with a profile snapshot, hours for the full set). Their ids are taken from the table's sequence first
    and set on the objects; each field's value is written as given: a generated ``created_at`` stays
    (``auto_now``/``auto_now_add`` only fill what is empty), and a JSON value shared by many rows (a
    snapshot) is serialised once."""
    if not objs:
        return objs
    table = model._meta.db_table
    fields = list(model._meta.concrete_fields)
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", [table, len(objs)]
        )
        for obj, (pk,) in zip(objs, cursor.fetchall(), strict=True):
            obj.pk = pk
    serialised: dict[int, str] = {}  # by id(): every value is held by ``objs`` until the copy ends

    def as_json(field, value) -> str | None:
        if value is None:
            return None
        key = id(value)
        if key not in serialised:
            serialised[key] = json.dumps(value, cls=field.encoder)
        return serialised[key]

    now = timezone.now()
    db = connections["default"]

    def convert(f):
        """How a field's value is written: as it is for plain columns (ints, text, times, ids)."""
        if isinstance(f, models.JSONField):
            return lambda value: as_json(f, value)
        if f.get_internal_type() in _PLAIN_TYPES and type(f).get_db_prep_save is _PLAIN_PREP.get(type(f)):
            return None
        return lambda value: f.get_db_prep_save(value, db)

    converters = [
        (f.attname, convert(f), f.auto_now or f.auto_now_add if hasattr(f, "auto_now") else False)
        for f in fields
    ]

    def row(obj) -> list:
        values = []
        for attname, conv, auto in converters:
            value = getattr(obj, attname)
            if value is None and auto:
                value = now
            values.append(value if conv is None else conv(value))
        return values

    columns = ", ".join(quote(f.column) for f in fields)
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(f"COPY {quote(table)} ({columns}) FROM STDIN") as copy,
    ):
        for obj in objs:
            copy.write_row(row(obj))
    return objs


def _perms(model, codenames: set[str]) -> dict[str, Permission]:
    ct = ContentType.objects.get_for_model(model)
    return {p.codename: p for p in Permission.objects.filter(content_type=ct, codename__in=codenames)}


def generate(*, size: Size, prefix: str | None = None, progress=None) -> Dataset:
    """Write ``size`` worth of tenants with bulk inserts, in one transaction; returns their ids.

    ``progress(message)`` is told what is being written (the benchmark prints it)."""
    prefix = prefix or "s" + uuid.uuid4().hex[:6]
    say = progress or (lambda message: None)
    data = Dataset(prefix=prefix)
    with transaction.atomic():
        catalog = _catalog(size, prefix)
        start = datetime.now(UTC) - timedelta(days=60)
        clock = _Clock(start)
        password = make_password(PASSWORD)  # one hash for everyone: hashing 4,000 passwords takes minutes

        say("orgs, users and quotas")
        orgs = _create(
            Organization,
            [Organization(name=f"{prefix}-o{i}", display_name=f"Org {prefix} {i}") for i in range(size.orgs)],
        )
        _create(Quota, [Quota(org=org) for org in orgs])
        users = _create(
            User,
            [
                User(
                    username=f"{prefix}-o{i}-u{m}",
                    email=f"u{m}@{prefix}-o{i}.example.com",
                    first_name=f"User{m}",
                    last_name=f"Org{i}",
                    password=password,
                    is_staff=m == 0,  # org admins open the studio (tenancy's _sync_flags)
                )
                for i in range(size.orgs)
                for m in range(size.members)
            ],
        )
        members = {org.pk: users[i * size.members : (i + 1) * size.members] for i, org in enumerate(orgs)}

        say("workspaces")
        projects: list[Project] = []
        for org in orgs:
            people = members[org.pk]
            for person in people[: size.workspaces_per_org]:
                projects.append(
                    Project(
                        org=org,
                        name=f"personal-{person.username}"[:63],
                        display_name=f"{person.first_name}'s workspace",
                        kind=Project.Kind.PERSONAL,
                        owner=person,
                    )
                )
            for n in range(max(0, size.workspaces_per_org - len(people))):
                projects.append(Project(org=org, name=f"team-{n}", display_name=f"Team {n}"))
        projects = _create(Project, projects)
        _create(Quota, [Quota(project=p) for p in projects])
        by_org: dict[int, list[Project]] = {}
        for p in projects:
            by_org.setdefault(p.org_id, []).append(p)

        say("roles and permissions")
        team_roles = [Role.WORKSPACE_ADMIN, Role.COLLABORATOR_RW, Role.COLLABORATOR_RO]
        assignments: list[RoleAssignment] = []
        chains = {org.pk: _Chain(org.pk) for org in orgs}
        for org in orgs:
            people, chain = members[org.pk], chains[org.pk]
            chain.add(
                at=clock.tick(),
                actor=catalog.operator,
                action="org.onboard",
                target_type="tenancy.organization",
                target_id=org.pk,
                target_repr=org,
                details={"admin_email": people[0].email},
            )
            assignments.append(RoleAssignment(user=people[0], role=Role.ORG_ADMIN, org=org))
            for p in by_org[org.pk]:
                if p.kind == Project.Kind.PERSONAL:
                    assignments.append(
                        RoleAssignment(user=p.owner, role=Role.WORKSPACE_ADMIN, org=org, project=p)
                    )
                else:
                    for m, person in enumerate(people[1:]):
                        role = team_roles[min(m, len(team_roles) - 1)]
                        assignments.append(
                            RoleAssignment(user=person, role=role, org=org, project=p, created_by=people[0])
                        )
        assignments = _create(RoleAssignment, assignments)
        org_perms = _perms(Organization, set().union(*ORG_PERMISSIONS.values()))
        project_perms = _perms(Project, set().union(*PROJECT_PERMISSIONS.values()))
        org_rows, project_rows = [], []
        for a in assignments:
            if a.project_id is None:
                org_rows += [
                    OrganizationUserObjectPermission(
                        user_id=a.user_id, permission=org_perms[c], content_object_id=a.org_id
                    )
                    for c in sorted(ORG_PERMISSIONS[a.role])
                ]
            else:
                project_rows += [
                    ProjectUserObjectPermission(
                        user_id=a.user_id, permission=project_perms[c], content_object_id=a.project_id
                    )
                    for c in sorted(PROJECT_PERMISSIONS[a.role])
                ]
        _create(OrganizationUserObjectPermission, org_rows)
        _create(ProjectUserObjectPermission, project_rows)
        user_by_id = {u.pk: u for u in users}
        for a in assignments:
            chain = chains[a.org_id]
            user = user_by_id[a.user_id]
            if a.project_id is None:
                chain.add(
                    at=clock.tick(),
                    actor=user,
                    action="user.create",
                    target_type="tenancy.user",
                    target_id=user.pk,
                    target_repr=user.email,
                    details={"source": "invitation"},
                )
            chain.add(
                at=clock.tick(),
                actor=user,
                action="role.assign",
                target_type="tenancy.roleassignment",
                target_id=a.pk,
                target_repr=f"{user.email} {a.role}",
                project_id=a.project_id,
                details={"user": user.email, "role": a.role, "via": "invitation"},
            )
        for p in projects:
            chains[p.org_id].add(
                at=clock.tick(),
                actor=p.owner or members[p.org_id][0],
                action="project.create",
                target_type="tenancy.project",
                target_id=p.pk,
                target_repr=f"{prefix}/{p.name}",
                project_id=p.pk,
                details={"kind": p.kind},
            )

        say("compute instances")
        instances: list[ComputeInstance] = []
        cluster_cycle = itertools.cycle(catalog.clusters)
        for p in projects:
            people = members[p.org_id]
            owner = p.owner or people[1 % len(people)]
            for n in range(size.instances_per_workspace):
                live = n >= size.instances_per_workspace - size.live_per_workspace
                profile = catalog.compute[n % len(catalog.compute)]
                cluster = next(cluster_cycle)
                created = start + timedelta(minutes=n * 7 + p.pk % 1000)
                instances.append(
                    ComputeInstance(
                        org_id=p.org_id,
                        project=p,
                        name=f"i{n}",
                        owner=owner,
                        profile=profile,
                        snapshot=catalog.snapshots[profile.pk],
                        state=State.READY if live else State.DELETED,
                        state_reason="" if live else f"Deleted by {owner.email}.",
                        cluster=cluster,
                        namespace=f"{prefix}-{p.pk}-i{n}",
                        placement={"cluster": cluster.name, "explanation": "generated"},
                        created_at=created,
                        ready_at=created + timedelta(minutes=2),
                        deleted_at=None if live else created + timedelta(hours=3),
                        **catalog.totals[(profile.pk, cluster.pk)],
                    )
                )
        instances = _create(ComputeInstance, instances)
        owner_perms = _perms(
            ComputeInstance,
            {"view_computeinstance", "change_computeinstance", "delete_computeinstance", "use_instance"},
        )
        _create(
            ComputeInstanceUserObjectPermission,
            [
                ComputeInstanceUserObjectPermission(
                    user_id=i.owner_id, permission=perm, content_object_id=i.pk
                )
                for i in instances
                if i.state != State.DELETED
                for perm in owner_perms.values()
            ],
        )

        say("services")
        services = _create(
            ServiceInstance,
            [
                ServiceInstance(
                    org_id=i.org_id,
                    project_id=i.project_id,
                    compute_instance=i,
                    name=f"nb{k}",
                    owner_id=i.owner_id,
                    profile=catalog.service,
                    service_type="notebook",
                    snapshot=catalog.service_snapshot,
                    state=i.state,
                    host=f"nb{k}-{i.namespace}.apps.example.com",
                    cpu_millis=500,
                    memory_gib=1,
                    created_at=i.created_at + timedelta(minutes=5),
                    ready_at=i.created_at + timedelta(minutes=6),
                    deleted_at=i.deleted_at,
                )
                for i in instances
                for k in range(size.services_per_instance)
            ],
        )

        say("runs")

        def done(*, kind, at, until, **fields) -> Run:
            return Run(
                kind=kind,
                outcome=Run.Outcome.SUCCEEDED,
                attempt=1,
                created_at=at,
                started_at=at,
                finished_at=until,
                **fields,
            )

        runs = []
        for i in instances:
            runs.append(
                done(
                    kind=Run.Kind.DEPLOY,
                    at=i.created_at,
                    until=i.ready_at,
                    instance=i,
                    requested_by_id=i.owner_id,
                    log=[{"step": "apply", "message": "applied"}],
                )
            )
            if i.deleted_at:
                runs.append(
                    done(
                        kind=Run.Kind.DELETE,
                        at=i.deleted_at,
                        until=i.deleted_at,
                        instance=i,
                        requested_by_id=i.owner_id,
                    )
                )
        runs += [
            done(
                kind=Run.Kind.DEPLOY,
                at=s.created_at,
                until=s.ready_at,
                instance_id=s.compute_instance_id,
                service=s,
                requested_by_id=s.owner_id,
            )
            for s in services
        ]
        runs = _create(Run, runs)

        say("audit chains")
        services_of: dict[int, list[ServiceInstance]] = {}
        for s in services:
            services_of.setdefault(s.compute_instance_id, []).append(s)
        by_time = sorted(instances, key=lambda i: (i.created_at, i.pk))
        for i in by_time:  # launches, services and deletes, in one increasing time line per chain
            owner = user_by_id[i.owner_id]
            chain = chains[i.org_id]
            at = max(clock.tick(0.001), i.created_at)
            clock.now = at
            chain.add(
                at=at,
                actor=owner,
                action="instance.launch",
                target_type="instances.computeinstance",
                target_id=i.pk,
                target_repr=f"{i.namespace}",
                project_id=i.project_id,
                details={
                    "profile": i.snapshot.get("name", ""),
                    "cluster": i.placement["cluster"],
                    "gpus": i.gpus,
                    "gpu_units": i.gpu_units,
                },
            )
            for s in services_of.get(i.pk, []):
                chain.add(
                    at=clock.tick(0.001),
                    actor=owner,
                    action="service.launch",
                    target_type="instances.serviceinstance",
                    target_id=s.pk,
                    target_repr=s.host,
                    project_id=i.project_id,
                    details={"profile": catalog.service.name, "compute_instance": i.name},
                )
            if i.deleted_at:
                chain.add(
                    at=clock.tick(0.001),
                    actor=owner,
                    action="instance.delete",
                    target_type="instances.computeinstance",
                    target_id=i.pk,
                    target_repr=i.namespace,
                    project_id=i.project_id,
                    details={"services": [s.name for s in services_of.get(i.pk, [])]},
                )
        # chained and written with COPY by the audit's own bulk path; checkpointed on commit
        events = sum(audit_import_sealed(chain=c.org_id, entries=c.entries) for c in chains.values())

        say("usage counters and capacity")
        _rebuild_derived()
        data.org_ids = [o.pk for o in orgs]
        data.project_ids = [p.pk for p in projects]
        data.admin_ids = [members[o.pk][0].pk for o in orgs]
        data.workspace_admin_ids = [members[o.pk][1 % size.members].pk for o in orgs]
        data.counts = {
            "orgs": len(orgs),
            "users": len(users),
            "workspaces": len(projects),
            "instances": len(instances),
            "live_instances": sum(1 for i in instances if i.state != State.DELETED),
            "services": len(services),
            "runs": len(runs),
            "audit_events": events,
        }
    return data


def _rebuild_derived() -> None:
    """Recompute what is derived from instances and was not moved by the bulk inserts: the usage
    counters (``instances.counters``) and each cluster's capacity held (``instances.capacity``)."""
    counters_rebuild()
    capacity_rebuild()
