"""Helm charts: fetched by us, rendered by ``helm template``, never installed.

Where the chart comes from (the archive is always fetched by this module, never by helm):

* an upload: one packaged chart (``.tgz``, base64 in ``files``);
* a Git repository: the chart's directory at a ref (``catalog.sources.git``; the commit is recorded);
* a Helm chart repository: its ``index.yaml``, then the chart's ``.tgz`` (its digest checked against
  the index); the credential goes only to the repository's own origin;
* an OCI registry: ``catalog.sources.oci`` (distribution API, the Bearer token flow).

The version: ``chart_version`` exactly, or the latest stable SemVer version (a prerelease only when
there is nothing else). Archives are unpacked by ``catalog.sources.archive`` (no absolute paths, no
``..``, no links, bounded). A chart's dependencies must be vendored in ``charts/``: a chart that needs
``helm dependency build`` is refused with the reason (rendering needs no network).

Rendering: ``<helm> template <release> <dir> --namespace <ns> --include-crds --skip-tests
[-f <values file>] [-f <overrides>] [--kube-version <v>]`` with every Helm directory in a fresh
temporary home (no repositories, no registry logins, no plugins, no kubeconfig), ``PATH`` only, and a
time limit. No credential is ever passed to helm. The output is split by helm's ``# Source:`` comments
so that each object is named with its file: cluster-scoped objects (a chart's ``crds/`` included) are
refused by name. Templates that call ``lookup`` get a note: it returns nothing here.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tempfile
from pathlib import Path, PurePosixPath
from urllib.parse import urljoin, urlsplit

from django.conf import settings

from catalog.sources import archive, bundle, http
from catalog.sources.errors import FetchFailed, PackageRefused, Rendered
from paas import yamlsafe

MAX_OUTPUT_BYTES = 4 * 1024 * 1024  # what helm template may print
TEMPLATE_TIMEOUT = 120  # seconds
_SEMVER = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_KUBE_VERSION = re.compile(r"^v?\d+\.\d+(\.\d+)?([-+][0-9A-Za-z.-]+)?$")
_LOOKUP = re.compile(r"\{\{-?[^}]*\blookup\b")
LOOKUP_NOTE = (
    "{file} calls lookup: lookup returns nothing here (charts are rendered with helm template, "
    "without access to the cluster)"
)


# -- versions -------------------------------------------------------------------------------------
def _semver_key(version: str):
    match = _SEMVER.match(version or "")
    if not match:
        return None
    major, minor, patch, pre = match.groups()
    pre_key = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")) if pre else ()
    return (int(major), int(minor), int(patch), 0 if pre else 1, pre_key)


def choose_version(versions: list[str], wanted: str, *, what: str) -> str:
    """``wanted`` if offered (with or without a leading v), else the latest stable version."""
    wanted = (wanted or "").strip()
    if wanted:
        for version in versions:
            if version == wanted or version.lstrip("v") == wanted.lstrip("v"):
                return version
        raise FetchFailed(
            f"{what}: version {wanted} does not exist (offered: {', '.join(versions[:10]) or 'none'})"
        )
    keyed = [(key, v) for v in versions if (key := _semver_key(v)) is not None]
    if not keyed:
        raise FetchFailed(f"{what}: no version to deploy")
    stable = [item for item in keyed if item[0][3] == 1]
    return max(stable or keyed)[1]


# -- fetching -------------------------------------------------------------------------------------
def fetch_from_chart_repository(repository, chart: str, version: str) -> tuple[bytes, str]:
    """(archive, version) of ``chart`` from a Helm repository's index."""
    base = (repository.url or "").strip().rstrip("/")
    if urlsplit(base).scheme not in ("http", "https"):
        raise PackageRefused({"repository": ["a Helm repository is reached over https://"]})
    if not chart:
        raise PackageRefused({"chart": ["name the chart to deploy from the Helm repository"]})
    pool = http.pool_manager(repository, purpose="Helm repository")
    headers = http.auth_headers(repository)
    answer = http.get(
        pool, f"{base}/index.yaml", what=f"Helm repository {http.safe_url(base)}", headers=headers,
        limit=http.MAX_INDEX_BYTES,
    )  # fmt: skip
    index = read_index(answer.data, base)
    entries = index.get("entries", {}).get(chart)
    if not isinstance(entries, list) or not entries:
        raise FetchFailed(f"Helm repository {http.safe_url(base)}: no chart named {chart!r}")
    by_version = {
        e.get("version"): e for e in entries if isinstance(e, dict) and isinstance(e.get("version"), str)
    }
    chosen = choose_version(list(by_version), version, what=f"chart {chart}")
    entry = by_version[chosen]
    urls = entry.get("urls") or []
    if not urls or not isinstance(urls[0], str):
        raise FetchFailed(f"chart {chart} {chosen}: the index gives no address")
    url = urljoin(base + "/", urls[0])
    if urlsplit(url).scheme not in ("http", "https"):
        raise PackageRefused(
            {"chart": [f"chart {chart} {chosen}: the index points at a non-http(s) address"]}
        )
    same_origin = http.origin(url) == http.origin(base)
    data = http.get(
        pool, url, what=f"chart {chart} {chosen}", headers=headers if same_origin else {},
        limit=bundle.MAX_CHART_BYTES,
    ).data  # fmt: skip
    digest = entry.get("digest")
    if (
        isinstance(digest, str)
        and digest
        and hashlib.sha256(data).hexdigest() != digest.removeprefix("sha256:")
    ):
        raise FetchFailed(f"chart {chart} {chosen}: the archive does not match the digest in index.yaml")
    return data, chosen


