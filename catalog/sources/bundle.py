"""YAML bundles: a set of Kubernetes manifest files (uploaded, or read from a Git directory) parsed into
objects, and the request-side checks of an upload.

Pure library code (no Django models, no network). Limits, each refused with the file named:

* an upload holds at most ``MAX_FILES`` files, each at most ``MAX_FILE_BYTES``, all together at most
  ``MAX_BUNDLE_BYTES`` (the same bounds apply to the YAML files read from a Git directory);
* a packaged chart upload is one ``.tgz`` of at most ``MAX_CHART_BYTES`` (base64 in the JSON),
  unpacking to at most ``archive.MAX_UNPACKED_BYTES``;
* each file is multi-document YAML (empty documents skipped, ``kind: List`` flattened) parsed by the
  bounded loader of ``paas.yamlsafe`` (no aliases, nesting at most 100 levels); every object needs
  ``apiVersion``, ``kind`` and ``metadata.name``;
* cluster-scoped objects (CRDs included) are refused by name: an application lives in its namespace.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Mapping

from catalog import templating
from catalog.cluster_scoped import CLUSTER_SCOPED_KINDS
from catalog.sources.errors import PackageRefused

MAX_FILES = 50
MAX_FILE_BYTES = 1024 * 1024  # 1 MiB per YAML file
MAX_BUNDLE_BYTES = 2 * 1024 * 1024  # 2 MiB for all the YAML files of a bundle
MAX_CHART_BYTES = 5 * 1024 * 1024  # 5 MiB for a packaged chart (.tgz)
YAML_SUFFIXES = (".yaml", ".yml", ".json")
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def cluster_scoped_problem(obj: dict, where: str = "") -> str | None:
    """A message naming ``obj`` (and ``where`` it came from) if its kind is cluster-scoped, else None."""
    api_version = obj.get("apiVersion") if isinstance(obj, dict) else None
    kind = obj.get("kind") if isinstance(obj, dict) else None
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return None
    group = api_version.rpartition("/")[0] if "/" in api_version else ""
    if (group, kind) not in CLUSTER_SCOPED_KINDS:
        return None
    name = (obj.get("metadata") or {}).get("name") if isinstance(obj.get("metadata"), dict) else None
    origin = f" ({where})" if where else ""
    return (
        f"{kind} {name or '(unnamed)'}{origin} is cluster-scoped: applications may only create objects "
        "in their namespace"
    )


def namespace_problem(obj: dict, namespace: str, where: str = "") -> str | None:
    """A message if ``obj`` names a namespace other than the application's."""
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    theirs = metadata.get("namespace") if isinstance(metadata, dict) else None
    if theirs in (None, "", namespace):
        return None
    origin = f" ({where})" if where else ""
    return (
        f"{obj.get('kind')} {metadata.get('name')}{origin} is in namespace {theirs!r}: applications may only "
        "create objects in their namespace"
    )


def parse_documents(text: str, where: str) -> list[dict]:
    """The objects of one YAML file (``where`` names it in every message); raises PackageRefused."""
    try:
        return templating.parse(text)
    except templating.TemplateError as exc:
        messages = [m for ms in exc.errors.values() for m in ms]
        raise PackageRefused({"files": [f"{where}: {m}" for m in messages]}) from exc


def objects_from_files(files: Iterable[tuple[str, str]], *, namespace: str = "") -> list[dict]:
    """Parse YAML files ``(name, text)`` into objects, refusing cluster-scoped ones (and, with
    ``namespace``, objects in another namespace) by name. All problems are collected."""
    objects: list[dict] = []
    problems: list[str] = []
    total = 0
    count = 0
    for name, text in files:
        count += 1
        size = len(text.encode("utf-8", "surrogatepass"))
        total += size
        if size > MAX_FILE_BYTES:
            problems.append(f"{name}: the file is larger than {MAX_FILE_BYTES // 1024} KiB")
            continue
        try:
            parsed = parse_documents(text, name)
        except PackageRefused as exc:
            problems += exc.errors.get("files", [])
            continue
        for obj in parsed:
            problem = cluster_scoped_problem(obj, name) or (
                namespace and namespace_problem(obj, namespace, name)
            )
            if problem:
                problems.append(problem)
            else:
                objects.append(obj)
    if count > MAX_FILES:
        problems.append(f"a bundle holds at most {MAX_FILES} files (got {count})")
    if total > MAX_BUNDLE_BYTES:
        problems.append(f"the files together are larger than {MAX_BUNDLE_BYTES // (1024 * 1024)} MiB")
    if count and not objects and not problems:
        problems.append("the files hold no Kubernetes object")
    if problems:
        raise PackageRefused({"files": problems})
    return objects


def bundle_digest(files: Iterable[tuple[str, str | bytes]]) -> str:
    """``sha256:`` over the files' names and contents (order-independent)."""
    digest = hashlib.sha256()
    for name, content in sorted(files, key=lambda item: item[0]):
        data = content.encode() if isinstance(content, str) else content
        digest.update(json.dumps(name).encode() + b"\0" + str(len(data)).encode() + b"\0" + data)
    return "sha256:" + digest.hexdigest()


def _upload_problems_common(files: object) -> list[str]:
    if not isinstance(files, Mapping) or not files:
        return ["upload at least one file"]
    problems = []
    for name, content in files.items():
        if not isinstance(name, str) or not _FILE_NAME.match(name):
            problems.append(
                f"{str(name)[:80]!r}: a file name is letters, digits, '.', '_' and '-' (no directories), "
                "at most 128 characters"
            )
        elif not isinstance(content, str):
            problems.append(f"{name}: the content must be text")
    if len(files) > MAX_FILES:
        problems.append(f"upload at most {MAX_FILES} files (got {len(files)})")
    return problems


def yaml_upload_files(files: Mapping[str, str]) -> list[tuple[str, str]]:
    """The YAML files of an upload, checked (names, count); raises PackageRefused."""
    problems = _upload_problems_common(files)
    if problems:
        raise PackageRefused({"files": problems})
    wrong = [name for name in files if not name.lower().endswith(YAML_SUFFIXES)]
    if wrong:
        raise PackageRefused(
            {"files": [f"{name}: a K8s YAML upload holds .yaml, .yml or .json files" for name in wrong]}
        )
    return sorted(files.items())


def chart_upload_bytes(files: Mapping[str, str]) -> tuple[str, bytes]:
    """The one packaged chart of a Helm upload: (file name, archive bytes); raises PackageRefused."""
    problems = _upload_problems_common(files)
    if problems:
        raise PackageRefused({"files": problems})
    if len(files) != 1 or not next(iter(files)).lower().endswith((".tgz", ".tar.gz")):
        raise PackageRefused(
            {"files": ["a Helm chart upload is one packaged chart (.tgz, from helm package)"]}
        )
    name, encoded = next(iter(files.items()))
    if len(encoded) > MAX_CHART_BYTES * 4 // 3 + 8:
        raise PackageRefused(
            {"files": [f"{name}: a packaged chart is at most {MAX_CHART_BYTES // 2**20} MiB"]}
        )
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise PackageRefused({"files": [f"{name}: the chart must be sent base64-encoded"]}) from exc
    if len(data) > MAX_CHART_BYTES:
        raise PackageRefused(
            {"files": [f"{name}: a packaged chart is at most {MAX_CHART_BYTES // 2**20} MiB"]}
        )
    return name, data
