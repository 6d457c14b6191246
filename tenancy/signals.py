"""Signals tenancy sends so other apps can follow without tenancy importing them."""

from django.dispatch import Signal

# Sent inside ``services.invitation_accept``'s transaction with ``invitation`` and ``user``: receivers
# that write must write their own audit events (they run in the same transaction).
invitation_accepted = Signal()

# Sent by the studio's quota list with ``sender=Quota``: each receiver returns a dict of annotations
# for a Quota queryset (instances answers ``gpu_units_in_use``: GPU quota units its active instances
# hold in the quota's scope), so tenancy shows usage without importing what uses it.
quota_usage_annotations = Signal()
# Sent inside the transaction of every change that may take access away (a role dropped by hand, by an
# IdP group sync or a mapping's deletion, a member removed from an org, a user or an org deactivated)
# and of the matching reactivations, after the permissions were brought in step. Arguments: ``users``
# (the users concerned, or None for everyone in ``org``), ``org`` (None: every org of ``users``) and
# ``reason`` (words for the audit trail); ``revoked_invitations`` (ids of the pending invitations to
# them revoked with the change: whatever rode on them goes too). Receivers re-check what those users
# may still reach, write their own audit events and enqueue their cluster work on commit.
access_changed = Signal()
# Sent inside ``services.project_delete``'s transaction, before the workspace is deleted, with
# ``project`` and ``actor``. A receiver refuses by raising an ``ApplicationError`` (the delete is
# rolled back with a clear message) while the workspace still holds something live of its app.
project_deleting = Signal()
