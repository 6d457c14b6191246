"""The air-gapped bundle: one archive to install the platform where there is no network.

``python -m deploy.bundle [--out DIR]`` (``make bundle``) writes ``DIR/gpu-paas-<version>.tar`` (default
``DIR`` = ``var/bundle``) and prints its path. Every entry sits under ``gpu-paas-<version>/``::

    image/                        the image as an OCI image layout (oci-layout, index.json, blobs/sha256/...)
    chart/gpu-paas-<version>.tgz  the Helm chart (``helm package``), its values pinned to the image's digest
    bin/kubectl  bin/helm         the suite's own builds (tests/toolchain, the same ones the image carries)
    backup/backup.sh  restore.sh  deploy/backup.sh and deploy/restore.sh (pg_dump/pg_restore + checkpoints)
    install.sh                    checks SHA256SUMS, pushes the image to a registry if given one,
                                  labels the namespace, ``helm upgrade --install`` with bin/helm
    SHA256SUMS                    ``sha256sum --check`` format, every other file

``image/`` is the plain OCI layout; ``tar -C image -cf gpu-paas.oci.tar .`` makes of it the *oci-archive*
that ``skopeo copy oci-archive:``, ``ctr images import`` and ``crane push`` take (not shipped twice: the
image is most of the bundle's size).

Reproducible: the same inputs (image layout, chart, binaries, version, ``SOURCE_DATE_EPOCH``) give the same
bytes: entries sorted, owner 0:0 without names, modes 0644/0755, every mtime ``SOURCE_DATE_EPOCH``
(default 1980-01-01), the chart packaged from a copy whose files carry that mtime.

The inputs: the image of ``python -m deploy.image build`` (or ``--image-layout DIR [--image-ref NAME]``),
the chart ``deploy/helm/gpu-paas`` (or ``--chart DIR``), helm and kubectl of ``tests/toolchain`` (or
``--helm``/``--kubectl``), the version of ``pyproject.toml`` (or ``--version``). Nothing of the platform's
apps is imported: this builds, it does not run the platform.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHART_DIR = REPO / "deploy" / "helm" / "gpu-paas"
INSTALL_TEMPLATE = Path(__file__).resolve().parent / "bundle_install.sh"
# The backup and restore scripts (docs/operations.md, "Backup and restore"), run where pg_dump is.
BACKUP_SCRIPTS = (REPO / "deploy" / "backup.sh", REPO / "deploy" / "restore.sh")
DEFAULT_EPOCH = 315532800  # 1980-01-01T00:00:00Z, when SOURCE_DATE_EPOCH is unset
REF_NAME = "org.opencontainers.image.ref.name"


class BundleError(RuntimeError):
    """An input is missing or inconsistent."""


@dataclass(frozen=True)
class Image:
    """An OCI image layout and the manifest the bundle installs: ``digest`` is what pods run."""

    layout: Path
    ref_name: str
    digest: str


@dataclass(frozen=True)
class Bundle:
    path: Path
    version: str
    image_digest: str
    sha256: str


def project_version() -> str:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def source_date_epoch() -> int:
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    return int(value) if value else DEFAULT_EPOCH


def image_from_layout(layout: Path, ref_name: str | None = None) -> Image:
    """The manifest of ``layout`` named ``ref_name`` (its ``ref.name`` annotation), or its only one."""
    layout = Path(layout)
    try:
        index = json.loads((layout / "index.json").read_text())
        json.loads((layout / "oci-layout").read_text())
    except (OSError, ValueError) as exc:
        raise BundleError(f"{layout} is not an OCI image layout: {exc}") from exc
    manifests = index.get("manifests") or []
    if ref_name is not None:
        manifests = [m for m in manifests if (m.get("annotations") or {}).get(REF_NAME) == ref_name]
    if len(manifests) != 1:
        names = [(m.get("annotations") or {}).get(REF_NAME) for m in index.get("manifests") or []]
        raise BundleError(f"{layout}: expected one image{f' named {ref_name}' if ref_name else ''}: {names}")
    manifest = manifests[0]
    digest = manifest["digest"]
    if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        raise BundleError(f"{layout}: unexpected digest {digest!r}")
    blob = layout / "blobs" / "sha256" / digest.split(":", 1)[1]
    if not blob.is_file() or "sha256:" + _sha256_file(blob) != digest:
        raise BundleError(f"{layout}: the manifest blob {digest} is missing or does not match its digest")
    name = (manifest.get("annotations") or {}).get(REF_NAME) or ""
    if not name:
        raise BundleError(f"{layout}: the image has no {REF_NAME} annotation (tools address it by that name)")
    return Image(layout=layout, ref_name=name, digest=digest)


def built_image() -> Image:
    """The image of ``python -m deploy.image build`` (built, or found cached by content)."""
    from deploy.image import build as image_build

    try:
        built = image_build.build()
    except image_build.ImageBuildError as exc:
        raise BundleError(f"building the image failed: {exc}") from exc
    layout = Path(built["layout"])
    image = image_from_layout(layout, _ref_name_in(layout, built["tag"]))
    if image.digest != built["digest"]:
        raise BundleError(f"deploy.image says {built['digest']}, its layout holds {image.digest}")
    return image


def _ref_name_in(layout: Path, tag: str) -> str | None:
    """The ref.name of ``layout`` matching ``tag`` (``name:tag`` or bare), else None (the only one)."""
    index = json.loads((layout / "index.json").read_text())
    names = [(m.get("annotations") or {}).get(REF_NAME) for m in index.get("manifests") or []]
    for candidate in (tag, tag.rsplit(":", 1)[-1]):
        if candidate in names:
            return candidate
    return None


INDEX_TYPES = {
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
}


def layout_files(image: Image) -> list[tuple[str, Path | bytes, int]]:
    """The bundle's ``image/``: ``oci-layout``, an ``index.json`` naming only ``image``, and only the blobs
    that image reaches (its manifest, config and layers; through nested indexes too). Other images a shared
    layout may hold stay out, so the bundle depends on the one image alone."""
    index = json.loads((image.layout / "index.json").read_text())
    chosen = [m for m in index["manifests"] if m["digest"] == image.digest][:1]
    blobs: set[str] = set()
    pending = [chosen[0]]
    while pending:
        descriptor = pending.pop()
        digest = descriptor["digest"]
        if digest in blobs:
            continue
        blobs.add(digest)
        if descriptor.get("mediaType") in INDEX_TYPES:
            pending += json.loads(_blob_path(image.layout, digest).read_bytes()).get("manifests", [])
        elif "manifest" in (descriptor.get("mediaType") or ""):
            manifest = json.loads(_blob_path(image.layout, digest).read_bytes())
            pending += [manifest["config"], *manifest.get("layers", [])]
    entries: list[tuple[str, Path | bytes, int]] = [
        ("image/oci-layout", image.layout / "oci-layout", 0o644),
        (
            "image/index.json",
            json.dumps({"schemaVersion": 2, "manifests": chosen}, sort_keys=True).encode(),
            0o644,
        ),
    ]
    for digest in sorted(blobs):
        path = _blob_path(image.layout, digest)
        if path.is_symlink() or not path.is_file():
            raise BundleError(
                f"{path}: the blob {digest} is missing from the image layout (or not a plain file)"
            )
        entries.append((f"image/blobs/sha256/{path.name}", path, 0o644))
    return entries


def _blob_path(layout: Path, digest: str) -> Path:
    algorithm, _, hexdigest = digest.partition(":")
    if algorithm != "sha256" or not re.fullmatch(r"[0-9a-f]{64}", hexdigest):
        raise BundleError(f"unsupported blob digest {digest!r}")
    return layout / "blobs" / "sha256" / hexdigest


def toolchain_binary(name: str) -> Path:
    """helm or kubectl as tests/toolchain builds and caches them (the versions the image carries)."""
    from tests.toolchain import build as toolchain  # the build side only; nothing of the apps

    return Path(toolchain.ensure(name))


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def pin_image_values(values: str, *, digest: str, repository: str | None = None) -> str:
    """``values.yaml`` with the top-level ``image:`` block's ``digest:`` (and ``repository:``) set.

    A line edit, so the chart's comments survive; refuses a values file without those keys."""
    lines = values.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if re.match(r"image:\s*(#.*)?$", line)), None)
    if start is None:
        raise BundleError("the chart's values.yaml has no top-level 'image:' block")
    wanted = {"digest": digest, **({"repository": repository} if repository else {})}
    done: set[str] = set()
    indent = None
    for i in range(start + 1, len(lines)):
        line = lines[i]
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        current = len(line) - len(line.lstrip())
        if current == 0:
            break
        indent = current if indent is None else indent
        match = re.match(r"(\s*)([A-Za-z]+):", line)
        if current == indent and match and match.group(2) in wanted:
            key = match.group(2)
            lines[i] = f"{match.group(1)}{key}: {json.dumps(wanted[key])}\n"
            done.add(key)
    missing = set(wanted) - done
    if missing:
        raise BundleError(f"the chart's values.yaml has no image.{', image.'.join(sorted(missing))}")
    return "".join(lines)


