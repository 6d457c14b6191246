"""Accounts: names and (de)activation."""

from django.db import transaction

from paas import authz
from paas.audit import audit_log
from paas.errors import ValidationFailed
from tenancy.models import User
from tenancy.services.invitations import _revoke_invitations_to
from tenancy.signals import access_changed


@transaction.atomic
def user_update(
    *,
    actor: User,
    user: User,
    first_name: str | None = None,
    last_name: str | None = None,
    is_active: bool | None = None,
) -> User:
    """Edit a user's name (self, or an operator) or (de)activate the account (operators only)."""
    if actor.pk != user.pk:
        authz.require_operator(actor, message="Only operators may edit other users' accounts.")
    changes = {}
    for field, value in (("first_name", first_name), ("last_name", last_name)):
        if value is not None and value.strip() != getattr(user, field):
            changes[field] = [getattr(user, field), value.strip()]
            setattr(user, field, value.strip())
    if is_active is not None and is_active != user.is_active:
        authz.require_operator(actor, message="Only operators may activate or deactivate accounts.")
        if actor.pk == user.pk:
            raise ValidationFailed(
                "You cannot deactivate your own account.", fields={"is_active": "Not yourself."}
            )
        changes["is_active"] = [user.is_active, is_active]
        user.is_active = is_active
    if changes:
        user.save()
        audit_log(actor=actor, action="user.update", target=user, details={"changes": changes})
    if "is_active" in changes:
        revoked = (
            []
            if user.is_active
            else _revoke_invitations_to(actor=actor, email=user.email, org=None, via="account deactivated")
        )
        access_changed.send(
            sender=User,
            users=[user],
            org=None,
            reason="account " + ("reactivated" if user.is_active else "deactivated"),
            revoked_invitations=revoked,
        )
    return user
