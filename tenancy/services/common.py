"""What the tenancy services share: input cleaning, permission and flag sync, personal workspaces,
and role-scope checks."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.utils.text import slugify
from guardian.shortcuts import assign_perm, remove_perm

from paas import authz
from paas.audit import audit_log
from paas.errors import ValidationFailed
from tenancy.models import Organization, Project, Quota, RoleAssignment, User
from tenancy.roles import ORG_PERMISSIONS, ORG_ROLES, PROJECT_PERMISSIONS, PROJECT_ROLES, STUDIO_ROLES, Role


def _required_text(field: str, value: str) -> str:
    value = (value or "").strip()
    if not value:
        raise ValidationFailed(
            f"{field.replace('_', ' ').capitalize()} is required.", fields={field: "This field is required."}
        )
    return value


def _normalise_email(field: str, email: str) -> str:
    email = (email or "").strip()
    try:
        validate_email(email)
    except DjangoValidationError as exc:
        raise ValidationFailed("Invalid email address.", fields={field: exc.messages}) from exc
    local, _, domain = email.rpartition("@")
    return f"{local}@{domain.lower()}"


def _sync_object_perms(user: User, obj: Organization | Project) -> None:
    """Make the user's guardian permissions on ``obj`` exactly what their role assignments grant."""
    if isinstance(obj, Organization):
        roles = RoleAssignment.objects.filter(user=user, org=obj, project__isnull=True).values_list(
            "role", flat=True
        )
        table = ORG_PERMISSIONS
    else:
        roles = RoleAssignment.objects.filter(user=user, project=obj).values_list("role", flat=True)
        table = PROJECT_PERMISSIONS
    wanted: set[str] = set().union(*(table.get(role, set()) for role in roles))
    from guardian.shortcuts import get_user_perms

    held = set(get_user_perms(user, obj))
    for codename in wanted - held:
        assign_perm(codename, user, obj)
    for codename in held - wanted:
        remove_perm(codename, user, obj)
    authz.forget(user)


def _sync_flags(user: User) -> None:
    """Keep Django's flags in step with roles: operators are superusers; studio roles are staff."""
    is_operator = RoleAssignment.objects.filter(user=user, role=Role.OPERATOR).exists()
    # A deactivated org's roles open nothing: its admins lose the studio with it.
    is_staff = (
        is_operator
        or RoleAssignment.objects.filter(user=user, role__in=STUDIO_ROLES, org__is_active=True).exists()
    )
    if user.is_superuser != is_operator or user.is_staff != is_staff:
        user.is_superuser, user.is_staff = is_operator, is_staff
        user.save(update_fields=["is_superuser", "is_staff"])
    authz.forget(user)


def _unique_project_name(org: Organization, base: str) -> str:
    base = (slugify(base) or "workspace")[:55].strip("-") or "workspace"
    name, n = base, 1
    while Project.objects.filter(org=org, name=name).exists():
        n += 1
        name = f"{base}-{n}"
    return name


def _ensure_personal_project(*, actor: User | None, user: User, org: Organization) -> Project:
    project = Project.objects.filter(org=org, owner=user, kind=Project.Kind.PERSONAL).first()
    if project:
        return project
    project = Project.objects.create(
        org=org,
        name=_unique_project_name(org, f"personal-{user.username}"),
        display_name=f"{user.get_full_name() or user.username}'s workspace",
        kind=Project.Kind.PERSONAL,
        owner=user,
    )
    Quota.objects.create(project=project)
    RoleAssignment.objects.create(
        user=user, role=Role.WORKSPACE_ADMIN, org=org, project=project, created_by=actor
    )
    _sync_object_perms(user, project)
    audit_log(
        actor=actor,
        action="project.create",
        target=project,
        project=project,
        details={"kind": project.kind, "owner": user.email, "reason": "personal workspace"},
    )
    return project


def _check_scope(role: str, org: Organization | None, project: Project | None) -> None:
    if role not in Role.values:
        raise ValidationFailed("Unknown role.", fields={"role": f"Choose one of: {', '.join(Role.values)}."})
    if role == Role.OPERATOR:
        if org or project:
            raise ValidationFailed(
                "The operator role is platform-wide.", fields={"role": "Give no org or project."}
            )
        return
    if project is not None and org is not None and project.org_id != org.pk:
        raise ValidationFailed(
            "The project is not in that organization.", fields={"project": "Not in this org."}
        )
    if role in PROJECT_ROLES and role not in ORG_ROLES and project is None:
        raise ValidationFailed("This role is held on a project.", fields={"project": "Choose the project."})
    if role == Role.ORG_ADMIN and project is not None:
        raise ValidationFailed(
            "The org admin role is held on the organization.", fields={"project": "Leave empty."}
        )
    if org is None and project is None:
        raise ValidationFailed(
            "This role is held in an organization.", fields={"org": "Choose the organization."}
        )
