"""Every write in tenancy: one transaction each, permission checked, audit event written inside it."""

import hashlib
import logging
import re
import secrets
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import IntegrityError, connection, transaction
from django.db.models import ProtectedError
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.text import slugify
from guardian.shortcuts import assign_perm, remove_perm

from paas import authz
from paas.audit import apply_changes, audit_log
from paas.errors import Conflict, Forbidden, NotFound, ValidationFailed
from tenancy.invitation_limits import check_invitation_rate
from tenancy.models import (
    GpuModelQuota,
    IdpGroupMapping,
    Invitation,
    Organization,
    Project,
    Quota,
    RoleAssignment,
    User,
)
from tenancy.roles import ORG_PERMISSIONS, ORG_ROLES, PROJECT_PERMISSIONS, PROJECT_ROLES, STUDIO_ROLES, Role
from tenancy.signals import access_changed, invitation_accepted, project_deleting
from tenancy.sso_rules import confine_mappings, email_verified
from tenancy.validation import clean_slug

logger = logging.getLogger(__name__)

# --- helpers ----------------------------------------------------------------------------------------


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


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


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


def is_member(user: User, org: Organization) -> bool:
    return RoleAssignment.objects.filter(user=user, org=org).exists()


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


# --- organizations ----------------------------------------------------------------------------------


@transaction.atomic
def org_onboard(
    *,
    actor: User,
    name: str,
    display_name: str = "",
    admin_email: str,
    admin_first_name: str,
    admin_last_name: str,
) -> tuple[Organization, Invitation, str]:
    """Create a tenant with its quota row and invite its first admin (the reference's onboarding).

    Returns the org, the invitation and its token (emailed; callers other than tests never show it).
    """
    authz.require_operator(actor, message="Only platform operators may create organizations.")
    name = clean_slug("name", name)
    errors = {}
    if not (admin_first_name or "").strip():
        errors["admin_first_name"] = "The first admin's first name is required."
    if not (admin_last_name or "").strip():
        errors["admin_last_name"] = "The first admin's last name is required."
    admin_email = _normalise_email("admin_email", admin_email)
    if Organization.objects.filter(name=name).exists():
        errors["name"] = f"An organization named {name!r} already exists."
    if errors:
        raise ValidationFailed("The organization could not be created.", fields=errors)
    org = Organization.objects.create(name=name, display_name=(display_name or "").strip() or name)
    Quota.objects.create(org=org)
    audit_log(
        actor=actor, action="org.create", target=org, org=org, details={"display_name": org.display_name}
    )
    invitation, token = invitation_create(
        actor=actor,
        org=org,
        email=admin_email,
        role=Role.ORG_ADMIN,
        first_name=admin_first_name.strip(),
        last_name=admin_last_name.strip(),
    )
    return org, invitation, token


@transaction.atomic
def org_update(
    *, actor: User, org: Organization, display_name: str | None = None, is_active: bool | None = None
):
    authz.require(actor, "change_organization", org)
    changes = (
        apply_changes(org, {"display_name": _required_text("display_name", display_name)})
        if (display_name is not None)
        else {}
    )
    if is_active is not None and is_active != org.is_active:
        authz.require_operator(
            actor, message="Only platform operators may activate or deactivate organizations."
        )
        changes["is_active"] = [org.is_active, is_active]
        org.is_active = is_active
    if changes:
        org.save()
        audit_log(actor=actor, action="org.update", target=org, org=org, details={"changes": changes})
    if "is_active" in changes:
        for member in User.objects.filter(role_assignments__org=org).distinct():
            _sync_flags(member)
        access_changed.send(
            sender=Organization,
            users=None,
            org=org,
            reason="organization " + ("reactivated" if org.is_active else "deactivated"),
        )
    return org


# --- projects ---------------------------------------------------------------------------------------


@transaction.atomic
def project_create(
    *, actor: User, org: Organization, name: str, display_name: str = "", description: str = ""
) -> Project:
    """Create a team workspace (personal ones are created for users as they join)."""
    authz.require(actor, "administer_organization", org, message="Only org admins may create projects.")
    name = clean_slug("name", name)
    if Project.objects.filter(org=org, name=name).exists():
        raise ValidationFailed(
            "The project could not be created.",
            fields={"name": f"A project named {name!r} already exists in {org.name}."},
        )
    project = Project.objects.create(
        org=org, name=name, display_name=(display_name or "").strip() or name, description=description or ""
    )
    Quota.objects.create(project=project)
    audit_log(
        actor=actor, action="project.create", target=project, project=project, details={"kind": project.kind}
    )
    return project


