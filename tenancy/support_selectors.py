"""Every read of support access (tenancy/support_models.py), filtered by who asks.

An operator sees the requests they made; an org admin (a person holding the org admin role in the org,
not an operator holding administrative support access there) sees every request for their org. No one
else sees any. What the banner shows (:func:`banner_for`) comes from here too.
"""

from django.db.models import Q, QuerySet
from django.utils import timezone

from paas import authz
from tenancy.models import Organization, RoleAssignment, SupportAccess, SupportState, User
from tenancy.roles import Role


def is_org_admin(user, org: Organization) -> bool:
    """Does ``user`` hold the org admin role in ``org`` (an active org) themselves? Support access
    never counts: only the org's own admins decide about it."""
    if not authz.is_active_user(user) or not org.is_active:
        return False
    return RoleAssignment.objects.filter(user=user, org=org, role=Role.ORG_ADMIN, project=None).exists()


def admin_org_ids(user) -> QuerySet:
    """The ids of the active orgs where ``user`` holds the org admin role."""
    return RoleAssignment.objects.filter(
        user=user, role=Role.ORG_ADMIN, project=None, org__is_active=True
    ).values("org_id")


def org_admins(org: Organization) -> QuerySet[User]:
    """The org's admins, who decide on its support requests (and are emailed about them)."""
    return User.objects.filter(
        is_active=True, role_assignments__org=org, role_assignments__role=Role.ORG_ADMIN
    ).distinct()


def support_list_for(user) -> QuerySet[SupportAccess]:
    """The requests ``user`` may see: their own and, for an org admin, every one for their orgs."""
    if not authz.is_active_user(user):
        return SupportAccess.objects.none()
    return SupportAccess.objects.filter(Q(user=user) | Q(org_id__in=admin_org_ids(user))).select_related(
        "org", "user", "decided_by"
    )


def support_get_for(user, pk) -> SupportAccess:
    return authz.get_visible(support_list_for(user), pk, user=user)


def active_q(now=None) -> Q:
    """Approved and within its window: the rows ``paas.authz`` honours."""
    now = now or timezone.now()
    return Q(state=SupportState.APPROVED, starts_at__lte=now, expires_at__gt=now)


def status_of(access: SupportAccess, now=None) -> str:
    """What a request is now: its state, with an approved one told apart as active or expired."""
    now = now or timezone.now()
    if access.state == SupportState.APPROVED:
        return "active" if access.expires_at > now else "expired"
    return access.state


def org_choices_for_request(user) -> QuerySet[Organization]:
    """The orgs an operator may ask support access to: the active ones (they run them all)."""
    if not authz.is_operator(user):
        return Organization.objects.none()
    return Organization.objects.filter(is_active=True).order_by("name")


def support_orgs_administered(user) -> QuerySet[Organization]:
    """The orgs whose support settings ``user`` may change: where they are an org admin."""
    return Organization.objects.filter(pk__in=admin_org_ids(user)).order_by("name")


def banner_for(user) -> dict:
    """What the support banner shows ``user`` now: ``using`` (their own active grants, for the support
    person) and ``given`` (active grants to the orgs they administer, for the org's admins)."""
    if not authz.is_active_user(user) or not user.is_staff:  # operators and org admins are staff
        return {"using": [], "given": []}
    # Every studio page asks, and grants in force are few and short: whether any is in force at all
    # is a small query; both lists then come in one (their own grants when an operator, and the
    # others' grants to the orgs they administer).
    now = timezone.now()
    if not SupportAccess.objects.filter(active_q(now)).exists():
        return {"using": [], "given": []}
    theirs = Q(org_id__in=admin_org_ids(user)) & ~Q(user=user)
    shown = (Q(user=user) | theirs) if authz.is_operator(user) else theirs
    grants = list(
        SupportAccess.objects.filter(active_q(now), shown)
        .select_related("org", "user")
        .order_by("expires_at", "pk")
    )
    return {
        "using": [grant for grant in grants if grant.user_id == user.pk],
        "given": [grant for grant in grants if grant.user_id != user.pk],
    }