def read_index(data: bytes, base: str) -> dict:
    try:
        index = yamlsafe.safe_load(data.decode("utf-8"))
    except (ValueError, Exception) as exc:  # yaml.YAMLError, UnicodeDecodeError
        raise FetchFailed(f"Helm repository {http.safe_url(base)}: index.yaml is not valid YAML") from exc
    if not isinstance(index, dict) or not isinstance(index.get("entries", {}), dict):
        raise FetchFailed(f"Helm repository {http.safe_url(base)}: index.yaml has no entries")
    return index


def fetch_from_oci(repository, chart: str, version: str) -> tuple[bytes, str]:
    from catalog.sources.oci import Registry

    registry = Registry(repository)
    name = registry.name_for(chart)
    tag = version.replace("+", "_") if version else ""
    if not tag:
        tags = [t.replace("_", "+") for t in registry.tags(name)]
        tag = choose_version(tags, "", what=f"OCI chart {registry.netloc}/{name}").replace("+", "_")
    data, _digest = registry.chart(name, tag, bundle.MAX_CHART_BYTES)
    return data, tag.replace("_", "+")


# -- rendering ------------------------------------------------------------------------------------
def helm_binary() -> str:
    binary = getattr(settings, "PAAS_HELM_BINARY", "") or ""
    if not binary or not Path(binary).is_file() or not os.access(binary, os.X_OK):
        raise PackageRefused(
            {"package_type": ["Helm charts cannot be rendered: no helm binary here (PAAS_HELM_BINARY)"]}
        )
    return binary


def _environment(home: Path) -> dict[str, str]:
    for sub in ("config", "cache", "data", "plugins"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_DATA_HOME": str(home / "data"),
        "HELM_PLUGINS": str(home / "plugins"),
        "HELM_REGISTRY_CONFIG": str(home / "config" / "registry.json"),
        "HELM_REPOSITORY_CONFIG": str(home / "config" / "repositories.yaml"),
        "HELM_REPOSITORY_CACHE": str(home / "cache" / "repository"),
        "KUBECONFIG": str(home / "no-kubeconfig"),
        "HELM_KUBECONTEXT": "",
        "NO_PROXY": "*",
    }