@transaction.atomic
def project_update(
    *, actor: User, project: Project, display_name: str | None = None, description: str | None = None
) -> Project:
    authz.require(actor, "change_project", project, message="Only org admins may change projects.")
    data = {}
    if display_name is not None:
        data["display_name"] = _required_text("display_name", display_name)
    if description is not None:
        data["description"] = description
    changes = apply_changes(project, data)
    if changes:
        project.save()
        audit_log(
            actor=actor,
            action="project.update",
            target=project,
            project=project,
            details={"changes": changes},
        )
    return project


def _still_holds(project: Project, protected) -> str:
    counts: dict[str, int] = {}
    for obj in protected:
        meta = obj._meta
        counts[str(meta.verbose_name_plural)] = counts.get(str(meta.verbose_name_plural), 0) + 1
    what = ", ".join(f"{count} {noun}" for noun, count in sorted(counts.items()))
    return (
        f"The workspace {project.display_name or project.name} is still used by {what}: "
        "delete or move them first."
    )


@transaction.atomic
def project_delete(*, actor: User, project: Project) -> None:
    authz.require(actor, "delete_project", project, message="Only org admins may delete projects.")
    if project.kind == Project.Kind.PERSONAL:
        raise Conflict("A personal workspace cannot be deleted; it belongs to its owner's membership.")
    audit_log(
        actor=actor,
        action="project.delete",
        target=project,
        project=project,
        details={"name": project.name, "display_name": project.display_name},
    )
    project_deleting.send(sender=Project, project=project, actor=actor)  # instances refuse while live
    members = list(User.objects.filter(role_assignments__project=project).distinct())
    try:
        with transaction.atomic():
            project.delete()
    except ProtectedError as exc:
        # Instances (and what else other apps keep in a workspace) protect it: say what is left.
        raise Conflict(_still_holds(project, exc.protected_objects), code="project_not_empty") from exc
    for user in members:
        _sync_flags(user)


# --- roles ------------------------------------------------------------------------------------------


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
        if not authz.is_operator(actor) and not is_member(user, org):
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


def _revoke_invitations_to(
    *, actor: User | None, email: str, org: Organization | None, via: str
) -> list[int]:
    """Revoke the pending invitations addressed to ``email`` (in ``org``, or everywhere), so that no
    old link brings someone back who was removed or deactivated; each revocation is audited. The
    instance-collaborator invitations riding on them go with them (``access_changed`` receiver).
    Returns the revoked invitations' ids."""
    if not email:
        return []
    pending = Invitation.objects.select_for_update(of=("self",)).filter(
        email__iexact=email, accepted_at__isnull=True, revoked_at__isnull=True
    )
    if org is not None:
        pending = pending.filter(org=org)
    revoked = []
    for invitation in pending.select_related("org", "project"):
        _revoke_invitation(actor=actor, invitation=invitation, via=via)
        revoked.append(invitation.pk)
    return revoked


def _revoke_invitation(*, actor: User | None, invitation: Invitation, via: str = "") -> None:
    """Mark ``invitation`` revoked (its link stops working) and audit it, in the caller's transaction."""
    invitation.revoked_at = timezone.now()
    invitation.save(update_fields=["revoked_at"])
    details = {"email": invitation.email, **({"via": via} if via else {})}
    audit_log(
        actor=actor,
        action="invitation.revoke",
        target=invitation,
        org=invitation.org,
        project=invitation.project,
        details=details,
    )


# --- invitations ------------------------------------------------------------------------------------


def _send_invitation_email(invitation_id: int, token: str) -> None:
    invitation = (
        Invitation.objects.select_related("org", "project", "invited_by").filter(pk=invitation_id).first()
    )
    if invitation is None or invitation.status != "pending":
        return
    context = {
        "invitation": invitation,
        "accept_url": f"{settings.PAAS_BASE_URL.rstrip('/')}/invitations/{token}/",
    }
    send_mail(
        subject=f"You are invited to {invitation.org} on the GPU PaaS",
        message=render_to_string("tenancy/invitation_email.txt", context),
        from_email=None,
        recipient_list=[invitation.email],
    )


