"""Who must use a second factor, and whether a session passed it (the one answer every door asks).

MFA is required of a local user who is a member of an active organization that requires it
(``Organization.mfa_required``, set by its admins) and, when ``PAAS_MFA_REQUIRED_FOR_OPERATORS`` is on
(production), of operators. Users of the identity provider (``source="idp"``) never: their provider
authenticates them. A user with a confirmed device passes the one-time-code step at each sign-in even
where it is not required (:func:`mfa_applies`).

In ``paas`` because the API token service asks it; ``paas`` imports no tenancy model, so the org flag is
read through ``authz.MEMBERSHIP_MODEL``. The devices are django-otp's (``tenancy/mfa.py`` writes them).
"""

from django.apps import apps
from django.conf import settings

from paas import authz


def _local(user) -> bool:
    return bool(user is not None and user.is_authenticated and getattr(user, "source", "local") == "local")


def mfa_required_for(user) -> bool:
    """Whether ``user`` must have a second factor (enrol at next sign-in when they have none)."""
    if not _local(user):
        return False
    cached = getattr(user, "_mfa_required", None)
    if cached is None:
        if authz.is_operator(user) and settings.PAAS_MFA_REQUIRED_FOR_OPERATORS:
            cached = True
        else:
            memberships = apps.get_model(authz.MEMBERSHIP_MODEL).objects
            cached = memberships.filter(user=user, org__is_active=True, org__mfa_required=True).exists()
        user._mfa_required = cached
    return cached


def has_device(user) -> bool:
    """Whether ``user`` has a confirmed device (TOTP or recovery codes)."""
    if not _local(user):
        return False
    cached = getattr(user, "_mfa_has_device", None)
    if cached is None:
        from django_otp import user_has_device

        cached = user._mfa_has_device = user_has_device(user, confirmed=True)
    return cached


def mfa_applies(user) -> bool:
    """Whether a session of ``user`` must pass the one-time-code step: required, or enrolled anyway."""
    return _local(user) and (mfa_required_for(user) or has_device(user))


def session_verified(user) -> bool:
    """Whether this request's user passed the one-time-code step in this session (django-otp's
    ``OTPMiddleware`` sets ``is_verified``; a user loaded by a token has no such step)."""
    is_verified = getattr(user, "is_verified", None)
    return bool(is_verified and is_verified())


def forget(user) -> None:
    """Drop the per-request answers (after an enrolment or a removal in the same request)."""
    for name in ("_mfa_required", "_mfa_has_device"):
        if hasattr(user, name):
            delattr(user, name)
