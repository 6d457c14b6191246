"""Every permission-filtered read in tenancy. Lists go through ``paas.authz.filter_for``."""

import hashlib

from django.db.models import Q, QuerySet

from paas import authz
from paas.errors import NotFound
from paas.models import AuditEvent
from tenancy.models import IdpGroupMapping, Invitation, Organization, Project, Quota, RoleAssignment, User
from tenancy.roles import Role


def is_member(user: User, org: Organization) -> bool:
    """Whether ``user`` holds any role in ``org`` (on it or on one of its projects)."""
    return RoleAssignment.objects.filter(user=user, org=org).exists()


def token_digest(token: str) -> str:
    """What an invitation keeps of its token (the token itself is only ever in the email)."""
    return hashlib.sha256(token.encode()).hexdigest()


def invitation_for_token(token: str) -> Invitation:
    """The invitation a token opens; unknown tokens look like missing ones."""
    invitation = (
        Invitation.objects.select_related("org", "project")
        .filter(token_digest=token_digest(token or ""))
        .first()
    )
    if invitation is None:
        raise NotFound("This invitation link is not valid.")
    return invitation


def org_list_for(user) -> QuerySet[Organization]:
    """Orgs the user may see: operators all; org admins and PaaS admins theirs; members their own."""
    visible = authz.permission_q(user, "view_organization", Organization)
    if not authz.is_operator(user) and authz.is_active_user(user):
        visible |= Q(pk__in=RoleAssignment.objects.filter(user=user, org__is_active=True).values("org_id"))
    return Organization.objects.filter(visible).distinct()


def org_get_for(user, pk) -> Organization:
    return authz.get_visible(org_list_for(user), pk, user=user)


def administered_org_ids(user) -> QuerySet:
    return authz.filter_for(user, "administer_organization", Organization.objects.all()).values("pk")


def project_list_for(user) -> QuerySet[Project]:
    return authz.filter_for(user, "view_project", Project.objects.select_related("org", "owner"))


def project_get_for(user, pk) -> Project:
    return authz.get_visible(project_list_for(user), pk, user=user)


def role_assignment_list_for(user) -> QuerySet[RoleAssignment]:
    """Everyone their own; org admins their org's; operators the platform's (the operator role) and,
    through a support access, the org's (``paas.authz``: read or admin)."""
    base = RoleAssignment.objects.select_related("user", "org", "project")
    if not authz.is_active_user(user):
        return base.none()
    return base.filter(
        Q(user=user)
        | Q(org__in=administered_org_ids(user))
        | authz.permission_q(user, "view_roleassignment", RoleAssignment)
    )


def role_assignment_get_for(user, pk) -> RoleAssignment:
    return authz.get_visible(role_assignment_list_for(user), pk, user=user)


def invitation_list_for(user) -> QuerySet[Invitation]:
    """Org admins their org's; operators the invitations of org admins (onboarding, the one invitation
    they may send) and, through a support access, the org's."""
    base = Invitation.objects.select_related("org", "project", "invited_by")
    visible = Q(org__in=administered_org_ids(user)) | authz.permission_q(user, "view_invitation", Invitation)
    if authz.is_operator(user):
        visible |= Q(role=Role.ORG_ADMIN, project__isnull=True)
    return base.filter(visible)


def invitation_get_for(user, pk) -> Invitation:
    return authz.get_visible(invitation_list_for(user), pk, user=user)


def idp_mapping_list_for(user) -> QuerySet[IdpGroupMapping]:
    """IdP group mappings: org admins their orgs' (an operator through a support access); nobody else."""
    base = IdpGroupMapping.objects.select_related("org", "project", "created_by")
    return authz.filter_for(user, "view_idpgroupmapping", base)


def idp_mapping_get_for(user, pk) -> IdpGroupMapping:
    return authz.get_visible(idp_mapping_list_for(user), pk, user=user)


def quota_list_for(user) -> QuerySet[Quota]:
    """Org quotas to those who see the org (operators set them); project quotas to those who see the
    project (operators only through a support access)."""
    base = Quota.objects.select_related("org", "project__org").prefetch_related("gpu_models")
    org_side = authz.permission_q(user, "view_organization", Organization, prefix="org__")
    project_side = authz.permission_q(user, "view_project", Project, prefix="project__")
    return base.filter((Q(org__isnull=False) & org_side) | (Q(project__isnull=False) & project_side))


