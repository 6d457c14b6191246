"""Invitations by email: create, revoke, open by token, accept (creating a local account if needed)."""

import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.utils import timezone

from paas import authz
from paas.audit import audit_log
from paas.errors import Conflict, Forbidden, ValidationFailed
from paas.mail import send_email
from tenancy.invitation_limits import check_invitation_rate
from tenancy.models import Invitation, Organization, Project, RoleAssignment, User
from tenancy.roles import Role
from tenancy.selectors import invitation_for_token, is_member, token_digest
from tenancy.services.common import (
    _check_scope,
    _ensure_personal_project,
    _normalise_email,
    _sync_flags,
    _sync_object_perms,
)
from tenancy.signals import invitation_accepted


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
    send_email(
        to=[invitation.email],
        subject=f"You are invited to {invitation.org}",
        template="tenancy/invitation_email.txt",
        context=context,
        org=invitation.org,
    )


def _operator_may_invite_first_admin(actor: User, *, org: Organization, role: str, project) -> bool:
    if not (authz.is_operator(actor) and role == Role.ORG_ADMIN and project is None):
        return False
    return not RoleAssignment.objects.filter(org=org, project=None, role=Role.ORG_ADMIN).exists()


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
    """Invite someone by email; returns the invitation and its token (only ever sent by email).

    Org admins invite to their org. Operators, who do not see inside an org, may invite its first
    admin only: while the org has no org admin (onboarding a customer, or an org whose admins all left).
    Otherwise an operator could invite an account of their own as an admin and be inside the org with
    no support access; with one, they act as that org's admin (the first rule)."""
    if not _operator_may_invite_first_admin(actor, org=org, role=role, project=project):
        authz.require(actor, "administer_organization", org, message="Only org admins may invite users.")
    email = _normalise_email("email", email)
    if authz.is_operator(actor) and email.lower() == (actor.email or "").lower():
        # Operators reach inside an org only through a time-bound support access, never by a role.
        raise Forbidden("You cannot invite yourself to an organization; ask one of its admins.")
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
        token_digest=token_digest(token),
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
