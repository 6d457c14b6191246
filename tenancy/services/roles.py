"""Role assignments and memberships: assign, revoke, remove from an org, the first operator."""

from django.db import IntegrityError, transaction

from paas import authz
from paas.audit import audit_log
from paas.errors import Conflict, Forbidden, ValidationFailed
from tenancy.models import Organization, Project, RoleAssignment, User
from tenancy.roles import Role
from tenancy.selectors import is_member
from tenancy.services.common import (
    _check_scope,
    _ensure_personal_project,
    _sync_flags,
    _sync_object_perms,
)
from tenancy.services.invitations import _revoke_invitations_to
from tenancy.signals import access_changed


@transaction.atomic
def role_assign(
    *, actor: User, user: User, role: str, org: Organization | None = None, project: Project | None = None
) -> RoleAssignment:
    """Give ``user`` the role at the scope; grants the role's object permissions."""
    _check_scope(role, org, project)
    if project is not None:
        org = project.org
    if role == Role.OPERATOR:
        authz.require_operator(actor, message="Only operators may appoint operators.")
    else:
        authz.require(actor, "administer_organization", org, message="Only org admins may assign roles.")
        if authz.is_operator(actor) and user.pk == actor.pk:
            # An operator acts in an org only through a time-bound support access: never a role of their own.
            raise Forbidden("You cannot give yourself a role in an organization; ask one of its admins.")
        # Operators included (a support access may make one act as an org admin): people come in by
        # invitation, which they accept.
        if not is_member(user, org):
            raise ValidationFailed(
                "That user is not a member of this organization; invite them by email instead.",
                fields={"user": "Not a member of this organization."},
            )
    existing = RoleAssignment.objects.filter(user=user, role=role, org=org, project=project).first()
    if existing:
        raise Conflict(f"{user} already holds {existing.get_role_display()} there.")
    first_in_org = org is not None and not is_member(user, org)
    try:
        with transaction.atomic():
            assignment = RoleAssignment.objects.create(
                user=user, role=role, org=org, project=project, created_by=actor
            )
    except IntegrityError as exc:
        raise Conflict(f"{user} already holds that role there.") from exc
    if project is not None:
        _sync_object_perms(user, project)
    elif org is not None:
        _sync_object_perms(user, org)
    _sync_flags(user)
    audit_log(
        actor=actor,
        action="role.assign",
        target=assignment,
        org=org,
        project=project,
        details={"user": user.email, "role": role},
    )
    if first_in_org:
        _ensure_personal_project(actor=actor, user=user, org=org)
    return assignment


@transaction.atomic
def role_revoke(*, actor: User, assignment: RoleAssignment) -> None:
    user, org, project, role = assignment.user, assignment.org, assignment.project, assignment.role
    if role == Role.OPERATOR:
        authz.require_operator(actor, message="Only operators may remove operators.")
        if RoleAssignment.objects.filter(role=Role.OPERATOR).count() <= 1:
            raise Conflict("This is the last operator; appoint another before removing it.")
    else:
        authz.require(actor, "administer_organization", org, message="Only org admins may remove roles.")
        if (
            role == Role.ORG_ADMIN
            and RoleAssignment.objects.filter(role=Role.ORG_ADMIN, org=org).count() <= 1
        ):
            raise Conflict(f"This is the last org admin of {org}; appoint another before removing it.")
        if project is not None and project.kind == Project.Kind.PERSONAL and project.owner_id == user.pk:
            raise Conflict("The owner of a personal workspace keeps its workspace admin role.")
    _drop_assignment(actor=actor, assignment=assignment)


def _drop_assignment(
    *, actor: User | None, assignment: RoleAssignment, via: str = "", sync: bool = True
) -> None:
    """Delete a role assignment with its audit event; ``sync`` brings the user's object permissions and
    flags in step at once (a caller dropping several for one user may sync once at the end)."""
    user, org, project = assignment.user, assignment.org, assignment.project
    details = {"user": user.email, "role": assignment.role} | ({"via": via} if via else {})
    audit_log(actor=actor, action="role.revoke", target=assignment, org=org, project=project, details=details)
    assignment.delete()
    if sync:
        if project is not None or org is not None:
            _sync_object_perms(user, project or org)
        _sync_flags(user)
        _access_shrank(user, org, via or "role revoked")


def _access_shrank(
    user: User, org: Organization | None, reason: str, revoked_invitations: list[int] = ()
) -> None:
    """Tell the apps that follow access (instances) that ``user`` may have lost some in ``org``
    (``revoked_invitations``: ids of the invitations to them revoked with it)."""
    access_changed.send(
        sender=RoleAssignment,
        users=[user],
        org=org,
        reason=reason,
        revoked_invitations=list(revoked_invitations),
    )


@transaction.atomic
def member_remove(*, actor: User, org: Organization, user: User) -> int:
    """Remove someone from an organization: every role they hold in it (their personal workspace's
    included) goes, with what those roles gave (instances follow through ``access_changed``). The
    personal workspace and its instances stay, for the org's admins. Returns how many roles went."""
    authz.require(actor, "administer_organization", org, message="Only org admins may remove members.")
    assignments = list(RoleAssignment.objects.filter(user=user, org=org).select_related("project"))
    if not assignments:
        raise ValidationFailed("Not a member.", fields={"user": f"{user} is not a member of {org}."})
    if any(a.role == Role.ORG_ADMIN for a in assignments) and (
        RoleAssignment.objects.filter(role=Role.ORG_ADMIN, org=org).exclude(user=user).count() == 0
    ):
        raise Conflict(f"This is the last org admin of {org}; appoint another before removing it.")
    audit_log(
        actor=actor,
        action="org.member_remove",
        target=user,
        org=org,
        details={"user": user.email, "roles": sorted(a.role for a in assignments)},
    )
    scopes = {}
    for assignment in assignments:
        scope = assignment.project or org
        scopes[(type(scope).__name__, scope.pk)] = scope
        _drop_assignment(actor=actor, assignment=assignment, via="removed from organization", sync=False)
    for scope in scopes.values():
        _sync_object_perms(user, scope)
    _sync_flags(user)
    revoked = _revoke_invitations_to(actor=actor, email=user.email, org=org, via="removed from organization")
    _access_shrank(user, org, "removed from organization", revoked_invitations=revoked)
    return len(assignments)


@transaction.atomic
def operator_bootstrap(*, user: User) -> RoleAssignment:
    """Make ``user`` an operator without an acting operator: only while the platform has none."""
    if RoleAssignment.objects.filter(role=Role.OPERATOR).exists() and not user.is_superuser:
        raise Forbidden("The platform has an operator already; ask an operator to appoint you.")
    assignment, _ = RoleAssignment.objects.get_or_create(user=user, role=Role.OPERATOR)
    _sync_flags(user)
    audit_log(
        actor=None,
        action="role.assign",
        target=assignment,
        details={"user": user.email, "role": "operator", "via": "bootstrap"},
    )
    return assignment