def _dependency_problems(chart_dir: Path, shown: str) -> list[str]:
    try:
        meta = yamlsafe.safe_load((chart_dir / "Chart.yaml").read_text())
    except Exception:
        return []
    dependencies = meta.get("dependencies") if isinstance(meta, dict) else None
    problems = []
    vendored = (
        {p.name for p in (chart_dir / "charts").iterdir()} if (chart_dir / "charts").is_dir() else set()
    )
    for dependency in dependencies or []:
        if not isinstance(dependency, dict) or not isinstance(dependency.get("name"), str):
            continue
        name = dependency["name"]
        if not any(v == name or (v.startswith(f"{name}-") and v.endswith(".tgz")) for v in vendored):
            problems.append(
                f"{shown}: the dependency {name} is not vendored in charts/: run helm dependency build and "
                "publish the chart with its dependencies (charts are rendered without network)"
            )
    return problems


def _safe_values_file(chart_dir: Path, values_file: str) -> Path:
    relative = PurePosixPath(values_file.strip().lstrip("/"))
    if not relative.parts or any(part == ".." for part in relative.parts):
        raise PackageRefused({"values_file": [f"{values_file}: a values file is a path inside the chart"]})
    target = chart_dir.joinpath(*relative.parts)
    if target.is_symlink() or not target.is_file() or chart_dir.resolve() not in target.resolve().parents:
        raise PackageRefused({"values_file": [f"{values_file}: no such file in the chart"]})
    return target


def _overrides(text: str) -> str:
    if not (text or "").strip():
        return ""
    try:
        values = yamlsafe.safe_load(text)
    except Exception as exc:
        raise PackageRefused({"values": [f"the value overrides are not valid YAML: {exc}"]}) from None
    if values is None:
        return ""
    if not isinstance(values, dict):
        raise PackageRefused({"values": ["the value overrides must be a YAML mapping"]})
    return text


def _lookup_notes(chart_dir: Path) -> list[str]:
    notes = []
    for path in sorted(chart_dir.rglob("*")):
        if path.is_symlink() or not path.is_file() or "templates" not in path.relative_to(chart_dir).parts:
            continue
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        if _LOOKUP.search(text):
            notes.append(LOOKUP_NOTE.format(file=str(path.relative_to(chart_dir))))
    return notes


def _split_output(output: str, chart_name: str) -> list[tuple[str, str]]:
    """helm's output as (file, text) per document, the file from its ``# Source:`` comment."""
    pieces = []
    for document in re.split(r"(?m)^---\s*$", output):
        match = re.search(r"(?m)^# Source: (.+)$", document)
        source = match.group(1).strip() if match else "the chart"
        prefix = f"{chart_name}/"
        pieces.append((source[len(prefix) :] if source.startswith(prefix) else source, document))
    return pieces


