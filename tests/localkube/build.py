"""Build (once) and cache the control-plane binaries used by the local test clusters.

The binaries are compiled from the official Go modules through the Go module proxy, using the
small wrapper modules checked in under ``tests/localkube/gomod/`` (their ``go.mod``/``go.sum``
pin every dependency).  The result is cached outside the checkout, keyed by the pinned versions
and a digest of the wrapper modules::

    ~/.cache/localkube/bin/k8s-v1.37.2_etcd-v3.7.0_kwok-v0.8.0-<digest>/
        kube-apiserver kube-controller-manager kube-scheduler etcd kwok BUILD-INFO.json

Go's own module and build caches also live under ``~/.cache/localkube`` so that a rebuild
after a pin change only recompiles what changed.  A file lock serialises concurrent builders
and the versioned directory only appears (atomic rename) once every binary was built.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

KUBERNETES_VERSION = "v1.37.2"
ETCD_VERSION = "v3.7.0"
KWOK_VERSION = "v0.8.0"

GOMOD_DIR = Path(__file__).resolve().parent / "gomod"
BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd", "kwok")


@dataclass(frozen=True)
class GoTarget:
    """One binary: which wrapper module builds which main package, with which linker flags."""

    name: str
    module_dir: str
    package: str
    ldflags: tuple[str, ...] = ()


def kube_version_ldflags() -> tuple[str, ...]:
    """The ``-X`` flags Kubernetes' own build (hack/lib/version.sh) stamps into its binaries."""
    major, minor = KUBERNETES_VERSION.lstrip("v").split(".")[:2]
    values = {
        "gitVersion": KUBERNETES_VERSION,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
    }
    return tuple(
        f"-X {package}.{key}={value}"
        for package in ("k8s.io/client-go/pkg/version", "k8s.io/component-base/version")
        for key, value in values.items()
    )


TARGETS = (
    GoTarget("kube-apiserver", "kube", "k8s.io/kubernetes/cmd/kube-apiserver", kube_version_ldflags()),
    GoTarget(
        "kube-controller-manager",
        "kube",
        "k8s.io/kubernetes/cmd/kube-controller-manager",
        kube_version_ldflags(),
    ),
    GoTarget("kube-scheduler", "kube", "k8s.io/kubernetes/cmd/kube-scheduler", kube_version_ldflags()),
    GoTarget("etcd", "etcd", "go.etcd.io/etcd/server/v3"),
    GoTarget("kwok", "kwok", "sigs.k8s.io/kwok/cmd/kwok"),
)


def cache_root() -> Path:
    """Root of everything localkube caches (``$LOCALKUBE_CACHE`` or ``~/.cache/localkube``)."""
    override = os.environ.get("LOCALKUBE_CACHE")
    return Path(override) if override else Path.home() / ".cache" / "localkube"


def _wrapper_digest() -> str:
    """Short digest of the wrapper modules, so a changed pin never reuses a stale cache."""
    digest = hashlib.sha256()
    for path in sorted(GOMOD_DIR.rglob("go.*")):
        digest.update(path.relative_to(GOMOD_DIR).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def cache_key() -> str:
    """Name of the versioned binary directory."""
    return f"k8s-{KUBERNETES_VERSION}_etcd-{ETCD_VERSION}_kwok-{KWOK_VERSION}-{_wrapper_digest()}"


def bin_dir() -> Path:
    """Directory holding (or that will hold) the binaries for the pinned versions."""
    return cache_root() / "bin" / cache_key()


def is_built(directory: Path | None = None) -> bool:
    """True when every binary is present in the versioned cache directory."""
    directory = directory or bin_dir()
    return all((directory / name).is_file() for name in BINARIES)


def go_environment() -> dict[str, str]:
    """Environment for ``go build``: local toolchain only, private caches, reproducible paths."""
    root = cache_root()
    env = dict(os.environ)
    env.update(
        GOTOOLCHAIN="local",
        GOFLAGS="-trimpath -mod=readonly",
        GOPATH=str(root / "gopath"),
        GOMODCACHE=str(root / "gopath" / "pkg" / "mod"),
        GOCACHE=str(root / "gocache"),
        GOWORK="off",
        CGO_ENABLED="0",
    )
    return env


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (created with its folder): two concurrent test runs never build or
    unpack the same thing at once (localkube's binaries, the toolchain's tools)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _log(message: str) -> None:
    print(f"[localkube build] {message}", file=sys.stderr, flush=True)


def _build_target(target: GoTarget, out_dir: Path, env: dict[str, str]) -> float:
    """Compile one binary into ``out_dir``; returns the seconds it took."""
    started = time.monotonic()
    ldflags = " ".join(("-s", "-w", *target.ldflags))
    command = [
        "go",
        "build",
        "-p",
        "2",
        "-ldflags",
        ldflags,
        "-o",
        str(out_dir / target.name),
        target.package,
    ]
    _log(f"building {target.name} ({target.package})")
    subprocess.run(command, cwd=GOMOD_DIR / target.module_dir, env=env, check=True)
    elapsed = time.monotonic() - started
    _log(f"built {target.name} in {elapsed:.0f}s")
    return elapsed


def _go_version(env: dict[str, str]) -> str:
    result = subprocess.run(["go", "version"], env=env, check=True, capture_output=True, text=True)
    return result.stdout.strip()


def build(force: bool = False) -> Path:
    """Build every binary unless already cached; returns the versioned binary directory.

    Binaries are built one at a time (the machines have 2 cores) into a staging directory next
    to the final one, which is then renamed into place, so a failed or interrupted build never
    leaves a half-populated cache entry behind.
    """
    final = bin_dir()
    if is_built(final) and not force:
        return final
    with file_lock(cache_root() / "build.lock"):
        if is_built(final) and not force:  # another process built it while we waited
            return final
        env = go_environment()
        if shutil.which("go", path=env.get("PATH")) is None:
            raise FileNotFoundError("localkube needs the Go toolchain ('go' on PATH) to build its binaries")
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
        try:
            timings = {target.name: round(_build_target(target, staging, env)) for target in TARGETS}
            info = {
                "kubernetes": KUBERNETES_VERSION,
                "etcd": ETCD_VERSION,
                "kwok": KWOK_VERSION,
                "go": _go_version(env),
                "build_seconds": timings,
            }
            (staging / "BUILD-INFO.json").write_text(json.dumps(info, indent=2) + "\n")
            staging.chmod(0o755)
            if final.exists():
                shutil.rmtree(final)
            os.rename(staging, final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return final


def ensure_binaries() -> Path:
    """Return the binary directory, building first if needed (``$LOCALKUBE_BIN_DIR`` overrides)."""
    override = os.environ.get("LOCALKUBE_BIN_DIR")
    if override:
        directory = Path(override)
        missing = [name for name in BINARIES if not (directory / name).is_file()]
        if missing:
            raise FileNotFoundError(f"LOCALKUBE_BIN_DIR={override} lacks {', '.join(missing)}")
        return directory
    return build()