@transaction.atomic
def invitation_create(
    *,
    actor: User,
    org: Organization,
    email: str,
    role: str,
    project: Project | None = None,
    first_name: str = "",
    last_name: str = "",
) -> tuple[Invitation, str]:
    """Invite someone by email; returns the invitation and its token (only ever sent by email)."""
    authz.require(actor, "administer_organization", org, message="Only org admins may invite users.")
    email = _normalise_email("email", email)
    if role == Role.OPERATOR:
        raise ValidationFailed(
            "Operators are appointed, not invited.", fields={"role": "Choose an org or project role."}
        )
    _check_scope(role, org, project)
    pending = Invitation.objects.filter(
        org=org,
        email__iexact=email,
        role=role,
        project=project,
        accepted_at__isnull=True,
        revoked_at__isnull=True,
        expires_at__gt=timezone.now(),
    )
    if pending.exists():
        raise Conflict(f"{email} already has a pending invitation for this role.")
    check_invitation_rate(actor=actor, org=org)
    token = secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(
        org=org,
        project=project,
        email=email,
        first_name=first_name,
        last_name=last_name,
        role=role,
        token_digest=_token_digest(token),
        expires_at=timezone.now() + timedelta(hours=settings.INVITATION_TTL_HOURS),
        invited_by=actor,
    )
    audit_log(
        actor=actor,
        action="invitation.create",
        target=invitation,
        org=org,
        project=project,
        details={"email": email, "role": role, "expires_at": invitation.expires_at.isoformat()},
    )
    transaction.on_commit(lambda: _send_invitation_email(invitation.pk, token))
    return invitation, token


@transaction.atomic
def invitation_revoke(*, actor: User, invitation: Invitation) -> Invitation:
    authz.require(
        actor, "administer_organization", invitation.org, message="Only org admins may revoke invitations."
    )
    if invitation.status != "pending":
        raise Conflict(f"This invitation is already {invitation.status}.")
    _revoke_invitation(actor=actor, invitation=invitation)
    return invitation


def invitation_for_token(token: str) -> Invitation:
    """The invitation a token opens; unknown tokens look like missing ones."""
    invitation = (
        Invitation.objects.select_related("org", "project")
        .filter(token_digest=_token_digest(token or ""))
        .first()
    )
    if invitation is None:
        raise NotFound("This invitation link is not valid.")
    return invitation


@transaction.atomic
def invitation_accept(
    *,
    token: str,
    user: User | None = None,
    username: str = "",
    password: str = "",
    first_name: str = "",
    last_name: str = "",
) -> User:
    """Accept an invitation, as the signed-in ``user`` or by creating a local account."""
    invitation = invitation_for_token(token)
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if invitation.status != "pending":
        raise ValidationFailed(
            f"This invitation is {invitation.status}.", code=f"invitation_{invitation.status}"
        )
    if not invitation.org.is_active:
        raise ValidationFailed("This organization is not active.")
    if user is not None and user.is_authenticated:
        if user.email.lower() != invitation.email.lower():
            raise Forbidden(f"This invitation is for {invitation.email}; sign in as that user to accept it.")
        if not user.email_verified:
            raise Forbidden(
                f"Your identity provider has not verified that {user.email} is yours, so invitations sent "
                "to it cannot be accepted with this account; ask your administrator."
            )
    else:
        if User.objects.filter(email__iexact=invitation.email).exists():
            raise ValidationFailed(
                f"An account for {invitation.email} exists already; sign in and open the link again.",
                code="sign_in_required",
            )
        user = _local_user_create(
            username=username,
            email=invitation.email,
            password=password,
            first_name=first_name or invitation.first_name,
            last_name=last_name or invitation.last_name,
        )
        audit_log(
            actor=user,
            action="user.create",
            target=user,
            org=invitation.org,
            details={"source": "invitation"},
        )
    first_in_org = not is_member(user, invitation.org)
    if not RoleAssignment.objects.filter(
        user=user, role=invitation.role, org=invitation.org, project=invitation.project
    ).exists():
        assignment = RoleAssignment.objects.create(
            user=user,
            role=invitation.role,
            org=invitation.org,
            project=invitation.project,
            created_by=invitation.invited_by,
        )
        _sync_object_perms(user, invitation.project or invitation.org)
        _sync_flags(user)
        audit_log(
            actor=user,
            action="role.assign",
            target=assignment,
            org=invitation.org,
            project=invitation.project,
            details={"user": user.email, "role": invitation.role, "via": "invitation"},
        )
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    audit_log(
        actor=user,
        action="invitation.accept",
        target=invitation,
        org=invitation.org,
        project=invitation.project,
        details={"email": invitation.email, "role": invitation.role},
    )
    if first_in_org:
        _ensure_personal_project(actor=user, user=user, org=invitation.org)
    invitation_accepted.send(sender=Invitation, invitation=invitation, user=user)
    return user


