"""How many invitations may be sent: a rolling hour, per inviting person and per organization.

Invitations send email to addresses nobody has verified yet, so an unlimited sender is a spam cannon
with the platform's name on it. The count is of invitation rows created in the last hour (revoked ones
included: the email went out), read under a lock on the organization's row so that concurrent requests
cannot both slip under the limit. Limits: ``INVITATIONS_PER_HOUR_PER_ACTOR`` and
``INVITATIONS_PER_HOUR_PER_ORG``.
"""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from paas.errors import RateLimited

WINDOW = timedelta(hours=1)


def check_invitation_rate(*, actor, org) -> None:
    """Raise ``RateLimited`` if ``actor`` or ``org`` has sent its hour's worth of invitations. Call
    inside the creating transaction."""
    from tenancy.models import Invitation, Organization

    Organization.objects.select_for_update().filter(pk=org.pk).first()
    since = timezone.now() - WINDOW
    recent = Invitation.objects.filter(created_at__gt=since)
    oldest = None
    per_actor, per_org = settings.INVITATIONS_PER_HOUR_PER_ACTOR, settings.INVITATIONS_PER_HOUR_PER_ORG
    if recent.filter(invited_by=actor).count() >= per_actor:
        oldest = recent.filter(invited_by=actor).order_by("created_at").values_list("created_at", flat=True)
        who = f"You have sent {per_actor} invitations in the last hour"
    elif recent.filter(org=org).count() >= per_org:
        oldest = recent.filter(org=org).order_by("created_at").values_list("created_at", flat=True)
        who = f"{org} has sent {per_org} invitations in the last hour"
    if oldest is None:
        return
    first = oldest.first() or timezone.now()
    minutes = max(1, int(((first + WINDOW) - timezone.now()).total_seconds() // 60) + 1)
    raise RateLimited(
        f"{who}, the most allowed; try again in {minutes} minute{'s' if minutes != 1 else ''}.",
        fields={"email": "Too many invitations sent recently; try again later."},
    )
