"""Support access for tests: an operator's approved grant to one org, made directly (the workflow
itself, request and approval, is tested in tests/integration/test_support_access.py)."""

from datetime import timedelta

from django.utils import timezone

from paas import authz
from tenancy.models import SupportAccess


def grant_support(*, operator, org, level: str, minutes: int = 60) -> SupportAccess:
    """An approved ``level`` ("read" or "admin") support access of ``operator`` to ``org``, starting now."""
    now = timezone.now()
    access = SupportAccess.objects.create(
        org=org,
        user=operator,
        reason="test",
        level=level,
        duration_minutes=minutes,
        state="approved",
        decided_at=now,
        starts_at=now,
        expires_at=now + timedelta(minutes=minutes),
    )
    authz.forget(operator)
    return access
