"""Signals tenancy sends so other apps can follow without tenancy importing them."""

from django.dispatch import Signal

# Sent inside ``services.invitation_accept``'s transaction with ``invitation`` and ``user``: receivers
# that write must write their own audit events (they run in the same transaction).
invitation_accepted = Signal()

# Sent by the studio's quota list with ``sender=Quota``: each receiver returns a dict of annotations
# for a Quota queryset (instances answers ``gpu_units_in_use``: GPU quota units its active instances
# hold in the quota's scope), so tenancy shows usage without importing what uses it.
quota_usage_annotations = Signal()
