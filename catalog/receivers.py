"""Receivers of tenancy's signals for the catalog (tenancy sends them without importing catalog)."""

from catalog.models import ComputeProfile, ServiceProfile


def project_deleting(*, project, actor, **kwargs) -> None:
    """Receiver of ``tenancy.signals.project_deleting``: a workspace's own profiles go first.

    Profiles protect their template version, and Django's cascade meets the templates before the
    profiles: without this, a workspace with a profile could never be deleted. (Profiles elsewhere
    built on this workspace's templates still protect them: the delete is refused, naming them.)
    Launched instances keep their snapshot; the workspace's delete event is the audit record.
    """
    for model in (ComputeProfile, ServiceProfile):
        model.objects.filter(project=project).delete()
