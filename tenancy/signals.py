"""Signals tenancy sends so other apps can follow without tenancy importing them."""

from django.dispatch import Signal

# Sent inside ``services.invitation_accept``'s transaction with ``invitation`` and ``user``: receivers
# that write must write their own audit events (they run in the same transaction).
invitation_accepted = Signal()

# Sent inside ``services.project_delete``'s transaction, before the workspace is deleted, with
# ``project`` and ``actor``. A receiver refuses by raising an ``ApplicationError`` (the delete is
# rolled back with a clear message) while the workspace still holds something live of its app.
project_deleting = Signal()
