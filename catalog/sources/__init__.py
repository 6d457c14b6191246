"""Application sources, worker side: fetch an application's artifacts (an upload, a Git repository, a
Helm chart repository, an OCI registry holding charts) and render them into Kubernetes objects (YAML
parsed; charts with ``helm template``, never installed). Every connection goes through the
outbound-address policy (``paas.outbound``).

The errors a deploy run tells apart: :class:`FetchFailed` (the repository could not be reached or
answered with an error: the run is retried) and :class:`PackageRefused` (the artifacts themselves are
wrong: a cluster-scoped object, a chart's ``crds/``, bad YAML, too large: final, with the object named).

Modules: ``bundle`` (YAML files, upload checks and limits), ``archive`` (safe unpacking of chart
archives), ``http`` (requests through the outbound policy, auth headers, error wording), ``git``
(dulwich over smart HTTP, reading blobs from the object store), ``helm`` (chart repositories, OCI
registries, ``helm template``), ``checks`` (connectivity checks; not ``check``, the function's name).

Entry points: :func:`render` (worker), :func:`validate_upload` (request side), :func:`check` (worker).
"""

from __future__ import annotations

from catalog.sources.errors import FetchFailed, PackageRefused, Rendered

__all__ = ["FetchFailed", "PackageRefused", "Rendered", "check", "render", "validate_upload"]


def _repository_of(source):
    repository = source.repository
    if repository is None:
        raise PackageRefused(
            {"repository": ["the repository was deleted: nothing can be pulled (choose another source)"]}
        )
    return repository


def render(source, *, release: str, namespace: str, kube_version: str = "") -> Rendered:
    """Fetch and render ``source`` (an ``ApplicationSource`` row) for ``release`` in ``namespace``.

    Raises :class:`FetchFailed` (retry) or :class:`PackageRefused` (final)."""
    from catalog.sources import bundle

    package_type = source.package_type
    upload = source.sync == "upload"
    if package_type == "yaml":
        if upload:
            files = bundle.yaml_upload_files(source.files or {})
            objects = bundle.objects_from_files(files, namespace=namespace)
            return Rendered(objects=objects, digest=bundle.bundle_digest(files))
        repository = _repository_of(source)
        if repository.kind != "git":
            raise PackageRefused({"repository": ["K8s YAML is pulled from a Git repository"]})
        from catalog.sources import git

        tree = git.fetch(repository, ref=source.ref, path=source.path)
        files = tree.yaml_files()
        objects = bundle.objects_from_files(files, namespace=namespace)
        return Rendered(
            objects=objects, commit=tree.commit, digest=bundle.bundle_digest(files), notes=list(tree.notes)
        )
    if package_type == "helm":
        from catalog.sources import helm

        return helm.render_source(source, release=release, namespace=namespace, kube_version=kube_version)
    raise PackageRefused({"package_type": [f"unknown package type {package_type!r}"]})


def validate_upload(package_type: str, files: dict) -> None:
    """Request-side check of uploaded files; raises ``paas.errors.ValidationFailed`` with
    ``fields={"files": [...]}`` naming the file or document (limits in ``catalog.sources.bundle``)."""
    from catalog.sources import bundle
    from paas.errors import ValidationFailed

    try:
        if package_type == "helm":
            from catalog.sources import archive

            name, data = bundle.chart_upload_bytes(files)
            archive.check_chart_archive(data, name)
        else:
            bundle.objects_from_files(bundle.yaml_upload_files(files))
    except PackageRefused as exc:
        messages = [m for ms in exc.errors.values() for m in ms]
        raise ValidationFailed("The uploaded files are refused.", fields={"files": messages}) from exc


def check(repository) -> tuple[bool, str]:
    """Connectivity check of a repository: (ok, what happened), never with the credential."""
    from catalog.sources import checks

    return checks.check(repository)
