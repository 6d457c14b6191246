"""The organizations' data keys (:mod:`paas.keyring`): who sees them, rotation and crypto-shredding.

- Operators see every organization's key and may rotate any; they alone destroy an org's keys, and
  only a deactivated org's, confirmed by its name (its secrets become unreadable for good).
- An org's admins see their org's key and may rotate it.

Every change is audited in the org's own chain, in the transaction that makes it.
"""

from dataclasses import dataclass
from datetime import datetime

from django.apps import apps
from django.db import transaction
from django.db.models import Model

from paas import authz, keyring
from paas.audit import audit_log
from paas.errors import Conflict, Forbidden, NotFound, ValidationFailed
from paas.keyring_models import KeyState, OrgDataKey

ADMIN_PERM = "administer_organization"


def _orgs():
    return apps.get_model(authz.TENANT_MODEL).objects.all()


# --- selectors --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OrgKeyRow:
    """One organization's key as the key pages show it."""

    org: Model
    version: int | None  # the active key's version (None: no secret yet, or destroyed)
    state: str  # "active", "none" (no secret stored yet) or "destroyed"
    created_at: datetime | None
    secrets: int  # rows of the org holding a secret
    can_rotate: bool
    can_destroy: bool


def org_key_orgs_for(user):
    """The organizations whose keys ``user`` may see: every org for operators, their own for org admins."""
    if authz.is_operator(user):
        return _orgs()
    return authz.filter_for(user, ADMIN_PERM, _orgs())


def org_key_list_for(user, *, org_ids=None) -> list[OrgKeyRow]:
    """The key rows of every org ``user`` may see (of ``org_ids`` among them when given), by name."""
    orgs = org_key_orgs_for(user).order_by("name")
    return org_key_rows(user, orgs if org_ids is None else orgs.filter(pk__in=org_ids))


def org_key_rows(user, orgs) -> list[OrgKeyRow]:
    """The key rows of ``orgs`` (a page of :func:`org_key_orgs_for`), in their order: their keys and
    secret counts read for those orgs only."""
    orgs = list(orgs)
    keys: dict[int, OrgDataKey] = {}
    destroyed: set[int] = set()
    for key in OrgDataKey.objects.filter(org__in=[o.pk for o in orgs]).order_by("version"):
        if key.state == KeyState.ACTIVE:
            keys[key.org_id] = key
        elif key.state == KeyState.DESTROYED:
            destroyed.add(key.org_id)
    counts = keyring.secrets_count_by_org(org_ids=[o.pk for o in orgs])
    operator = authz.is_operator(user)
    rows = []
    for org in orgs:
        key = keys.get(org.pk)
        state = KeyState.ACTIVE if key else (KeyState.DESTROYED if org.pk in destroyed else "none")
        rows.append(
            OrgKeyRow(
                org=org,
                version=key.version if key else None,
                state=str(state),
                created_at=key.created_at if key else None,
                secrets=counts.get(org.pk, 0),
                can_rotate=operator or authz.has_perm(user, ADMIN_PERM, org),
                can_destroy=operator and not org.is_active and (key is not None or counts.get(org.pk, 0) > 0),
            )
        )
    return rows


def org_key_get_for(user, org_id) -> OrgKeyRow:
    """One org's key row; NotFound for an org the user may not see (or none)."""
    if not str(org_id).isdigit():
        raise NotFound("No such organization.")
    rows = org_key_list_for(user, org_ids=[int(org_id)])
    if not rows:
        raise NotFound("No such organization.")
    return rows[0]


# --- services ---------------------------------------------------------------------------------------
def _require_rotate(actor, org) -> None:
    if authz.is_operator(actor) or authz.has_perm(actor, ADMIN_PERM, org):
        return
    if authz.has_perm(actor, "view_organization", org):
        raise Forbidden("Only the organization's admins (or an operator) may rotate its key.")
    raise NotFound("No such organization.")


@transaction.atomic
def org_key_rotate(*, actor, org) -> OrgDataKey:
    """A new data key for ``org``; every secret of the org (and only of the org) re-encrypted under it;
    the old key destroyed. Values already unreadable (keys destroyed before) stay so."""
    _require_rotate(actor, org)
    key, counts, unreadable = keyring.rotate_org(org.pk)
    audit_log(
        actor=actor,
        action="org_key.rotate",
        target=key,
        org=org,
        details={
            "version": key.version,
            "reencrypted": sum(counts.values()),
            "fields": {name: n for name, n in sorted(counts.items()) if n},
            "unreadable": unreadable,
        },
    )
    return key


@transaction.atomic
def org_key_destroy(*, actor, org, confirm: str) -> int:
    """Crypto-shred ``org``: every data key of it destroyed, so its stored secrets can never be read
    again (pages and API say so). Operators only, a deactivated org only, confirmed by the org's name.
    Returns how many keys were destroyed."""
    authz.require_operator(actor, message="Only platform operators may destroy an organization's keys.")
    org = _orgs().select_for_update().get(pk=org.pk)
    if org.is_active:
        raise Conflict(
            f"{org.name} is active: deactivate the organization before destroying its keys.",
            code="org_active",
        )
    if (confirm or "").strip() != org.name:
        raise ValidationFailed(
            "Confirm with the organization's name.",
            fields={
                "confirm": f"Type the organization's name ({org.name}) to confirm: this cannot be undone."
            },
        )
    destroyed, counts = keyring.shred_org(org.pk)
    audit_log(
        actor=actor,
        action="org_key.destroy",
        target=org,
        org=org,
        details={"keys": destroyed, "moved_from_platform_keys": sum(counts.values())},
    )
    return destroyed