# --- users ------------------------------------------------------------------------------------------


def _local_user_create(*, username: str, email: str, password: str, first_name: str, last_name: str) -> User:
    errors: dict[str, list[str]] = {}
    username = (username or "").strip()
    if not username:
        errors["username"] = ["This field is required."]
    else:
        try:
            User._meta.get_field("username").run_validators(username)
        except DjangoValidationError as exc:
            errors["username"] = exc.messages
        if User.objects.filter(username__iexact=username).exists():
            errors["username"] = ["That username is taken."]
    candidate = User(username=username, email=email, first_name=first_name, last_name=last_name)
    try:
        password_validation.validate_password(password or "", candidate)
    except DjangoValidationError as exc:
        errors["password"] = exc.messages
    if errors:
        raise ValidationFailed("The account could not be created.", fields=errors)
    candidate.set_password(password)
    candidate.save()
    return candidate


@transaction.atomic
def user_update(
    *,
    actor: User,
    user: User,
    first_name: str | None = None,
    last_name: str | None = None,
    is_active: bool | None = None,
) -> User:
    """Edit a user's name (self, or an operator) or (de)activate the account (operators only)."""
    if actor.pk != user.pk:
        authz.require_operator(actor, message="Only operators may edit other users' accounts.")
    changes = {}
    for field, value in (("first_name", first_name), ("last_name", last_name)):
        if value is not None and value.strip() != getattr(user, field):
            changes[field] = [getattr(user, field), value.strip()]
            setattr(user, field, value.strip())
    if is_active is not None and is_active != user.is_active:
        authz.require_operator(actor, message="Only operators may activate or deactivate accounts.")
        if actor.pk == user.pk:
            raise ValidationFailed(
                "You cannot deactivate your own account.", fields={"is_active": "Not yourself."}
            )
        changes["is_active"] = [user.is_active, is_active]
        user.is_active = is_active
    if changes:
        user.save()
        audit_log(actor=actor, action="user.update", target=user, details={"changes": changes})
    if "is_active" in changes:
        revoked = (
            []
            if user.is_active
            else _revoke_invitations_to(actor=actor, email=user.email, org=None, via="account deactivated")
        )
        access_changed.send(
            sender=User,
            users=[user],
            org=None,
            reason="account " + ("reactivated" if user.is_active else "deactivated"),
            revoked_invitations=revoked,
        )
    return user


# --- quotas -----------------------------------------------------------------------------------------


def _check_quota_limits(quota: Quota, limits: dict, gpu_models: dict[str, int] | None) -> None:
    errors: dict[str, str] = {}
    for field, value in limits.items():
        if value is not None and Decimal(str(value)) < 0:
            errors[field] = "Must be zero or more (leave empty for unlimited)."
    if gpu_models:
        for model, count in gpu_models.items():
            if not model or count is None or int(count) < 0:
                errors["gpu_models"] = "Each GPU model needs a name and a count of zero or more."
    if errors:
        raise ValidationFailed("Invalid quota.", fields=errors)
    if quota.project_id:
        org_quota = quota.project.org.quota
        for field, value in limits.items():
            ceiling = getattr(org_quota, field)
            if value is not None and ceiling is not None and Decimal(str(value)) > Decimal(str(ceiling)):
                errors[field] = f"Cannot exceed the organization's limit of {ceiling}."
            if value is None and ceiling is not None:
                errors[field] = f"The organization is limited to {ceiling}; set a limit of at most that."
        org_models = {row.gpu_model: row.gpus for row in org_quota.gpu_models.all()}
        for model, count in (gpu_models or {}).items():
            if model in org_models and int(count) > org_models[model]:
                errors["gpu_models"] = (
                    f"{model}: cannot exceed the organization's limit of {org_models[model]}."
                )
    if errors:
        raise ValidationFailed("The quota exceeds the organization's quota.", fields=errors)


