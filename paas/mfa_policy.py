"""Who must use a second factor, and whether a session passed it (the one answer every door asks).

MFA is required of a local user who is a member of an active organization that requires it
(``Organization.mfa_required``, set by its admins) and, when ``PAAS_MFA_REQUIRED_FOR_OPERATORS`` is on
(production), of operators. Users of the identity provider (``source="idp"``) never: their provider
authenticates them. A user with a confirmed device passes the one-time-code step at each sign-in even
where it is not required (:func:`mfa_applies`).

In ``paas`` because the API token service asks it; ``paas`` imports no tenancy model, so the org flag is
read through ``authz.MEMBERSHIP_MODEL``. The devices are django-otp's (``tenancy/mfa.py`` writes them).
"""

import functools

from django.apps import apps
from django.conf import settings
from django.db import connection

from paas import authz


def _local(user) -> bool:
    return bool(user is not None and user.is_authenticated and getattr(user, "source", "local") == "local")


@functools.cache
def _answer_sql() -> str:
    """The statement of :func:`_answer`, written once a process from the models' tables: the ORM took
    about 9 ms to build and compile its four subqueries on each request, the database 1 ms to run it."""
    from django_otp import device_classes

    memberships = apps.get_model(authz.MEMBERSHIP_MODEL)
    orgs = memberships._meta.get_field("org").related_model
    quote = connection.ops.quote_name
    # Table names from the models; the user id is a parameter.
    required = (
        f"EXISTS (SELECT 1 FROM {quote(memberships._meta.db_table)} m"  # noqa: S608
        f" JOIN {quote(orgs._meta.db_table)} o ON o.id = m.org_id"
        " WHERE m.user_id = %(user)s AND o.is_active AND o.mfa_required)"
    )
    devices = " OR ".join(
        f"EXISTS (SELECT 1 FROM {quote(model._meta.db_table)} d"  # noqa: S608
        " WHERE d.user_id = %(user)s AND d.confirmed)"
        for model in device_classes()
    )
    return f"SELECT {required}, {devices or 'false'}"


def _answer(user) -> None:
    """Both answers of this module for ``user`` in ONE query (the gate asks them on every request):
    whether a membership of an active org requires MFA and whether any confirmed device exists."""
    with connection.cursor() as cursor:
        cursor.execute(_answer_sql(), {"user": user.pk})
        required, device = cursor.fetchone()
    operator_rule = authz.is_operator(user) and settings.PAAS_MFA_REQUIRED_FOR_OPERATORS
    user._mfa_required = bool(required) or operator_rule
    user._mfa_has_device = bool(device)


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
