"""Connectivity checks of repositories (worker side): reach the repository the way a deploy would and
say exactly what failed (DNS, refused by the outbound policy, connection refused, TLS, 401/403, 404,
timeout), never with the credential.

* Git: ``ls-remote`` (the advertised refs) and the default ref resolved;
* Helm: ``index.yaml`` read and parsed;
* OCI: the registry's ``/v2/`` through its token flow, then the tags of the repository's path.
"""

from __future__ import annotations

from catalog.sources import http
from catalog.sources.errors import FetchFailed, PackageRefused


def check(repository) -> tuple[bool, str]:
    try:
        if repository.kind == "git":
            return _git(repository)
        if repository.kind == "helm":
            return _helm(repository)
        if repository.kind == "oci":
            return _oci(repository)
        return False, f"unknown repository type {repository.kind!r}"
    except FetchFailed as exc:
        return False, str(exc)
    except PackageRefused as exc:
        return False, "; ".join(m for ms in exc.errors.values() for m in ms)


def _git(repository) -> tuple[bool, str]:
    from catalog.sources import git

    refs = git.list_refs(repository)
    branches = sum(1 for name in refs if name.startswith(b"refs/heads/"))
    tags = sum(1 for name in refs if name.startswith(b"refs/tags/") and not name.endswith(b"^{}"))
    ref = repository.default_ref or "HEAD"
    sha = git.resolve(refs, ref)  # the same resolution a deploy uses
    if sha is None:
        return (
            False,
            f"reached: {branches} branches, {tags} tags, but the branch or tag {ref!r} does not exist",
        )
    return True, f"reached: {branches} branches, {tags} tags; {ref} is at {sha.decode()[:12]}"


def _helm(repository) -> tuple[bool, str]:
    from catalog.sources import helm

    base = (repository.url or "").strip().rstrip("/")
    if not base.startswith(("https://", "http://")):
        return False, "a Helm repository is reached over https://"
    pool = http.pool_manager(repository, purpose="Helm repository")
    answer = http.get(
        pool, f"{base}/index.yaml", what=f"Helm repository {http.safe_url(base)}",
        headers=http.auth_headers(repository), limit=http.MAX_INDEX_BYTES,
    )  # fmt: skip
    entries = helm.read_index(answer.data, base).get("entries") or {}
    return True, f"reached: index.yaml lists {len(entries)} chart{'s' if len(entries) != 1 else ''}"


def _oci(repository) -> tuple[bool, str]:
    from catalog.sources.oci import Registry

    registry = Registry(repository)
    if not registry.path:
        registry.ping()
        return True, f"reached: the registry {registry.netloc} answers (/v2/)"
    try:
        tags = registry.tags(registry.name_for())
    except FetchFailed as exc:
        if "404" not in str(exc):
            raise
        registry.ping()
        return True, (
            f"reached: the registry {registry.netloc} answers; {registry.path} holds no chart itself "
            "(charts are named below it)"
        )
    return (
        True,
        f"reached: {registry.netloc}/{registry.path} has {len(tags)} tag{'s' if len(tags) != 1 else ''}",
    )