@transaction.atomic
def quota_update(*, actor: User, quota: Quota, gpu_models: dict[str, int] | None = None, **limits) -> Quota:
    """Set limits (``None`` = unlimited). Org quotas: operators. Project quotas: org admins."""
    unknown = set(limits) - set(Quota.LIMIT_FIELDS)
    if unknown:
        raise ValidationFailed("Unknown quota fields.", fields={name: "Unknown field." for name in unknown})
    if quota.org_id:
        authz.require_operator(actor, message="Only platform operators set an organization's quota.")
    else:
        authz.require(
            actor, "administer_organization", quota.project.org, message="Only org admins set project quotas."
        )
    quota = (
        Quota.objects.select_for_update(of=("self",)).select_related("org", "project__org").get(pk=quota.pk)
    )
    _check_quota_limits(quota, limits, gpu_models)
    before = {field: _plain(getattr(quota, field)) for field in Quota.LIMIT_FIELDS}
    before["gpu_models"] = {row.gpu_model: row.gpus for row in quota.gpu_models.all()}
    for field, value in limits.items():
        setattr(quota, field, value)
    quota.save()
    if gpu_models is not None:
        quota.gpu_models.exclude(gpu_model__in=list(gpu_models)).delete()
        for model, count in gpu_models.items():
            GpuModelQuota.objects.update_or_create(
                quota=quota, gpu_model=model, defaults={"gpus": int(count)}
            )
    after = {field: _plain(getattr(quota, field)) for field in Quota.LIMIT_FIELDS}
    after["gpu_models"] = {row.gpu_model: row.gpus for row in quota.gpu_models.all()}
    changes = {key: [before[key], after[key]] for key in after if before[key] != after[key]}
    if changes:
        audit_log(
            actor=actor,
            action="quota.update",
            target=quota,
            org=quota.owning_org,
            project=quota.project,
            details={"changes": changes},
        )
    return quota


def _plain(value):
    return str(value) if isinstance(value, Decimal) else value


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


# --- single sign-on ---------------------------------------------------------------------------------

IDP_GROUP_SYNC = "idp group sync"
NO_ORG_MESSAGE = "Your account is not assigned to any organization; ask your administrator."
_SSO_LOCK_CLASS = 0x5353_4F31  # "SSO1": advisory-lock namespace for sign-ons of one subject


@transaction.atomic
def idp_mapping_create(
    *, actor: User, org: Organization, group: str, role: str, project: Project | None = None
) -> IdpGroupMapping:
    """Members of the IdP group ``group`` get ``role`` in ``org`` (or on ``project``) from their next
    sign-on on."""
    authz.require(
        actor, "administer_organization", org, message="Only org admins may manage IdP group mappings."
    )
    group = (group or "").strip()
    errors: dict[str, str] = {}
    if not group:
        errors["group"] = "Give the group exactly as the identity provider sends it in the groups claim."
    elif len(group) > 255:
        errors["group"] = "At most 255 characters."
    if role not in Role.values:
        errors["role"] = f"Choose one of: {', '.join(r for r in Role.values if r != Role.OPERATOR)}."
    elif role == Role.OPERATOR:
        errors["role"] = "The operator role is platform-wide; it cannot come from an IdP group."
    elif project is not None and project.org_id != org.pk:
        errors["project"] = f"This project is not in {org.name}."
    elif role == Role.ORG_ADMIN and project is not None:
        errors["project"] = "The org admin role is held on the organization; leave the project empty."
    elif role in PROJECT_ROLES and role not in ORG_ROLES and project is None:
        errors["project"] = "This role is held on a project; choose the project."
    if errors:
        raise ValidationFailed("The IdP group mapping could not be created.", fields=errors)
    duplicate = f"The group {group!r} already gives {Role(role).label} there."
    if IdpGroupMapping.objects.filter(org=org, group=group, role=role, project=project).exists():
        raise Conflict(duplicate)
    try:
        with transaction.atomic():
            mapping = IdpGroupMapping.objects.create(
                org=org, group=group, role=role, project=project, created_by=actor
            )
    except IntegrityError as exc:
        raise Conflict(duplicate) from exc
    audit_log(
        actor=actor,
        action="idp_mapping.create",
        target=mapping,
        org=org,
        project=project,
        details={"group": group, "role": role},
    )
    return mapping


