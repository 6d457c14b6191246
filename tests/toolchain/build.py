"""Build (once, lazily) and cache the client and server tools the integration tests drive.

Like ``tests/localkube/build.py`` does for Kubernetes, each tool is compiled from its official Go
module through the Go module proxy, with a small wrapper module checked in under
``tests/toolchain/gomod/<tool>/`` whose ``go.mod``/``go.sum`` pin every dependency (a wrapper of its
own per tool, so helm's Kubernetes libraries are helm's and never those of the control plane; kubectl's
carries the control plane's pins in a module of its own, so the control plane's cache key never moves).  Each
tool is cached on its own, keyed by its pinned version and a digest of its wrapper module::

    ~/.cache/localkube/tools/helm-v4.3.2-<digest>/helm      BUILD-INFO.json
    ~/.cache/localkube/tools/registry-v3.1.2-<digest>/registry  BUILD-INFO.json
    ~/.cache/localkube/tools/kubectl-v1.37.2-<digest>/kubectl   BUILD-INFO.json

It shares localkube's Go module and build caches (``go_environment()``), so helm reuses the
already compiled ``k8s.io`` packages.  Nothing is built until a test asks for a tool (the session
fixtures of ``tests/toolchain/pytest_plugin.py``); a file lock serialises concurrent builders and a
tool's directory only appears (atomic rename) once its binary was built.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.localkube import build as localkube_build

GOMOD_DIR = Path(__file__).resolve().parent / "gomod"


@dataclass(frozen=True)
class Tool:
    """One binary: its wrapper module, the pinned Go module and version, its main package."""

    name: str
    module: str
    version: str
    package: str
    ldflags: tuple[str, ...] = ()

    @property
    def module_dir(self) -> Path:
        return GOMOD_DIR / self.name


HELM = Tool(
    "helm",
    "helm.sh/helm/v4",
    "v4.3.2",
    "helm.sh/helm/v4/cmd/helm",
    # What helm's Makefile stamps for a release build (``helm version`` then says v4.3.2).
    (
        "-X helm.sh/helm/v4/internal/version.version=v4.3.2",
        "-X helm.sh/helm/v4/internal/version.metadata=",
        "-X helm.sh/helm/v4/internal/version.gitTreeState=clean",
    ),
)
REGISTRY = Tool(
    "registry",
    "github.com/distribution/distribution/v3",
    "v3.1.2",
    "github.com/distribution/distribution/v3/cmd/registry",
    # What distribution's Makefile stamps (``registry --version``).
    (
        "-X github.com/distribution/distribution/v3/version.version=v3.1.2",
        "-X github.com/distribution/distribution/v3/version.mainpkg=github.com/distribution/distribution/v3",
    ),
)
KUBECTL = Tool(
    "kubectl",
    "k8s.io/kubernetes",
    localkube_build.KUBERNETES_VERSION,  # the control plane's release: kubectl speaks to it
    "k8s.io/kubernetes/cmd/kubectl",
    # The same version stamps as the control plane (``kubectl version --client`` says v1.37.2).
    localkube_build.kube_version_ldflags(),
)
TOOLS = {tool.name: tool for tool in (HELM, REGISTRY, KUBECTL)}


class ToolchainError(RuntimeError):
    """A tool's pins disagree, or its build failed."""


def tools_root() -> Path:
    """Where the built tools live (beside localkube's binaries, sharing its Go caches)."""
    return localkube_build.cache_root() / "tools"


def _pinned_version(tool: Tool) -> str:
    """The version the wrapper ``go.mod`` requires; must equal ``tool.version``."""
    text = (tool.module_dir / "go.mod").read_text()
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(tool.module)}\s+(v\S+)", text, re.MULTILINE)
    if not match:
        raise ToolchainError(f"{tool.module_dir}/go.mod does not require {tool.module}")
    return match.group(1)


def _digest(tool: Tool) -> str:
    """Short digest of the wrapper module and flags, so a changed pin never reuses a stale build."""
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum"):
        digest.update(name.encode())
        digest.update((tool.module_dir / name).read_bytes())
    digest.update(json.dumps([tool.package, list(tool.ldflags)]).encode())
    return digest.hexdigest()[:10]


def tool_dir(tool: Tool) -> Path:
    return tools_root() / f"{tool.name}-{tool.version}-{_digest(tool)}"


def _log(message: str) -> None:
    print(f"[toolchain build] {message}", file=sys.stderr, flush=True)


def _lower_priority() -> None:  # pragma: no cover - runs in the child
    # A one-off build on a 2-core machine: let the tests and other work keep the CPU.
    os.nice(19)


def build(tool: Tool, force: bool = False) -> Path:
    """Build ``tool`` unless cached; returns the path of its binary."""
    pinned = _pinned_version(tool)
    if pinned != tool.version:
        raise ToolchainError(f"{tool.name}: build.py pins {tool.version} but go.mod requires {pinned}")
    final = tool_dir(tool)
    binary = final / tool.name
    if binary.is_file() and not force:
        return binary
    with localkube_build.file_lock(tools_root() / "build.lock"):
        if binary.is_file() and not force:  # another process built it while we waited
            return binary
        env = localkube_build.go_environment()
        if shutil.which("go", path=env.get("PATH")) is None:
            raise FileNotFoundError("the toolchain needs Go ('go' on PATH) to build its binaries")
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
        try:
            started = time.monotonic()
            _log(f"building {tool.name} {tool.version} ({tool.package})")
            command = [
                "go",
                "build",
                "-p",
                "2",
                "-ldflags",
                " ".join(("-s", "-w", *tool.ldflags)),
                "-o",
                str(staging / tool.name),
                tool.package,
            ]
            result = subprocess.run(
                command,
                cwd=tool.module_dir,
                env=env,
                preexec_fn=_lower_priority,
                capture_output=True,
                text=True,
            )
            if result.returncode != 0:
                raise ToolchainError(f"building {tool.name} failed:\n{result.stderr[-4000:]}")
            elapsed = round(time.monotonic() - started)
            _log(f"built {tool.name} in {elapsed}s")
            go_version = subprocess.run(
                ["go", "version"], env=env, check=True, capture_output=True, text=True
            ).stdout.strip()
            info = {
                "tool": tool.name,
                "module": tool.module,
                "version": tool.version,
                "package": tool.package,
                "go": go_version,
                "build_seconds": elapsed,
            }
            (staging / "BUILD-INFO.json").write_text(json.dumps(info, indent=2) + "\n")
            staging.chmod(0o755)
            if final.exists():
                shutil.rmtree(final)
            os.rename(staging, final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return binary


def ensure(name: str) -> Path:
    """The binary of tool ``name``, building it first if needed.

    ``$TOOLCHAIN_BIN_DIR`` (a directory holding prebuilt ``helm``/``registry``) skips the build.
    """
    tool = TOOLS[name]
    override = os.environ.get("TOOLCHAIN_BIN_DIR")
    if override:
        binary = Path(override) / tool.name
        if not binary.is_file():
            raise FileNotFoundError(f"TOOLCHAIN_BIN_DIR={override} lacks {tool.name}")
        return binary
    return build(tool)
