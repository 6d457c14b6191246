"""Single sign-on: IdP group mappings, and the sign-on that provisions a user and syncs their roles."""

import logging
import re

from django.conf import settings
from django.db import IntegrityError, connection, transaction

from paas import authz
from paas.audit import apply_changes, audit_log
from paas.errors import Conflict, Forbidden, ValidationFailed
from tenancy.models import IdpGroupMapping, Organization, Project, RoleAssignment, User
from tenancy.roles import ORG_ROLES, PROJECT_ROLES, Role
from tenancy.services.common import (
    _ensure_personal_project,
    _normalise_email,
    _sync_flags,
    _sync_object_perms,
)
from tenancy.services.roles import _access_shrank, _drop_assignment
from tenancy.sso_rules import confine_mappings, email_verified

logger = logging.getLogger(__name__)


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
    """Serialise concurrent sign-ons of one person (two tabs) until commit."""
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