def quota_get_for(user, pk) -> Quota:
    return authz.get_visible(quota_list_for(user), pk, user=user)


def user_list_for(user) -> QuerySet[User]:
    """Operators see every user; org admins the members of their orgs; everyone themselves."""
    if authz.is_operator(user):
        return User.objects.all()
    if not authz.is_active_user(user):
        return User.objects.none()
    members = RoleAssignment.objects.filter(org__in=administered_org_ids(user)).values("user_id")
    return User.objects.filter(Q(pk=user.pk) | Q(pk__in=members))


def user_get_for(user, pk) -> User:
    return authz.get_visible(user_list_for(user), pk, user=user)


def audit_event_list_for(user) -> QuerySet[AuditEvent]:
    """Org admins their orgs' events; operators the platform's events (in no org) and the events of
    the orgs a support access opens to them (``view_audit``: read or admin); others none."""
    orgs = authz.filter_for(user, "view_audit", Organization.objects.all()).values("pk")
    visible = Q(authz.among("org_id", orgs))  # (with the operators' OR below: two index scans, ORed)
    if authz.is_operator(user):
        visible |= Q(org__isnull=True)
    return AuditEvent.objects.filter(visible)


def audit_clusters_for(user) -> list[tuple[int, str]]:
    """The clusters named in the audit events ``user`` may see (kubectl requests): ``(id, name)``, the
    name as last recorded. From the events themselves, so no other tenant's cluster is named."""
    from django.db.models import Max
    from django.db.models.fields.json import KT

    rows = (
        audit_event_list_for(user)
        .filter(cluster_id__isnull=False)
        .order_by()
        .values("cluster_id")
        .annotate(name=Max(KT("details__cluster")))
        .order_by("name", "cluster_id")
    )
    return [(row["cluster_id"], row["name"] or f"cluster {row['cluster_id']}") for row in rows]


def can_view_audit(user) -> bool:
    """Operators (the platform's events) and whoever holds ``view_audit`` on an org (org admins, a
    support access; never a PaaS admin)."""
    orgs = authz.filter_for(user, "view_audit", Organization.objects.all())
    return authz.is_operator(user) or authz.remembered(user, "view_audit_any", orgs.exists)


def audit_event_get_for(user, pk) -> AuditEvent:
    return authz.get_visible(audit_event_list_for(user), pk, user=user)


def workspaces_for(user) -> QuerySet[Project]:
    """The projects a user works in (their role assignments), personal first: the portal's switcher."""
    return (
        Project.objects.filter(role_assignments__user=user, org__is_active=True)
        .select_related("org")
        .distinct()
        .order_by("kind", "org__name", "name")
    )


def deactivated_orgs_of(user) -> QuerySet[Organization]:
    """The deactivated organizations the user is a member of (their roles there lie dormant): the
    portal tells them why they see nothing. Never anyone else's."""
    orgs = Organization.objects.filter(is_active=False, role_assignments__user=user)
    return orgs.distinct().order_by("name")


def administers_any_org(user) -> bool:
    """Operators and org admins: who may open the tenancy and inventory sections of the studio (a
    PaaS admin sees the catalog sections and nothing else)."""
    return authz.is_operator(user) or authz.remembered(
        user, "administers_any_org", lambda: administered_org_ids(user).exists()
    )


def can_see_workspace_activity(user, project: Project) -> bool:
    return authz.has_perm(user, "view_instances", project)


def workspace_activity(user, project: Project, *, limit: int = 10) -> QuerySet[AuditEvent]:
    """The latest audit events of one workspace, for the people who work in it (the landing page).

    The caller has already reached ``project`` through ``project_get_for``; this checks that the user
    works in it (``view_instances``: workspace admins, collaborators, org admins). A PaaS admin, who
    may view the project to manage its catalog, sees no activity, nor can a page show another
    workspace's activity by passing the wrong project.
    """
    if not can_see_workspace_activity(user, project):
        return AuditEvent.objects.none()
    return (
        AuditEvent.objects.filter(project=project)
        .select_related("actor")
        .order_by("-created_at", "-pk")[:limit]
    )
