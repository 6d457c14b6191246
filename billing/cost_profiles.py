"""Cluster cost profiles (chargeback rates): the operators' services.

A cluster's rates change by adding a *new* cost profile from an instant on (``effective_from``); the
rates in force for an hour are those of the profile with the latest ``effective_from`` at or before the
hour's start (``billing.rates.rates_at``), so a profile from 10:30 first applies to the hour from 11:00.
Nothing is ever edited in place: past hours keep the rates they were charged at.

Two rules keep closed hours closed:

* a new profile may not start before the hourly roll-up's ``RollupState.complete_until`` (those hours
  are rolled up and billed; re-running their roll-up must give the same figures). A start in the past
  after it is allowed: those hours are not rolled up yet (an operator entering the rates a little late);
* only a profile not yet in force (``effective_from`` in the future) may be deleted.

Both are checked under a lock on the cluster and on the roll-up's state row, which the roll-up updates
when it advances, so a roll-up that moves past an hour and a profile added for that hour cannot both
win. Only operators manage rates (they are the provider's costs); each write is a platform audit event
in its own transaction.
"""

import datetime as dt
import re
from decimal import Decimal, InvalidOperation

from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.models import CostProfile, RollupState
from catalog.pricing import is_currency
from inventory.models import Cluster
from paas import authz
from paas.audit import audit_log
from paas.errors import Conflict, ValidationFailed

ONLY_OPERATORS = "Only platform operators manage cost profiles."
RATE_FIELDS = ("cpu_hour", "memory_gib_hour", "storage_gib_hour")
MAP_FIELDS = ("gpu_hour", "mig_slice_hour")
#: What a cost profile is made of (the studio form and the API take these).
INPUT_FIELDS = ("cluster", "effective_from", "currency", *MAP_FIELDS, *RATE_FIELDS)
PLACES = 6
_QUANTUM = Decimal(1).scaleb(-PLACES)
#: Rates are stored with 12 digits, 6 of them places: below a million per hour.
MAX_RATE = Decimal(10) ** 6
MAX_KEYS = 64
#: A GPU model as nodes report it (``nvidia.com/gpu.product``, a label value), e.g. A100-SXM4-40GB.
GPU_MODEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?")
#: A MIG profile as resource groups and meters name it, e.g. 1g.10gb.
MIG_PROFILE = re.compile(r"[1-7]g\.[0-9]{1,3}gb")


def check_rate(value) -> tuple[Decimal | None, str]:
    """A rate as a Decimal (None with the reason when it is not one): a number (not a boolean), finite,
    zero or more, below a million, with at most 6 places."""
    if isinstance(value, bool) or value is None or isinstance(value, dict | list):
        return None, "A number."
    try:
        rate = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None, "A number."
    if not rate.is_finite():
        return None, "A number."
    if rate < 0:
        return None, "Zero or more."
    if rate >= MAX_RATE:
        return None, "Less than 1,000,000 an hour."
    if rate != rate.quantize(_QUANTUM):
        return None, f"At most {PLACES} decimal places."
    return rate.quantize(_QUANTUM), ""


def _check_map(field: str, value, key_pattern: re.Pattern, example: str, errors: dict) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        errors[field] = f'A mapping of names to rates, e.g. {{"{example}": "2.50"}}.'
        return {}
    if len(value) > MAX_KEYS:
        errors[field] = f"At most {MAX_KEYS} rates."
        return {}
    cleaned, problems = {}, []
    for key, raw in value.items():
        if not isinstance(key, str) or not key_pattern.fullmatch(key):
            problems.append(f"{str(key)[:70]!r} is not a name like {example}.")
            continue
        rate, problem = check_rate(raw)
        if rate is None:
            problems.append(f"{key}: {problem}")
        else:
            cleaned[key] = f"{rate:f}"
    if problems:
        errors[field] = problems[:10]
    return dict(sorted(cleaned.items()))


def clean_rates(data: dict) -> dict:
    """The rates of ``data`` checked and normalised (rates as 6-place strings in the maps, Decimals
    otherwise), or ``ValidationFailed`` with a message per field."""
    errors: dict = {}
    currency = data.get("currency")
    if not is_currency(currency):
        errors["currency"] = "A three-letter ISO 4217 code in capitals, e.g. USD."
    cleaned = {"currency": currency}
    cleaned["gpu_hour"] = _check_map("gpu_hour", data.get("gpu_hour"), GPU_MODEL, "A100-SXM4-40GB", errors)
    cleaned["mig_slice_hour"] = _check_map(
        "mig_slice_hour", data.get("mig_slice_hour"), MIG_PROFILE, "1g.10gb", errors
    )
    for field in RATE_FIELDS:
        raw = data.get(field)
        rate, problem = check_rate(0 if raw in (None, "") else raw)
        if rate is None:
            errors[field] = problem
        cleaned[field] = rate
    if errors:
        raise ValidationFailed("Invalid cost profile.", fields=errors)
    return cleaned


