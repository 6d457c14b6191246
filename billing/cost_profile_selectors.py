"""Permission-filtered reads of cluster cost profiles (chargeback rates): operators only.

Rates are the provider's own costs: operators see every cluster's, with the history; nobody else sees
any (an org admin's dashboards show the chargeback figures, never the rates behind them).
"""

import datetime as dt

from django.db.models import QuerySet
from django.utils import timezone

from billing.models import CostProfile
from paas import authz

#: Where a profile stands now.
FUTURE, IN_FORCE, PAST = "future", "in force", "past"


def cost_profile_list_for(user) -> QuerySet[CostProfile]:
    """The cost profiles ``user`` may see: all for operators, none for anyone else."""
    if not (authz.is_active_user(user) and authz.is_operator(user)):
        return CostProfile.objects.none()
    return CostProfile.objects.select_related("cluster", "created_by").order_by(
        "cluster__name", "-effective_from", "-pk"
    )


def cost_profile_get_for(user, pk) -> CostProfile:
    """One cost profile ``user`` may see (NotFound otherwise, the same as a missing one)."""
    return authz.get_visible(cost_profile_list_for(user), pk, user=user)


def in_force_ids(cluster_ids, moment: dt.datetime | None = None) -> set[int]:
    """The ids of the profiles in force at ``moment`` (default now) on ``cluster_ids`` (None: every
    cluster), one per cluster at most: the one with the latest ``effective_from`` at or before it."""
    moment = moment or timezone.now()
    rows = CostProfile.objects.filter(effective_from__lte=moment)
    if cluster_ids is not None:
        rows = rows.filter(cluster_id__in=list(cluster_ids))
    rows = (
        rows.order_by("cluster_id", "-effective_from", "-pk")
        .distinct("cluster_id")
        .values_list("pk", flat=True)
    )
    return set(rows)


def standing(profile: CostProfile, in_force: set[int], moment: dt.datetime | None = None) -> str:
    """ "future", "in force" or "past" for ``profile`` given the ids in force (``in_force_ids``)."""
    if profile.pk in in_force:
        return IN_FORCE
    return FUTURE if profile.effective_from > (moment or timezone.now()) else PAST
