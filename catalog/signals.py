"""Signals the catalog sends upwards, so that ``instances`` follows without the catalog importing it."""

from django.dispatch import Signal

# Sent inside the transaction of every change of a container registry that affects what is delivered
# into instance namespaces (``catalog.registries``): created, credential (or endpoint/username) changed,
# sharing changed, deleted, an Amazon ECR token refreshed. Arguments: ``registry_id``, ``reason`` (one
# of ``created``, ``credential``, ``sharing``, ``deleted``, ``token``) and ``project_ids`` (every
# project that saw the registry before or sees it after the change). ``instances`` enqueues, on commit,
# a pull-secret sync of every active compute instance of those projects.
registry_changed = Signal()
