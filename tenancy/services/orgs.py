"""Organizations: onboarding a tenant with its first admin's invitation, and changing one."""

from django.db import transaction

from paas import authz
from paas.audit import apply_changes, audit_log
from paas.errors import ValidationFailed
from tenancy.models import Invitation, Organization, Quota, User
from tenancy.roles import Role
from tenancy.services.common import _normalise_email, _required_text, _sync_flags
from tenancy.services.invitations import invitation_create
from tenancy.signals import access_changed
from tenancy.validation import clean_slug


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
    *,
    actor: User,
    org: Organization,
    display_name: str | None = None,
    is_active: bool | None = None,
    mfa_required: bool | None = None,
):
    authz.require(actor, "change_organization", org)
    changes = (
        apply_changes(org, {"display_name": _required_text("display_name", display_name)})
        if (display_name is not None)
        else {}
    )
    if mfa_required is not None and bool(mfa_required) != org.mfa_required:
        # The org's own security policy: its admins set it (members enrol at next sign-in).
        authz.require(
            actor, "administer_organization", org, message="Only the organization's admins may require MFA."
        )
        changes["mfa_required"] = [org.mfa_required, bool(mfa_required)]
        org.mfa_required = bool(mfa_required)
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
