"""Signals tenancy sends so other apps can follow without tenancy importing them."""

from django.dispatch import Signal

# Sent inside ``services.invitation_accept``'s transaction with ``invitation`` and ``user``: receivers
# that write must write their own audit events (they run in the same transaction).
invitation_accepted = Signal()