def package_chart(
    chart_dir: Path, *, helm: Path, version: str, digest: str, out_dir: Path, epoch: int
) -> Path:
    """``helm package`` of a copy of ``chart_dir`` with its values pinned to ``digest``; reproducible."""
    with tempfile.TemporaryDirectory(prefix="gpu-paas-chart-") as scratch:
        stage = Path(scratch) / "gpu-paas"
        shutil.copytree(chart_dir, stage)
        values = stage / "values.yaml"
        values.write_text(pin_image_values(values.read_text(), digest=digest))
        for path in [*sorted(stage.rglob("*"), reverse=True), stage]:
            os.utime(path, (epoch, epoch), follow_symlinks=False)
        home = Path(scratch) / "home"
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_DATA_HOME": str(home / "data"),
        }
        out_dir.mkdir(parents=True, exist_ok=True)
        command = [str(helm), "package", str(stage), "--version", version, "--app-version", version]
        result = subprocess.run(  # noqa: S603 - an argv list of our own paths, no shell
            [*command, "-d", str(out_dir)], env=env, capture_output=True, text=True
        )
        if result.returncode != 0:
            raise BundleError(f"helm package failed:\n{result.stderr}")
        packaged = out_dir / f"gpu-paas-{version}.tgz"
        if not packaged.is_file():
            raise BundleError(f"helm package wrote no {packaged.name} (is the chart named gpu-paas?)")
        return packaged