@transaction.atomic
def idp_mapping_delete(*, actor: User, mapping: IdpGroupMapping) -> None:
    """Delete a mapping. The roles it gave go at once where no other mapping of the org could give the
    same role at the same scope; otherwise at each user's next sign-on (only then are their groups known).
    """
    authz.require(
        actor,
        "administer_organization",
        mapping.org,
        message="Only org admins may manage IdP group mappings.",
    )
    org, project, role = mapping.org, mapping.project, mapping.role
    audit_log(
        actor=actor,
        action="idp_mapping.delete",
        target=mapping,
        org=org,
        project=project,
        details={"group": mapping.group, "role": role},
    )
    mapping.delete()
    if IdpGroupMapping.objects.filter(org=org, role=role, project=project).exists():
        return
    granted = RoleAssignment.objects.filter(
        source=RoleAssignment.Source.IDP, role=role, org=org, project=project
    ).select_related("user")
    for assignment in granted:
        _drop_assignment(actor=actor, assignment=assignment, via="idp mapping deleted")


def _claim_groups(claims: dict) -> set[str]:
    """The groups claim (``OIDC_GROUPS_CLAIM``) as a set: providers send a list, some a single string."""
    value = claims.get(settings.OIDC_GROUPS_CLAIM)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple | set):
        return set()
    return {str(item).strip() for item in value if str(item).strip()}


def _sso_username(claims: dict, email: str) -> str:
    """preferred_username (or the email's local part) made a valid, unused username."""
    base = str(claims.get("preferred_username") or "").strip() or email.rpartition("@")[0]
    base = re.sub(r"[^\w.@+-]", "", base)[:140] or "user"
    name, n = base, 1
    while User.objects.filter(username__iexact=name).exists():
        n += 1
        name = f"{base}-{n}"
    return name


def _sso_names(claims: dict) -> tuple[str, str]:
    first = str(claims.get("given_name") or "").strip()
    last = str(claims.get("family_name") or "").strip()
    if not (first or last) and claims.get("name"):
        first, _, last = str(claims["name"]).strip().partition(" ")
    return first[:150], last.strip()[:150]


def _sso_default_org() -> Organization | None:
    """The org that users without a mapped group join (``OIDC_DEFAULT_ORG``), if set and active."""
    slug = settings.OIDC_DEFAULT_ORG
    if not slug:
        return None
    org = Organization.objects.filter(name=slug, is_active=True).first()
    if org is None:
        logger.warning("OIDC_DEFAULT_ORG=%r names no active organization; sign-ons without groups fail", slug)
    return org


def _has_membership(user: User) -> bool:
    return user.is_superuser or RoleAssignment.objects.filter(user=user, org__isnull=False).exists()


