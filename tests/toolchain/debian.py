"""One binary out of a pinned Debian package: fetched with ``apt-get download``, checked against its SHA-256,
unpacked and cached by content (Prometheus for the billing tests, bubblewrap for the web shell).

* ``apt-get download <package>=<version>`` fetches the ``.deb`` through apt (signed archive: apt checks
  the package against the Release file's signature), as any user, installing nothing;
* its SHA-256 must equal the pin (so a rebuilt or different package never slips in);
* ``dpkg-deb -x`` unpacks it in a staging directory and only the one binary is kept;
* it is cached under ``~/.cache/localkube/tools/<package>-<version>-<sha256[:10]>/`` with ``INFO.json``
  (version, digest, what ``--version`` said, seconds), renamed into place only once it ran, under a
  ``flock`` so concurrent runs do not race.  Later runs only check that the file exists.

When apt's package lists do not know the pinned version and we are root, ``apt-get update`` runs once
and the download is retried.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.localkube import build as localkube_build


class DebianToolUnavailable(RuntimeError):
    """The pinned package could not be fetched, did not match its pin, or its binary does not run."""


@dataclass(frozen=True)
class DebianTool:
    """A binary shipped in a Debian package: the pinned version and per-architecture SHA-256 of the
    ``.deb``, the binary's path inside it, and what ``--version`` prints first."""

    package: str
    version: str
    sha256: dict[str, str] = field(hash=False)
    member: str  # path of the binary inside the package, e.g. "usr/bin/bwrap"
    version_prefix: str  # the first line of ``<binary> --version`` starts with this
    env: str  # an environment variable naming a binary to use instead

    @property
    def binary_name(self) -> str:
        return Path(self.member).name

    @property
    def what_to_do(self) -> str:
        return (
            f"Set {self.env}=/path/to/{self.binary_name}, or make Debian's package lists know "
            f"{self.package}={self.version} (apt-get update)."
        )


def _log(message: str) -> None:
    print(f"[toolchain debian] {message}", file=sys.stderr, flush=True)


def architecture(tool: DebianTool) -> str:
    try:
        done = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise DebianToolUnavailable(f"dpkg is not available ({exc}). {tool.what_to_do}") from exc
    return done.stdout.strip()


def pinned_digest(tool: DebianTool, arch: str) -> str:
    try:
        return tool.sha256[arch]
    except KeyError:
        raise DebianToolUnavailable(
            f"no SHA-256 pinned for Debian's {tool.package} on {arch}. {tool.what_to_do}"
        ) from None


def cache_dir(tool: DebianTool, arch: str) -> Path:
    """Where the binary of the pinned package lives: keyed by the version and the package's digest."""
    digest = pinned_digest(tool, arch)
    return localkube_build.cache_root() / "tools" / f"{tool.package}-{tool.version}-{digest[:10]}"


def _download(tool: DebianTool, into: Path) -> Path:
    """``apt-get download`` the pinned version into ``into``; returns the ``.deb``."""
    command = ["apt-get", "download", f"{tool.package}={tool.version}"]
    attempts = [command, ["apt-get", "update"], command] if os.geteuid() == 0 else [command]
    failure = ""
    for step in attempts:
        try:
            done = subprocess.run(step, cwd=into, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as exc:
            failure = str(exc)
            continue
        if step is command and done.returncode == 0:
            debs = sorted(into.glob(f"{tool.package}_*.deb"))
            if len(debs) == 1:
                return debs[0]
            failure = f"apt-get download left {len(debs)} packages"
        elif done.returncode != 0:
            failure = f"{' '.join(step)}: exit status {done.returncode}: {done.stderr.strip()[-1000:]}"
    raise DebianToolUnavailable(
        f"Could not fetch Debian's {tool.package}={tool.version}: {failure}. {tool.what_to_do}"
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def version_of(tool: DebianTool, binary: Path) -> str:
    """The first line of ``<binary> --version`` (raises DebianToolUnavailable if it does not run)."""
    try:
        done = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DebianToolUnavailable(f"{binary} does not run ({exc}). {tool.what_to_do}") from exc
    text = (done.stdout or done.stderr).strip()
    if done.returncode != 0 or not text.startswith(tool.version_prefix):
        raise DebianToolUnavailable(
            f"{binary} does not run (exit status {done.returncode}: {text[:200]!r}). {tool.what_to_do}"
        )
    return text.splitlines()[0]


def fetch(tool: DebianTool, arch: str) -> Path:
    """Fetch, check and unpack the pinned package into the cache (under the lock); returns the binary."""
    final = cache_dir(tool, arch)
    binary = final / tool.binary_name
    with localkube_build.file_lock(final.parent / f"{tool.package}.lock"):
        if binary.is_file():  # another run fetched it while we waited
            return binary
        staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
        try:
            started = time.monotonic()
            _log(f"fetching Debian's {tool.package} {tool.version} ({arch}) with apt-get download")
            deb = _download(tool, staging)
            digest = _sha256(deb)
            if digest != pinned_digest(tool, arch):
                raise DebianToolUnavailable(
                    f"{deb.name} has SHA-256 {digest}, not the pinned {pinned_digest(tool, arch)}: refused."
                )
            unpacked = staging / "unpacked"
            subprocess.run(["dpkg-deb", "-x", str(deb), str(unpacked)], check=True, capture_output=True)
            os.rename(unpacked / tool.member, staging / tool.binary_name)
            shutil.rmtree(unpacked)
            deb.unlink()
            version = version_of(tool, staging / tool.binary_name)
            seconds = round(time.monotonic() - started, 1)
            info = {"package": tool.package, "version": tool.version, "arch": arch, "sha256": digest}
            info |= {"reports": version, "seconds": seconds}
            (staging / "INFO.json").write_text(json.dumps(info, indent=2) + "\n")
            staging.chmod(0o755)
            os.rename(staging, final)
            _log(f"{version}: cached in {final} ({seconds}s)")
        except subprocess.CalledProcessError as exc:
            raise DebianToolUnavailable(f"dpkg-deb could not unpack the package: {exc.stderr!r}") from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return binary


def ensure(tool: DebianTool) -> Path:
    """The path of the tool's binary: ``$<tool.env>``, else the cached pinned package (fetched once)."""
    override = os.environ.get(tool.env)
    if override:
        version_of(tool, Path(override))
        return Path(override)
    arch = architecture(tool)
    binary = cache_dir(tool, arch) / tool.binary_name
    if binary.is_file():
        return binary
    return fetch(tool, arch)
