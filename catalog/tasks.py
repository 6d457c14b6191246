"""Worker entry points of the catalog (django-q2): take ids, load, call services; safe to run twice."""

from catalog import repositories


def repository_check(repository_id: int) -> None:
    """Connectivity check of a repository, run by the agent chosen at request time
    (``catalog.repositories.repository_check``)."""
    repositories.repository_check_record(repository_id=repository_id)
