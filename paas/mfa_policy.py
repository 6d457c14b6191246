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
from django.contrib.auth import get_user_model

from paas import authz


def _local(user) -> bool:
    return bool(user is not None and user.is_authenticated and getattr(user, "source", "local") == "local")


def _answer(user) -> None:
    """Both answers of this module for ``user`` in ONE query (the gate asks them on every request):
    whether a membership of an active org requires MFA and whether any confirmed device exists."""
    from django.db.models import Exists, OuterRef, Value
    from django_otp import device_classes

    memberships = apps.get_model(authz.MEMBERSHIP_MODEL).objects
    required = Exists(memberships.filter(user=OuterRef("pk"), org__is_active=True, org__mfa_required=True))
    device = Value(False)
    for model in device_classes():
        exists = Exists(model.objects.filter(user=OuterRef("pk"), confirmed=True))
        device = exists if isinstance(device, Value) else (device | exists)
    row = get_user_model().objects.filter(pk=user.pk).annotate(required=required, device=device)
    answer = row.values_list("required", "device").first() or (False, False)
    user._mfa_required = bool(answer[0]) or (
        authz.is_operator(user) and settings.PAAS_MFA_REQUIRED_FOR_OPERATORS
    )
    user._mfa_has_device = bool(answer[1])


def mfa_required_for(user) -> bool:
    """Whether ``user`` must have a second factor (enrol at next sign-in when they have none)."""
    if not _local(user):
        return False
    if getattr(user, "_mfa_required", None) is None:
        _answer(user)
    return user._mfa_required


def has_device(user) -> bool:
    """Whether ``user`` has a confirmed device (TOTP, recovery codes or a passkey)."""
    if not _local(user):
        return False
    if getattr(user, "_mfa_has_device", None) is None:
        _answer(user)
    return user._mfa_has_device


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
