"""Prometheus for the tests: Debian's package, fetched and unpacked by the project's own files, cached by
content.

The billing tests read GPU utilisation from a real Prometheus (tests/support/prometheus.py starts it).
Its binary comes from Debian's ``prometheus`` package (bookworm), the same way the suite gets
Chromium from Debian rather than from a project download site, but without installing anything:

* ``apt-get download prometheus=<VERSION>`` fetches the ``.deb`` through apt (signed archive: apt
  checks the package against the Release file's signature), as any user;
* its SHA-256 must equal the pin below (so a rebuilt or different package never slips in);
* ``dpkg-deb -x`` unpacks it in a staging directory, only ``usr/bin/prometheus`` is kept (a static Go
  binary; it needs nothing of the package's web-UI dependencies for its HTTP API);
* the binary is cached under ``~/.cache/localkube/tools/prometheus-<VERSION>-<sha256[:10]>/`` (beside
  helm and the registry of tests/toolchain/build.py), with ``INFO.json`` (version, digest, seconds),
  renamed into place only once it ran (``--version``), under a ``flock`` so concurrent runs do not race.
  Later runs only check that the file exists.

When apt's package lists do not know the pinned version yet and we are root, ``apt-get update`` runs
once and the download is retried. ``PAAS_TEST_PROMETHEUS=/path/to/prometheus`` skips all of this.

To move the pin: set VERSION and the SHA-256 of the new ``.deb`` (``apt-get download
prometheus=<version> && sha256sum prometheus_*.deb``).

``python -m tests.toolchain.prometheus`` prints the binary's path (fetching it first if needed).
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
from pathlib import Path

from tests.localkube import build as localkube_build

ENV = "PAAS_TEST_PROMETHEUS"
PACKAGE = "prometheus"
VERSION = "2.42.0+ds-5+deb12u1"  # Debian 12 (bookworm), main
SHA256 = {"amd64": "81d59a24fce84f7fbe97a45a4f2914b6a5881b5cd1db2a6a0e129e515e1a5f55"}
WHAT_TO_DO = (
    f"Set {ENV}=/path/to/prometheus (any Prometheus 2.x), or make Debian's package lists know "
    f"{PACKAGE}={VERSION} (apt-get update)."
)


class PrometheusUnavailable(RuntimeError):
    """The pinned package could not be fetched, did not match its pin, or does not run."""


def _log(message: str) -> None:
    print(f"[prometheus] {message}", file=sys.stderr, flush=True)


def architecture() -> str:
    try:
        done = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise PrometheusUnavailable(f"dpkg is not available ({exc}). {WHAT_TO_DO}") from exc
    return done.stdout.strip()


def pinned_digest(arch: str) -> str:
    try:
        return SHA256[arch]
    except KeyError:
        raise PrometheusUnavailable(
            f"no SHA-256 pinned for Debian's {PACKAGE} on {arch} (tests/toolchain/prometheus.py). "
            + WHAT_TO_DO
        ) from None


def cache_dir(arch: str | None = None) -> Path:
    """Where the binary of the pinned package lives: keyed by the version and the package's digest."""
    digest = pinned_digest(arch or architecture())
    return localkube_build.cache_root() / "tools" / f"prometheus-{VERSION}-{digest[:10]}"


def _download(into: Path) -> Path:
    """``apt-get download`` the pinned version into ``into``; returns the ``.deb``."""
    command = ["apt-get", "download", f"{PACKAGE}={VERSION}"]
    attempts = [command, ["apt-get", "update"], command] if os.geteuid() == 0 else [command]
    failure = ""
    for step in attempts:
        try:
            done = subprocess.run(step, cwd=into, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as exc:
            failure = str(exc)
            continue
        if step is command and done.returncode == 0:
            debs = sorted(into.glob(f"{PACKAGE}_*.deb"))
            if len(debs) == 1:
                return debs[0]
            failure = f"apt-get download left {len(debs)} packages"
        elif done.returncode != 0:
            failure = f"{' '.join(step)}: exit status {done.returncode}: {done.stderr.strip()[-1000:]}"
    raise PrometheusUnavailable(f"Could not fetch Debian's {PACKAGE}={VERSION}: {failure}. {WHAT_TO_DO}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def version_of(binary: Path) -> str:
    """The first line of ``prometheus --version`` (raises PrometheusUnavailable if it does not run)."""
    try:
        done = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PrometheusUnavailable(f"{binary} does not run ({exc}). {WHAT_TO_DO}") from exc
    text = (done.stdout or done.stderr).strip()
    if done.returncode != 0 or not text.startswith("prometheus, version"):
        raise PrometheusUnavailable(f"{binary} does not run (exit status {done.returncode}). {WHAT_TO_DO}")
    return text.splitlines()[0]


def fetch(arch: str) -> Path:
    """Fetch, check and unpack the pinned package into the cache (under the lock); returns the binary."""
    final = cache_dir(arch)
    binary = final / "prometheus"
    with localkube_build.file_lock(final.parent / "prometheus.lock"):
        if binary.is_file():  # another run fetched it while we waited
            return binary
        staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
        try:
            started = time.monotonic()
            _log(f"fetching Debian's {PACKAGE} {VERSION} ({arch}) with apt-get download")
            deb = _download(staging)
            digest = _sha256(deb)
            if digest != pinned_digest(arch):
                raise PrometheusUnavailable(
                    f"{deb.name} has SHA-256 {digest}, not the pinned {pinned_digest(arch)}: refused."
                )
            unpacked = staging / "unpacked"
            subprocess.run(["dpkg-deb", "-x", str(deb), str(unpacked)], check=True, capture_output=True)
            os.rename(unpacked / "usr" / "bin" / "prometheus", staging / "prometheus")
            shutil.rmtree(unpacked)
            deb.unlink()
            version = version_of(staging / "prometheus")
            seconds = round(time.monotonic() - started, 1)
            info = {"package": PACKAGE, "version": VERSION, "arch": arch, "sha256": digest}
            info |= {"reports": version, "seconds": seconds}
            (staging / "INFO.json").write_text(json.dumps(info, indent=2) + "\n")
            staging.chmod(0o755)
            os.rename(staging, final)
            _log(f"{version}: cached in {final} ({seconds}s)")
        except subprocess.CalledProcessError as exc:
            raise PrometheusUnavailable(f"dpkg-deb could not unpack the package: {exc.stderr!r}") from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return binary


def ensure() -> str:
    """The path of a Prometheus binary: ``$PAAS_TEST_PROMETHEUS``, else the cached pinned package."""
    override = os.environ.get(ENV)
    if override:
        version_of(Path(override))
        return override
    arch = architecture()
    binary = cache_dir(arch) / "prometheus"
    if binary.is_file():
        return str(binary)
    return str(fetch(arch))


if __name__ == "__main__":
    try:
        print(ensure())
    except PrometheusUnavailable as exc:
        sys.exit(str(exc))
