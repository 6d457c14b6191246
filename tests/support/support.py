"""Support access in tests: an approved grant made directly (the workflow of ``tenancy.support`` is
tested on its own), so a test about the operator's view can give them one in a line."""

import datetime as dt

from django.utils import timezone

from paas import authz
from tenancy.support_models import SupportAccess, SupportLevel, SupportState


def grant_support(
    *, operator, org, level: str = SupportLevel.READ, minutes: int = 60, by=None
) -> SupportAccess:
    """An approved support access of ``operator`` to ``org`` at ``level`` ("read" or "admin"), starting
    now and ending in ``minutes``; ``by`` the org admin who approved it (None: pre-approved). Drops the
    operator's permission caches so the grant counts at once."""
    now = timezone.now()
    access = SupportAccess.objects.create(
        org=org,
        user=operator,
        reason="Customer ticket (test)",
        level=level,
        duration_minutes=minutes,
        state=SupportState.APPROVED,
        decided_by=by,
        decided_at=now,
        starts_at=now,
        expires_at=now + dt.timedelta(minutes=minutes),
    )
    authz.forget(operator)
    return access