def template(
    chart_dir: Path,
    *,
    release: str,
    namespace: str,
    kube_version: str,
    values_file: str,
    values: str,
    work: Path,
) -> tuple[list[dict], list[str], str]:
    """Render an unpacked chart: (objects, notes, chart version)."""
    binary = helm_binary()
    try:
        meta = yamlsafe.safe_load((chart_dir / "Chart.yaml").read_text())
    except Exception:
        meta = None
    if not isinstance(meta, dict) or not meta.get("name"):
        raise PackageRefused({"chart": ["not a Helm chart: Chart.yaml is missing or has no name"]})
    chart_name = str(meta["name"])
    problems = _dependency_problems(chart_dir, chart_name)
    if problems:
        raise PackageRefused({"chart": problems})
    if not _DNS_LABEL.match(release) or not _DNS_LABEL.match(namespace):
        raise PackageRefused({"name": [f"{release!r} / {namespace!r}: release and namespace are DNS labels"]})
    if kube_version and not _KUBE_VERSION.match(kube_version):
        raise PackageRefused({"kube_version": [f"{kube_version[:40]!r} is not a Kubernetes version"]})
    command = [binary, "template", release, str(chart_dir), "--namespace", namespace, "--include-crds"]
    command.append("--skip-tests")
    if values_file:
        command += ["-f", str(_safe_values_file(chart_dir, values_file))]
    overrides = _overrides(values)
    if overrides:
        (work / "overrides.yaml").write_text(overrides)
        command += ["-f", str(work / "overrides.yaml")]
    if kube_version:
        command += ["--kube-version", kube_version]
    try:
        result = subprocess.run(  # noqa: S603 - an argv list, no shell; every argument checked above
            command,
            env=_environment(work / "helm-home"),
            cwd=work,
            capture_output=True,
            timeout=TEMPLATE_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise PackageRefused({"chart": [f"helm template took longer than {TEMPLATE_TIMEOUT} s"]}) from None
    except OSError as exc:
        raise PackageRefused({"package_type": [f"Helm charts cannot be rendered: {exc.strerror}"]}) from None
    if result.returncode != 0:
        message = result.stderr.decode("utf-8", "replace").replace(str(chart_dir), chart_name)
        message = message.replace(str(work), "").strip()
        message = "; ".join(line.strip() for line in message.splitlines() if line.strip())[:2000]
        if "missing in charts/ directory" in message:
            message += " (run helm dependency build and publish the chart with its dependencies)"
        raise PackageRefused({"chart": [f"helm template failed: {message}"]})
    if len(result.stdout) > MAX_OUTPUT_BYTES:
        raise PackageRefused({"chart": [f"the chart renders more than {MAX_OUTPUT_BYTES // 2**20} MiB"]})
    output = result.stdout.decode("utf-8", "replace")
    objects: list[dict] = []
    refusals: list[str] = []
    for source, text in _split_output(output, chart_name):
        parsed = bundle.parse_documents(text, source)
        for obj in parsed:
            problem = bundle.cluster_scoped_problem(obj, source) or bundle.namespace_problem(
                obj, namespace, source
            )
            if problem:
                refusals.append(problem)
            else:
                objects.append(obj)
    if refusals:
        raise PackageRefused({"chart": refusals})
    return objects, _lookup_notes(chart_dir), str(meta.get("version") or "")


def render_source(source, *, release: str, namespace: str, kube_version: str = "") -> Rendered:
    """Fetch the chart ``source`` names and render it (see the module docstring)."""
    commit = ""
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="paas-chart-") as tmp:
        work = Path(tmp)
        unpacked = work / "chart"
        unpacked.mkdir()
        if source.sync == "upload":
            name, data = bundle.chart_upload_bytes(source.files or {})
            archive.unpack(data, unpacked, name)
            chart_dir = archive.chart_root(unpacked, name)
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
        else:
            repository = source.repository
            if repository is None:
                raise PackageRefused(
                    {
                        "repository": [
                            "the repository was deleted: nothing can be pulled (choose another source)"
                        ]
                    }
                )
            if repository.kind == "git":
                from catalog.sources import git

                tree = git.fetch(repository, ref=source.ref, path=source.path)
                if tree.single:
                    raise PackageRefused(
                        {"path": [f"{source.path or repository.path}: a chart is a directory"]}
                    )
                tree.write_to(unpacked)
                chart_dir = unpacked
                if not (chart_dir / "Chart.yaml").is_file():
                    raise PackageRefused(
                        {"path": [f"no Chart.yaml at {tree.base or 'the top'} of commit {tree.commit[:12]}"]}
                    )
                commit, notes = tree.commit, list(tree.notes)
                digest = bundle.bundle_digest(tree.files.items())
            else:
                if repository.kind == "oci":
                    data, _version = fetch_from_oci(repository, source.chart, source.chart_version)
                else:
                    data, _version = fetch_from_chart_repository(
                        repository, source.chart, source.chart_version
                    )
                archive.unpack(data, unpacked, f"{source.chart or 'chart'}.tgz")
                chart_dir = archive.chart_root(unpacked, f"{source.chart or 'chart'}.tgz")
                digest = "sha256:" + hashlib.sha256(data).hexdigest()
        objects, lookup_notes, version = template(
            chart_dir,
            release=release,
            namespace=namespace,
            kube_version=kube_version,
            values_file=source.values_file,
            values=source.values,
            work=work,
        )
    return Rendered(
        objects=objects, commit=commit, chart_version=version, digest=digest, notes=notes + lookup_notes
    )
