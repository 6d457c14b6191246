"""Demo data for the embedded default: an operator, an org with its admin and two users, projects.

Idempotent: running it again changes nothing and prints the same logins. Passwords are generated
once and kept in var/demo_password (never a fixed, guessable password).
"""

import secrets

from django.conf import settings
from django.db import transaction

from tenancy import services
from tenancy.models import Organization, Project, RoleAssignment, User
from tenancy.roles import Role

PEOPLE = [
    ("operator", "Olivia", "Operator", "operator@example.com"),
    ("alice", "Alice", "Admin", "alice@acme.example.com"),
    ("bob", "Bob", "Builder", "bob@acme.example.com"),
    ("carol", "Carol", "Chen", "carol@acme.example.com"),
]


def _demo_password() -> str:
    path = settings.VAR_DIR / "demo_password"
    if not path.exists():
        settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(f"demo-{secrets.token_urlsafe(9)}")
        path.chmod(0o600)
    return path.read_text().strip()


def _user(username, first, last, email, password) -> User:
    user = User.objects.filter(username=username).first()
    if user is None:
        user = User(username=username, first_name=first, last_name=last, email=email)
        user.set_password(password)
        user.save()
    return user


@transaction.atomic
def seed() -> list[str]:
    password = _demo_password()
    users = {p[0]: _user(*p, password) for p in PEOPLE}
    operator = users["operator"]
    if not RoleAssignment.objects.filter(user=operator, role=Role.OPERATOR).exists():
        first = RoleAssignment.objects.filter(role=Role.OPERATOR).select_related("user").first()
        if first is None:
            services.operator_bootstrap(user=operator)
        else:  # a platform with an operator already (demo data added later): they appoint the demo's
            services.role_assign(actor=first.user, user=operator, role=Role.OPERATOR)
    org = Organization.objects.filter(name="acme").first()
    if org is None:
        org, _invitation, token = services.org_onboard(
            actor=operator,
            name="acme",
            display_name="Acme Research",
            admin_email="alice@acme.example.com",
            admin_first_name="Alice",
            admin_last_name="Admin",
        )
        # The demo's admin has an account already: she accepts, as she would from the emailed link.
        services.invitation_accept(token=token, user=users["alice"])
        services.quota_update(
            actor=operator,
            quota=org.quota,
            gpus=64,
            cpu_cores=2000,
            memory_gib=8192,
            storage_gib=50000,
            instances=40,
        )
    alice = users["alice"]
    research = Project.objects.filter(org=org, name="research").first()
    if research is None:
        research = services.project_create(
            actor=alice, org=org, name="research", display_name="Research", description="The research team."
        )
        services.quota_update(
            actor=alice,
            quota=research.quota,
            gpus=16,
            cpu_cores=500,
            memory_gib=2048,
            storage_gib=10000,
            instances=10,
        )
        # Alice brings her people in as an org admin does (the operator sees inside no org): an
        # invitation each, which they accept as from the emailed link.
        for user, role in ((users["bob"], Role.WORKSPACE_ADMIN), (users["carol"], Role.COLLABORATOR_RO)):
            _invitation, token = services.invitation_create(
                actor=alice, org=org, email=user.email, role=role, project=research
            )
            services.invitation_accept(token=token, user=user)
    if not Project.objects.filter(org=org, name="inference").exists():
        inference = services.project_create(actor=alice, org=org, name="inference", display_name="Inference")
        services.role_assign(actor=alice, user=users["carol"], role=Role.COLLABORATOR_RW, project=inference)
    return [
        f"Demo logins (password for all: {password}):",
        f"  operator / {password}   platform operator   -> /studio/",
        f"  alice    / {password}   org admin of acme   -> /studio/ (and the developer hub at /)",
        f"  bob      / {password}   workspace admin of acme/research   -> / (developer hub)",
        f"  carol    / {password}   read-only in research, read-write in inference   -> /",
    ]
