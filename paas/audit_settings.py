"""The operators' audit settings (how the kubectl proxy's reads reach the trail): read and change them.

One row (pk 1). Only operators change it, audited on the platform chain. The proxy reads the setting at
most every few seconds (``instances.kubeproxy.auditing``), so a change applies within that time.
"""

from django.db import transaction

from paas import authz
from paas.audit import apply_changes, audit_log
from paas.errors import ValidationFailed
from paas.models import AuditSettings, KubectlReads

SAMPLE_EVERY_MIN, SAMPLE_EVERY_MAX = 2, 1000

_listeners = []  # told of a change (the proxy's cache of the setting in this process)


def on_change(listener) -> None:
    _listeners.append(listener)


def audit_settings_get() -> AuditSettings:
    """The settings (the defaults until an operator changes them); readable by anyone signed in."""
    return AuditSettings.objects.filter(pk=1).first() or AuditSettings(pk=1)


def audit_settings_for(user) -> AuditSettings:
    """The settings, for an operator (the studio page and the API); others are refused."""
    authz.require_operator(user, message="Only platform operators see the audit settings.")
    return audit_settings_get()


def audit_settings_update(
    *, actor, kubectl_reads: str, kubectl_sample_every: int | None = None
) -> AuditSettings:
    """Change how kubectl reads are audited: record all, sample 1 in N, or summarise. Writes are always
    recorded one by one, whatever this says."""
    authz.require_operator(actor, message="Only platform operators change the audit settings.")
    errors = {}
    if kubectl_reads not in KubectlReads.values:
        errors["kubectl_reads"] = f"Choose one of: {', '.join(KubectlReads.values)}."
    current = audit_settings_get()
    every = current.kubectl_sample_every if kubectl_sample_every is None else kubectl_sample_every
    try:
        every = int(every)
    except (TypeError, ValueError):
        every = 0
    if not SAMPLE_EVERY_MIN <= every <= SAMPLE_EVERY_MAX:
        errors["kubectl_sample_every"] = f"A whole number from {SAMPLE_EVERY_MIN} to {SAMPLE_EVERY_MAX}."
    if errors:
        raise ValidationFailed("The audit settings are not valid.", fields=errors)
    with transaction.atomic():
        AuditSettings.objects.get_or_create(pk=1)
        row = AuditSettings.objects.select_for_update().get(pk=1)
        changes = apply_changes(row, {"kubectl_reads": kubectl_reads, "kubectl_sample_every": every})
        if changes:
            row.save()
            audit_log(
                actor=actor,
                action="audit.settings_update",
                target=row,
                details={"changes": changes},
            )
            for listener in _listeners:  # now (a forgotten cache is only read again) and once committed
                listener()
                transaction.on_commit(listener)
    return row