def _closed_until() -> dt.datetime | None:
    """Where the roll-up has got (hours before it are closed), read under a lock on its row."""
    state = RollupState.objects.select_for_update().filter(name="hourly").first()
    return state.complete_until if state else None


def _details(profile: CostProfile) -> dict:
    return {
        "cluster": profile.cluster.name,
        "effective_from": profile.effective_from.isoformat(),
        "currency": profile.currency,
        "gpu_hour": profile.gpu_hour,
        "mig_slice_hour": profile.mig_slice_hour,
        **{f: f"{Decimal(getattr(profile, f)):f}" for f in RATE_FIELDS},
    }


def cost_profile_set(
    *,
    actor,
    cluster: Cluster,
    effective_from: dt.datetime | None = None,
    currency: str = "USD",
    gpu_hour: dict | None = None,
    mig_slice_hour: dict | None = None,
    cpu_hour=0,
    memory_gib_hour=0,
    storage_gib_hour=0,
) -> CostProfile:
    """Add ``cluster``'s rates from ``effective_from`` (default: now) on, as a new cost profile."""
    authz.require_operator(actor, message=ONLY_OPERATORS)
    rates = clean_rates(
        {
            "currency": currency,
            "gpu_hour": gpu_hour,
            "mig_slice_hour": mig_slice_hour,
            "cpu_hour": cpu_hour,
            "memory_gib_hour": memory_gib_hour,
            "storage_gib_hour": storage_gib_hour,
        }
    )
    if not isinstance(cluster, Cluster):
        raise ValidationFailed("Invalid cost profile.", fields={"cluster": "Choose a cluster."})
    now = timezone.now().replace(microsecond=0)
    if effective_from is None:
        effective_from = now
    if not isinstance(effective_from, dt.datetime) or timezone.is_naive(effective_from):
        raise ValidationFailed(
            "Invalid cost profile.", fields={"effective_from": "A date and time with its time zone."}
        )
    if not 2000 <= effective_from.year <= 9000:
        raise ValidationFailed(
            "Invalid cost profile.", fields={"effective_from": "A date between the years 2000 and 9000."}
        )
    effective_from = effective_from.astimezone(dt.UTC).replace(microsecond=0)
    with transaction.atomic():
        cluster = Cluster.objects.select_for_update().get(pk=cluster.pk)
        closed = _closed_until()
        if closed is not None and effective_from < closed:
            raise ValidationFailed(
                "Those hours are closed.",
                fields={
                    "effective_from": f"The hours before {closed:%Y-%m-%d %H:%M} UTC are rolled up and "
                    "billed at the rates then in force: choose that time or later."
                },
            )
        if CostProfile.objects.filter(cluster=cluster, effective_from=effective_from).exists():
            raise ValidationFailed(
                "Invalid cost profile.",
                fields={
                    "effective_from": f"{cluster.name} has rates from {effective_from:%Y-%m-%d %H:%M:%S} "
                    "UTC already: choose another time (rates are never edited, only added)."
                },
            )
        try:
            with transaction.atomic():
                profile = CostProfile.objects.create(
                    cluster=cluster, effective_from=effective_from, created_by=actor, **rates
                )
        except IntegrityError:  # a concurrent one at the same instant (the lock makes it rare)
            raise Conflict("Rates from that instant were just added.") from None
        profile.refresh_from_db()
        audit_log(
            actor=actor,
            action="cost_profile.create",
            target=profile,
            target_repr=str(profile),
            details=_details(profile),
        )
    return profile


def cost_profile_delete(*, actor, profile: CostProfile) -> None:
    """Delete rates that are not in force yet (a mistaken future change); rates in force or past stay."""
    authz.require_operator(actor, message=ONLY_OPERATORS)
    with transaction.atomic():
        Cluster.objects.select_for_update().filter(pk=profile.cluster_id).first()
        profile = CostProfile.objects.select_related("cluster").filter(pk=profile.pk).first()
        if profile is None:
            return
        now = timezone.now()
        closed = _closed_until()
        if profile.effective_from <= now or (closed is not None and profile.effective_from < closed):
            raise Conflict(
                f"These rates have been in force since {profile.effective_from:%Y-%m-%d %H:%M} UTC: they "
                "stay, so that the hours charged at them keep their figures. To change the rates, add a "
                "new cost profile from now on.",
                code="in_force",
            )
        details = _details(profile)
        audit_log(
            actor=actor,
            action="cost_profile.delete",
            target=profile,
            target_repr=str(profile),
            details=details,
        )
        profile.delete()


def cluster_choices(user):
    """The clusters ``user`` may give rates to (operators: every cluster; anyone else: none)."""
    if not (authz.is_active_user(user) and authz.is_operator(user)):
        return Cluster.objects.none()
    return Cluster.objects.order_by("name")
