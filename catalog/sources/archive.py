"""Chart archives (``.tgz``) unpacked safely: every member checked before anything is written.

Refused, with the member named: absolute paths, ``..`` components, links of any kind (symbolic or
hard: nothing in a chart needs one, and a link is how an archive reaches outside its directory),
devices, FIFOs, more than ``MAX_MEMBERS`` members, more than ``MAX_UNPACKED_BYTES`` in all (the
decompressed stream is bounded too: a gzip bomb stops at the bound). Regular files are written with
mode 0644 and directories 0755, never the archive's own modes or owners.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import zlib
from pathlib import Path, PurePosixPath

from catalog.sources.errors import PackageRefused

MAX_MEMBERS = 2000
MAX_UNPACKED_BYTES = 20 * 1024 * 1024  # 20 MiB for a chart and its vendored dependencies


class _BoundedReader(io.RawIOBase):
    """The decompressed stream, refusing to yield more than ``limit`` bytes."""

    def __init__(self, stream, limit: int, name: str):
        self.stream, self.limit, self.read_so_far, self.name = stream, limit, 0, name

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.stream.read(len(buffer))
        self.read_so_far += len(data)
        if self.read_so_far > self.limit + 64 * 1024:  # tar headers and padding on top of the contents
            raise PackageRefused({"files": [f"{self.name}: unpacks to more than {self.limit // 2**20} MiB"]})
        buffer[: len(data)] = data
        return len(data)


def _members(data: bytes, name: str) -> list[tuple[tarfile.TarInfo, bytes]]:
    """Every member of the archive with its content (b"" for directories), all checked."""
    try:
        stream = gzip.GzipFile(fileobj=io.BytesIO(data)) if data[:2] == b"\x1f\x8b" else io.BytesIO(data)
        reader = io.BufferedReader(_BoundedReader(stream, MAX_UNPACKED_BYTES, name))
        members = []
        total = 0
        problems = []
        tar = tarfile.open(fileobj=reader, mode="r|")  # noqa: SIM115 - a stream: one pass, bounded
        for member in tar:
            if len(members) >= MAX_MEMBERS:
                raise PackageRefused({"files": [f"{name}: more than {MAX_MEMBERS} files in the archive"]})
            problem = member_problem(member)
            if problem:
                problems.append(f"{name}: {problem}")
                continue
            content = b""
            if member.isfile():
                total += member.size
                if total > MAX_UNPACKED_BYTES:
                    raise PackageRefused(
                        {"files": [f"{name}: unpacks to more than {MAX_UNPACKED_BYTES // 2**20} MiB"]}
                    )
                content = tar.extractfile(member).read()  # type: ignore[union-attr]
            members.append((member, content))
        if problems:
            raise PackageRefused({"files": problems})
        return members
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise PackageRefused({"files": [f"{name}: not a valid .tgz archive ({exc})"]}) from exc


def member_problem(member: tarfile.TarInfo) -> str | None:
    """Why a tar member is refused, or None."""
    path = PurePosixPath(member.name)
    if member.name.startswith(("/", "\\")) or path.is_absolute() or (path.parts and ":" in path.parts[0]):
        return f"{member.name}: absolute paths are refused"
    if any(part == ".." for part in path.parts) or "\\" in member.name:
        return f"{member.name}: paths leaving the chart ('..') are refused"
    if member.issym() or member.islnk():
        return f"{member.name}: links are refused (to {member.linkname!r})"
    if not (member.isfile() or member.isdir()):
        return f"{member.name}: only files and directories are allowed"
    return None


def unpack(data: bytes, destination: Path, name: str = "chart.tgz") -> list[str]:
    """Unpack a checked archive into ``destination`` (which must exist); returns the files' paths."""
    members = _members(data, name)
    root = destination.resolve()
    written = []
    for member, content in members:
        relative = PurePosixPath(*[p for p in PurePosixPath(member.name).parts if p not in ("", ".")])
        if not relative.parts:
            continue
        target = (root / relative).resolve()
        if root not in target.parents:
            raise PackageRefused({"files": [f"{name}: {member.name}: leaves the chart directory"]})
        if member.isdir():
            target.mkdir(parents=True, exist_ok=True, mode=0o755)
            continue
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        if target.is_symlink() or target.exists():
            raise PackageRefused({"files": [f"{name}: {member.name}: appears twice in the archive"]})
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        written.append(str(relative))
    return written


def chart_root(destination: Path, name: str = "chart.tgz") -> Path:
    """The chart directory of an unpacked archive: the one top directory holding ``Chart.yaml``."""
    if (destination / "Chart.yaml").is_file():
        return destination
    candidates = [p for p in destination.iterdir() if p.is_dir() and (p / "Chart.yaml").is_file()]
    if len(candidates) != 1:
        raise PackageRefused({"files": [f"{name}: not a Helm chart (no Chart.yaml in its top directory)"]})
    return candidates[0]


def check_chart_archive(data: bytes, name: str = "chart.tgz") -> None:
    """Request side: the archive is a safe .tgz holding one chart (``<dir>/Chart.yaml`` with a name and
    a version). Raises PackageRefused naming the problem."""
    import yaml

    from paas import yamlsafe

    members = _members(data, name)
    charts = [(m, c) for m, c in members if m.isfile() and len(PurePosixPath(m.name).parts) == 2]
    charts = [(m, c) for m, c in charts if PurePosixPath(m.name).name == "Chart.yaml"]
    if len(charts) != 1:
        raise PackageRefused({"files": [f"{name}: not a Helm chart (no <chart>/Chart.yaml inside)"]})
    try:
        meta = yamlsafe.safe_load(charts[0][1].decode("utf-8"))
    except (ValueError, yaml.YAMLError) as exc:  # UnicodeDecodeError is a ValueError
        raise PackageRefused({"files": [f"{name}: Chart.yaml is not valid YAML"]}) from exc
    if not isinstance(meta, dict) or not meta.get("name") or not meta.get("version"):
        raise PackageRefused({"files": [f"{name}: Chart.yaml needs a name and a version"]})
    crds = sorted(
        str(PurePosixPath(*PurePosixPath(m.name).parts[1:]))
        for m, _c in members
        if m.isfile() and "crds" in PurePosixPath(m.name).parts[1:-1]
    )
    if crds:
        raise PackageRefused(
            {
                "files": [
                    f"{name}: {path}: a chart's crds/ define cluster-scoped CustomResourceDefinitions: "
                    "applications may only create objects in their namespace"
                    for path in crds
                ]
            }
        )