def _render_install(*, version: str, chart: str, image: Image) -> bytes:
    text = INSTALL_TEMPLATE.read_text()
    for key, value in {
        "@VERSION@": version,
        "@CHART@": chart,
        "@IMAGE_DIGEST@": image.digest,
        "@IMAGE_REF_NAME@": image.ref_name,
    }.items():
        if "'" in value:
            raise BundleError(f"{key} may not contain a quote: {value!r}")
        text = text.replace(key, value)
    return text.encode()


def _entry(name: str, *, size: int = 0, mode: int, epoch: int, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.size = size
    info.mode = mode
    info.mtime = epoch
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def build_bundle(
    *,
    out_dir: Path,
    image: Image,
    chart_dir: Path = CHART_DIR,
    helm: Path,
    kubectl: Path,
    version: str | None = None,
    epoch: int | None = None,
) -> Bundle:
    """Write ``out_dir/gpu-paas-<version>.tar`` (atomically) and return it with its SHA-256."""
    version = version or project_version()
    epoch = source_date_epoch() if epoch is None else epoch
    if not (Path(chart_dir) / "Chart.yaml").is_file():
        raise BundleError(f"no chart at {chart_dir}")
    for tool in (helm, kubectl):
        if not Path(tool).is_file():
            raise BundleError(f"missing binary {tool}")
    root = f"gpu-paas-{version}"
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".bundle-", dir=out_dir) as scratch:
        chart = package_chart(
            Path(chart_dir),
            helm=Path(helm),
            version=version,
            digest=image.digest,
            out_dir=Path(scratch),
            epoch=epoch,
        )
        chart_name = f"chart/{chart.name}"
        # (name in the bundle, source file or bytes, mode)
        files: list[tuple[str, Path | bytes, int]] = [
            (chart_name, chart, 0o644),
            ("bin/helm", Path(helm), 0o755),
            ("bin/kubectl", Path(kubectl), 0o755),
            ("install.sh", _render_install(version=version, chart=chart_name, image=image), 0o755),
        ]
        files += [(f"backup/{path.name}", path, 0o755) for path in BACKUP_SCRIPTS if path.is_file()]
        files += layout_files(image)
        sums = []
        for name, source, _mode in files:
            digest = hashlib.sha256(source).hexdigest() if isinstance(source, bytes) else _sha256_file(source)
            sums.append(f"{digest}  {name}\n")
        files.append(("SHA256SUMS", "".join(sorted(sums, key=lambda s: s[66:])).encode(), 0o644))
        directories = {str(Path(name).parent) for name, _s, _m in files} - {"."}
        for directory in list(directories):
            while (directory := str(Path(directory).parent)) != ".":
                directories.add(directory)
        entries: list[tuple[str, Path | bytes | None, int]] = [(root, None, 0o755)]
        entries += [(f"{root}/{d}", None, 0o755) for d in directories]
        entries += [(f"{root}/{name}", source, mode) for name, source, mode in files]
        entries.sort(key=lambda entry: entry[0])
        partial = Path(scratch) / f"{root}.tar"
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as archive:
            for name, source, mode in entries:
                if source is None:
                    archive.addfile(_entry(name, mode=mode, epoch=epoch, directory=True))
                elif isinstance(source, bytes):
                    archive.addfile(
                        _entry(name, size=len(source), mode=mode, epoch=epoch), io.BytesIO(source)
                    )
                else:
                    with open(source, "rb") as handle:
                        size = os.fstat(handle.fileno()).st_size
                        archive.addfile(_entry(name, size=size, mode=mode, epoch=epoch), handle)
        final = out_dir / f"{root}.tar"
        os.replace(partial, final)
    return Bundle(path=final, version=version, image_digest=image.digest, sha256=_sha256_file(final))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.bundle", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "var" / "bundle", help="where the archive goes")
    parser.add_argument("--image-layout", type=Path, help="an OCI image layout (default: deploy.image build)")
    parser.add_argument(
        "--image-ref", help="the layout's image to take (its ref.name), when it holds several"
    )
    parser.add_argument("--chart", type=Path, default=CHART_DIR, help="the chart directory")
    parser.add_argument("--helm", type=Path, help="helm binary (default: tests/toolchain's build)")
    parser.add_argument("--kubectl", type=Path, help="kubectl binary (default: tests/toolchain's build)")
    parser.add_argument("--version", help="the bundle's and chart's version (default: pyproject.toml's)")
    args = parser.parse_args(argv)
    try:
        image = image_from_layout(args.image_layout, args.image_ref) if args.image_layout else built_image()
        bundle = build_bundle(
            out_dir=args.out,
            image=image,
            chart_dir=args.chart,
            helm=args.helm or toolchain_binary("helm"),
            kubectl=args.kubectl or toolchain_binary("kubectl"),
            version=args.version,
        )
    except BundleError as exc:
        parser.exit(1, f"deploy.bundle: {exc}\n")
    print(f"{bundle.path}", flush=True)
    print(f"sha256 {bundle.sha256}  image {bundle.image_digest}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
