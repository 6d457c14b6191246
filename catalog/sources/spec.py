"""An application's source, request side: the one set of rules for what a deployed application's
revision and a catalog application may say (``instances.applications`` and ``catalog.app_catalog``):
the package type and artifact sync, uploaded files (``validate_upload``), or a repository the workspace
(or the catalog item's scope) may use of a kind that holds the package type; refs, charts and versions
that are plain names (never an option for a tool), paths inside the repository or chart, value overrides
a YAML mapping. What the artifacts render into is checked on the worker (``render``)."""

import re
from collections.abc import Mapping

import yaml
from django.db.models import QuerySet

from catalog import sources
from catalog.models import ArtifactSync, PackageType, Repository
from paas.errors import ValidationFailed
from paas.yamlsafe import safe_load

VALUES_MAX = 256 * 1024  # characters of value overrides
SOURCE_FIELDS = (
    "sync",
    "files",
    "repository",
    "ref",
    "path",
    "chart",
    "chart_version",
    "values_file",
    "values",
)
#: Which repositories each package type may be pulled from.
REPOSITORY_KINDS = {
    PackageType.YAML: (Repository.Kind.GIT,),
    PackageType.HELM: (Repository.Kind.GIT, Repository.Kind.HELM, Repository.Kind.OCI),
}
_REF = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._/@+-]{0,254}$")
_CHART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,254}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+_-]{0,63}$")


def _relative_path(value: str, field: str) -> str:
    value = (value or "").strip()
    if not value:
        return ""
    parts = value.split("/")
    if (
        len(value) > 1024
        or value.startswith("/")
        or "\\" in value
        or any(part == ".." for part in parts)
        or any(ord(c) < 32 for c in value)
    ):
        raise ValidationFailed(
            f"Invalid {field}.",
            fields={field: "A relative path inside the repository or chart, without '..'."},
        )
    return value


def _matching(value: str, pattern: re.Pattern, field: str, what: str) -> str:
    value = (value or "").strip()
    if value and (not pattern.match(value) or ".." in value):
        raise ValidationFailed(f"Invalid {field}.", fields={field: what})
    return value


def values_mapping(text: str, *, field: str = "values") -> dict:
    """The value overrides as a mapping (empty text: none)."""
    text = text or ""
    if len(text) > VALUES_MAX:
        raise ValidationFailed("Invalid values.", fields={field: f"At most {VALUES_MAX // 1024} KiB."})
    if not text.strip():
        return {}
    try:
        data = safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise ValidationFailed("Invalid values.", fields={field: f"Not valid YAML{line}."}) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValidationFailed("Invalid values.", fields={field: "Must be a YAML mapping (key: value)."})
    return data


def _repository(repositories: QuerySet, repository, missing: str) -> Repository:
    pk = repository.pk if isinstance(repository, Repository) else repository
    found = (
        repositories.filter(pk=pk).first()
        if isinstance(pk, int) or (isinstance(pk, str) and pk.isdigit())
        else None
    )
    if found is None:
        message = missing or "Choose a repository this workspace may use."
        raise ValidationFailed("Invalid repository.", fields={"repository": message})
    return found


def clean(*, package_type, repositories: QuerySet, missing: str = "", **given) -> dict:
    """The source fields (``SOURCE_FIELDS``) checked; the repository must be one of ``repositories`` (those
    the workspace, or the catalog item's scope, may use), else the field says ``missing`` (the same for
    another org's repository as for none). Returns the cleaned fields, ``repository`` as a row."""
    if package_type not in PackageType.values:
        raise ValidationFailed(
            "Invalid package type.", fields={"package_type": f"One of: {', '.join(PackageType.values)}."}
        )
    sync = given.get("sync") or ArtifactSync.UPLOAD
    if sync not in ArtifactSync.values:
        raise ValidationFailed(
            "Invalid artifact sync.", fields={"sync": f"One of: {', '.join(ArtifactSync.values)}."}
        )
    values = given.get("values") or ""
    values_mapping(values)
    source = {
        "sync": sync,
        "files": {},
        "repository": None,
        "ref": _matching(given.get("ref"), _REF, "ref", "A branch, tag or commit name."),
        "path": _relative_path(given.get("path"), "path"),
        "chart": _matching(given.get("chart"), _CHART, "chart", "A chart name."),
        "chart_version": _matching(given.get("chart_version"), _VERSION, "chart_version", "A chart version."),
        "values_file": _relative_path(given.get("values_file"), "values_file"),
        "values": values,
    }
    if sync == ArtifactSync.UPLOAD:
        files = given.get("files")
        if given.get("repository") is not None:
            raise ValidationFailed(
                "Invalid source.", fields={"repository": "Uploaded files come without a repository."}
            )
        if not isinstance(files, Mapping) or not files:
            raise ValidationFailed("Invalid files.", fields={"files": "Upload at least one file."})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
            raise ValidationFailed("Invalid files.", fields={"files": "Each file is a name and its text."})
        sources.validate_upload(package_type, dict(files))
        return source | {"files": dict(files), "ref": "", "path": "", "chart": ""}
    if given.get("files"):
        raise ValidationFailed(
            "Invalid source.", fields={"files": "Files are uploaded only without a repository."}
        )
    if given.get("repository") is None:
        raise ValidationFailed("Invalid repository.", fields={"repository": "Choose a repository."})
    repository = _repository(repositories, given["repository"], missing)
    if repository.kind not in REPOSITORY_KINDS[package_type]:
        raise ValidationFailed(
            "Invalid repository.",
            fields={
                "repository": f"A {repository.get_kind_display()} repository cannot hold a "
                f"{PackageType(package_type).label} package."
            },
        )
    if repository.kind == Repository.Kind.HELM and not source["chart"]:
        raise ValidationFailed("Invalid chart.", fields={"chart": "Name the chart of the Helm repository."})
    return source | {"repository": repository}


def deep_merge(base: dict, overrides: dict) -> dict:
    """``overrides`` over ``base``: mappings merged key by key, anything else replaced."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