def _lock_subject(subject: str) -> None:
    """Serialise concurrent sign-ons of one person (two tabs) until commit (PostgreSQL)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [_SSO_LOCK_CLASS, subject])


def _sync_idp_roles(user: User, mappings: list[IdpGroupMapping]) -> None:
    """Make the user's ``source=idp`` role assignments exactly those the mappings give.

    Manual assignments are never touched; a mapping whose role the user holds manually already adds
    nothing. Every org the user is given a role in gets their personal workspace.
    """
    wanted: dict[tuple, dict] = {}
    for mapping in mappings:
        key = (mapping.role, mapping.org_id, mapping.project_id)
        entry = wanted.setdefault(key, {"org": mapping.org, "project": mapping.project, "groups": []})
        entry["groups"].append(mapping.group)
    held = {
        (ra.role, ra.org_id, ra.project_id): ra
        for ra in RoleAssignment.objects.filter(user=user, org__isnull=False).select_related("org", "project")
    }
    touched: dict[tuple, Organization | Project] = {}
    dropped: dict[tuple, Organization | Project] = {}
    for key, assignment in held.items():
        if assignment.source == RoleAssignment.Source.IDP and key not in wanted:
            scope = assignment.project or assignment.org
            _drop_assignment(actor=None, assignment=assignment, via=IDP_GROUP_SYNC, sync=False)
            touched[(type(scope).__name__, scope.pk)] = scope
            dropped[(type(scope).__name__, scope.pk)] = scope
    for key, entry in wanted.items():
        if key in held:
            continue
        assignment = RoleAssignment.objects.create(
            user=user,
            role=key[0],
            org=entry["org"],
            project=entry["project"],
            source=RoleAssignment.Source.IDP,
        )
        audit_log(
            actor=None,
            action="role.assign",
            target=assignment,
            org=entry["org"],
            project=entry["project"],
            details={
                "user": user.email,
                "role": key[0],
                "via": IDP_GROUP_SYNC,
                "groups": sorted(entry["groups"]),
            },
        )
        scope = entry["project"] or entry["org"]
        touched[(type(scope).__name__, scope.pk)] = scope
    for scope in touched.values():
        _sync_object_perms(user, scope)
    if touched:
        _sync_flags(user)
    for org_id in {scope.org_id if isinstance(scope, Project) else scope.pk for scope in dropped.values()}:
        _access_shrank(user, Organization.objects.get(pk=org_id), IDP_GROUP_SYNC)
    for org in {entry["org"].pk: entry["org"] for entry in wanted.values()}.values():
        _ensure_personal_project(actor=None, user=user, org=org)


@transaction.atomic
def _sso_provision(*, claims: dict) -> User:
    subject = str(claims.get("sub") or "").strip()
    if not subject:
        raise ValidationFailed("The identity provider did not say who you are (no subject).")
    try:
        email = _normalise_email("email", str(claims.get("email") or ""))
    except ValidationFailed as exc:
        raise ValidationFailed("The identity provider did not send a valid email address for you.") from exc
    _lock_subject(subject)
    user = User.objects.filter(idp_subject=subject).first()
    changes: dict[str, list] = {}
    verified = email_verified(claims)
    if user is None:
        holder = User.objects.filter(email__iexact=email).first()
        if holder is not None and holder.source != User.Source.IDP:
            raise Conflict(
                f"A local account already uses {email}; single sign-on does not take over password "
                "accounts. Sign in with your password, or ask an operator."
            )
        if holder is not None and holder.idp_subject:
            raise Conflict(f"{email} belongs to another single sign-on identity; ask your administrator.")
        if holder is not None and not verified:
            raise Conflict(
                f"An account already uses {email}, and your identity provider has not verified that this "
                "address is yours; ask your administrator."
            )
        if holder is not None:
            user = holder
            changes["idp_subject"] = [None, subject]
            user.idp_subject = subject
    if user is not None and not user.is_active:
        raise Forbidden("Your account is deactivated; ask your administrator.")
    groups = _claim_groups(claims)
    mappings = confine_mappings(
        list(IdpGroupMapping.objects.filter(group__in=groups).select_related("org", "project")),
        email=email,
        verified=verified,
    )
    first_name, last_name = _sso_names(claims)
    if user is None:
        if not mappings and _sso_default_org() is None:
            raise Forbidden(NO_ORG_MESSAGE)
        user = User(
            username=_sso_username(claims, email),
            email=email,
            first_name=first_name,
            last_name=last_name,
            source=User.Source.IDP,
            idp_subject=subject,
            email_verified=verified,
        )
        user.set_unusable_password()
        user.save()
        audit_log(
            actor=None,
            action="user.create",
            target=user,
            details={"source": "single sign-on", "subject": subject},
        )
    else:
        if User.objects.filter(email__iexact=email).exclude(pk=user.pk).exists():
            raise Conflict(f"Another account already uses {email}; ask your administrator.")
        data = {"email": email, "email_verified": verified}
        data.update({"first_name": first_name} if first_name else {})
        data.update({"last_name": last_name} if last_name else {})
        changes |= apply_changes(user, data)
        if changes:
            user.save()
            audit_log(
                actor=None,
                action="user.update",
                target=user,
                details={"changes": changes, "via": "single sign-on"},
            )
    _sync_idp_roles(user, mappings)
    if not _has_membership(user):
        default_org = _sso_default_org()
        if default_org is not None:
            _ensure_personal_project(actor=None, user=user, org=default_org)
    return user


def sso_login(*, claims: dict) -> User:
    """The user a sign-on with these (verified) claims is for: found by subject, created just in time,
    names and email refreshed, and roles synced from the groups claim through the IdP group mappings.

    Two steps on purpose: the sync commits first, then a user left in no organization is refused, so
    someone removed from every group at the provider loses those roles even though the login fails.
    Raises ``ApplicationError`` with a message for the person when the login is refused.
    """
    user = _sso_provision(claims=claims)
    if not _has_membership(user):
        raise Forbidden(NO_ORG_MESSAGE)
    authz.forget(user)
    return user
