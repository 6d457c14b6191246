"""Reads of the kubectl proxy's credentials, filtered by what the reader may see (the writes are in
:mod:`instances.kubeproxy.credentials`).

A credential's token and digest never leave :mod:`credentials`: these return the rows, and the API and
the portal show only who, how (a kubeconfig download or the web shell), when issued, until when, and
when last used.
"""

from django.utils import timezone

from instances.models import ComputeInstance, KubeCredential
from paas import authz
from paas.errors import NotFound

MAX_LISTED = 500  # live credentials of one instance shown at once (each download makes one; 1 h each)


def credentials_visible(*, actor, instance: ComputeInstance):
    """The live (unexpired, unrevoked) credentials on ``instance`` the actor may see, newest first:
    their own, or everyone's for who may change the instance. The caller has found ``instance`` through
    a selector (it is visible to the actor)."""
    qs = KubeCredential.objects.filter(
        instance=instance, revoked_at__isnull=True, expires_at__gt=timezone.now()
    ).select_related("user")
    if not authz.has_perm(actor, "change_computeinstance", instance):
        qs = qs.filter(user_id=actor.pk)
    return qs.order_by("-created_at", "-pk")


def access_credential(*, actor, instance: ComputeInstance, credential_id) -> KubeCredential:
    """A live credential on the instance the actor may see; missing, expired, revoked and forbidden look
    alike (NotFound)."""
    try:
        pk = int(credential_id)
    except (TypeError, ValueError):
        raise NotFound("No such credential.") from None
    if not 0 < pk < 2**63:
        raise NotFound("No such credential.")
    found = credentials_visible(actor=actor, instance=instance).filter(pk=pk).first()
    if found is None:
        raise NotFound("No such credential.")
    return found
