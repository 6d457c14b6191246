"""django-q2 entry points for container registries (take ids, call ``catalog.registries``)."""

import logging

from catalog import registries
from paas.context import Client, client_context

log = logging.getLogger(__name__)


def registry_token_refresh(registry_id: int) -> bool:
    """Enqueued on commit of an Amazon ECR registry's change: a registry token for the new key."""
    with client_context(client=Client.TASK):
        return registries.registry_token_refresh(registry_id=registry_id)


def registry_tokens_refresh() -> int:
    """Scheduled (``registry tokens``, every 15 minutes): refresh every Amazon ECR token that is
    missing or expires within ``PAAS_REGISTRY_TOKEN_REFRESH_MARGIN`` (4 hours of the 12 by default),
    so that a few failed attempts in a row still leave the delivered token valid. Returns how many
    were refreshed."""
    refreshed = 0
    with client_context(client=Client.TASK):
        for registry in registries.registries_due_for_refresh():
            refreshed += registries.registry_token_refresh(registry_id=registry.pk)
    return refreshed
