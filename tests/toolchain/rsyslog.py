"""rsyslog with its TLS module for the audit-streaming tests: Debian's packages, fetched and cached by
content (as tests/toolchain/debian.py does for one binary).

The audit sinks' syslog kind (RFC 5424 over TLS, RFC 5425 framing) is tested against a real rsyslogd
(tests/support/siem.py starts it). Its files come from Debian 12's packages, fetched with ``apt-get
download``, each ``.deb`` checked against its SHA-256 pin below, unpacked (``dpkg-deb -x``) into one
tree and cached under ``~/.cache/localkube/tools/rsyslog-<VERSION>-<digest[:10]>/`` (the digest of
all the pins): ``usr/sbin/rsyslogd``, its modules (``imtcp``, and ``lmnsd_gtls``, the GnuTLS network
stream driver from ``rsyslog-gnutls``) and the two small libraries rsyslogd needs that a Debian
system without rsyslog lacks (``libestr0``, ``libfastjson4``; they are always taken from the pins, so
the tree is the same everywhere). GnuTLS, zlib, libzstd, libuuid and libsystemd are the system's
(every Debian with apt has them). Nothing is installed; rsyslogd runs from the tree with
``LD_LIBRARY_PATH`` and ``-M <modules>``.

``PAAS_TEST_RSYSLOG=/path/to/tree`` (holding ``usr/sbin/rsyslogd`` and ``usr/lib/<triplet>/rsyslog``)
skips the download. To move the pins: set the versions and the SHA-256 of the new ``.deb`` files
(``apt-get download rsyslog=<v> rsyslog-gnutls=<v> libestr0=<v> libfastjson4=<v> && sha256sum *.deb``).

``python -m tests.toolchain.rsyslog`` prints the tree's path (fetching it first if needed).
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
from tests.toolchain import debian

ENV = "PAAS_TEST_RSYSLOG"
VERSION = "8.2302.0-1+deb12u2"  # Debian 12 (bookworm-security)
TRIPLET = "x86_64-linux-gnu"
PACKAGES = {  # package: (version, {arch: sha256 of the .deb})
    "rsyslog": (VERSION, {"amd64": "68ae71297d548a77fa75ab99f6d0222bb21dfe5acf30bdaf1bd7cb6ee88b7a96"}),
    "rsyslog-gnutls": (
        VERSION,
        {"amd64": "e400a95b5d748977118985d4c61723f70463a34fbd314d989f3bd78e987d5c3a"},
    ),
    "libestr0": ("0.1.11-1", {"amd64": "3f6e2aa4baa98be02db4ade424c5e2c6a87f8ee1103cafd6a5ab4df4835d7015"}),
    "libfastjson4": (
        "1.2304.0-1",
        {"amd64": "62aff2ca7d0fdee225e1c166f86c88910e5593a838cc87bbb9f5552f4222e487"},
    ),
}
Unavailable = debian.DebianToolUnavailable


def _tool(package: str) -> debian.DebianTool:
    version, digests = PACKAGES[package]
    return debian.DebianTool(
        package=package,
        version=version,
        sha256=digests,
        member="",
        version_prefix="rsyslogd ",
        env=ENV,
    )


def rsyslogd(tree: Path) -> Path:
    return tree / "usr" / "sbin" / "rsyslogd"


def library_dir(tree: Path) -> Path:
    return tree / "usr" / "lib" / TRIPLET


def module_dir(tree: Path) -> Path:
    return library_dir(tree) / "rsyslog"


def version_of(tree: Path) -> str:
    """The first line of ``rsyslogd -v`` run from the tree (raises Unavailable if it does not run)."""
    env = {**os.environ, "LD_LIBRARY_PATH": str(library_dir(tree))}
    try:
        done = subprocess.run(
            [str(rsyslogd(tree)), "-v"], capture_output=True, text=True, timeout=60, env=env
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Unavailable(f"rsyslogd does not run ({exc}). {_tool('rsyslog').what_to_do}") from exc
    text = (done.stdout or done.stderr).strip()
    if done.returncode != 0 or not text.startswith("rsyslogd "):
        raise Unavailable(f"rsyslogd does not run (exit status {done.returncode}: {text[:300]!r}).")
    if not (module_dir(tree) / "lmnsd_gtls.so").is_file():
        raise Unavailable(f"{module_dir(tree)} has no lmnsd_gtls.so (rsyslog-gnutls).")
    return text.splitlines()[0]


def cache_dir(arch: str) -> Path:
    pins = "".join(f"{p}={PACKAGES[p][0]}:{debian.pinned_digest(_tool(p), arch)}" for p in sorted(PACKAGES))
    digest = hashlib.sha256(pins.encode()).hexdigest()
    return localkube_build.cache_root() / "tools" / f"rsyslog-{VERSION}-{digest[:10]}"


def fetch(arch: str) -> Path:
    """Fetch, check and unpack every pinned package into one cached tree (under a lock)."""
    final = cache_dir(arch)
    final.parent.mkdir(parents=True, exist_ok=True)
    with localkube_build.file_lock(final.parent / "rsyslog.lock"):
        if rsyslogd(final).is_file():
            return final
        staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
        try:
            started = time.monotonic()
            tree = staging / "tree"
            for package in PACKAGES:
                tool = _tool(package)
                print(f"[toolchain rsyslog] fetching Debian's {package} {tool.version}", file=sys.stderr)
                download = staging / package
                download.mkdir()
                deb = debian._download(tool, download)
                digest = debian._sha256(deb)
                if digest != debian.pinned_digest(tool, arch):
                    raise Unavailable(f"{deb.name} has SHA-256 {digest}, not the pinned one: refused.")
                subprocess.run(["dpkg-deb", "-x", str(deb), str(tree)], check=True, capture_output=True)
                shutil.rmtree(download)
            reports = version_of(tree)
            for unused in ("etc", "lib", "usr/share"):
                shutil.rmtree(tree / unused, ignore_errors=True)
            info = {"packages": {p: v for p, (v, _) in PACKAGES.items()}, "arch": arch, "reports": reports}
            info["seconds"] = round(time.monotonic() - started, 1)
            (tree / "INFO.json").write_text(json.dumps(info, indent=2) + "\n")
            tree.chmod(0o755)
            os.rename(tree, final)
        except subprocess.CalledProcessError as exc:
            raise Unavailable(f"dpkg-deb could not unpack a package: {exc.stderr!r}") from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return final


def ensure() -> Path:
    """The tree holding rsyslogd and its modules: ``$PAAS_TEST_RSYSLOG``, else the cached pinned packages."""
    override = os.environ.get(ENV)
    if override:
        version_of(Path(override))
        return Path(override)
    arch = debian.architecture(_tool("rsyslog"))
    tree = cache_dir(arch)
    if rsyslogd(tree).is_file():
        return tree
    return fetch(arch)


if __name__ == "__main__":
    try:
        print(ensure())
    except Unavailable as exc:
        sys.exit(str(exc))
