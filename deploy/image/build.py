"""Build the platform's OCI image without a container daemon, reproducibly, cached by content.

Four layers, each a stage cached on its own under ``~/.cache/gpu-paas/image/stages/`` (keyed by the
hash of its inputs, so a change to the project's code rebuilds only the last, small one):

1. ``base``: Debian's root file system from mmdebstrap (bookworm, ``recipe.PACKAGES``, no Recommends,
   no docs), the ``paas`` user (10001) and ``/var/lib/gpu-paas``;
2. ``venv``: ``/app/.venv``, the locked virtual environment: the pinned uv runs *inside* the root file
   system (chroot) with ``uv sync --frozen --no-dev`` against Debian's ``/usr/bin/python3.11``, bytecode
   compiled (hash-checked ``.pyc``: SOURCE_DATE_EPOCH is set);
3. ``tools``: ``/usr/local/bin/helm`` and ``/usr/local/bin/kubectl`` from tests/toolchain's cache (the
   versions the suite tests with);
4. ``app``: the project's files git tracks under ``recipe.APP_PATHS``, their bytecode, and the static
   files collected at build time into ``/app/static``.

Every layer is an uncompressed tar written here: entries sorted by name, every mtime at
SOURCE_DATE_EPOCH, numeric owners, no user/group names, so the same tree gives the same bytes.  umoci
(Debian's package) assembles them into an OCI image layout (``umoci raw add-layer`` compresses them,
``umoci config`` writes the entrypoint, user, env; every "created" at SOURCE_DATE_EPOCH).  The image is
cached by its key (the hash of every stage's inputs: the recipe, this file, the package list and
mirrors, uv.lock, the project's files, the tool versions) under ``~/.cache/gpu-paas/image/<key>/``;
a later build with the same inputs only hashes the inputs (about a second).

mmdebstrap and umoci come from Debian's packages, installed as root (``apt-get install -y
--no-install-recommends``) when missing.  Builds run as root (mmdebstrap's root mode and chroot).
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import inspect
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from deploy.image import recipe
from deploy.image.layers import _walk, write_layer

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
DEBIAN_TOOLS = {"mmdebstrap": "mmdebstrap", "umoci": "umoci"}  # binary -> Debian package
TMP = "/tmp"  # noqa: S108 (inside the image's root file system during the build: nothing of it is kept)
KEEP_IMAGES = 4  # images kept in the cache (least recently used pruned)...
KEEP_USED_SECONDS = 6 * 3600  # ...unless used in the last six hours


class ImageBuildError(RuntimeError):
    """A step of the build failed (the message says which, with its output's tail)."""


@dataclass(frozen=True)
class Layer:
    name: str
    tar: Path
    created_by: str


def _log(message: str) -> None:
    print(f"[deploy.image] {message}", file=sys.stderr, flush=True)


def cache_root() -> Path:
    return Path.home() / ".cache" / "gpu-paas" / "image"


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(command: list[str], *, what: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    command = [shutil.which(command[0]) or command[0], *command[1:]]  # found on our PATH, not env's
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd)  # noqa: S603 (our argv)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip()[-3000:]
        raise ImageBuildError(f"{what} failed (exit status {done.returncode}): {' '.join(command)}\n{tail}")
    return done.stdout


# --- tools ---------------------------------------------------------------------------------------------


def ensure_debian_tools() -> None:
    """mmdebstrap and umoci from Debian's packages: installed as root when missing."""
    missing = [package for binary, package in DEBIAN_TOOLS.items() if shutil.which(binary) is None]
    if not missing:
        return
    if os.geteuid() != 0:
        raise ImageBuildError(f"the image build needs Debian's {', '.join(missing)} (apt-get install them)")
    _log(f"installing Debian's {', '.join(missing)} (apt-get, as root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run(["apt-get", "update", "-qq"], what="apt-get update", env=env)
    _run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
        what="apt-get install",
        env=env,
    )


def _tool_version(command: list[str]) -> str:
    return _run(command, what=command[0]).strip().splitlines()[0]


def _uv_binary() -> tuple[Path, str]:
    """The uv the Makefile pins (``var/tools/bin/uv``, made by ``make`` when missing) and its version."""
    pinned = re.search(r"^UV_VERSION\s*:=\s*(\S+)", (ROOT / "Makefile").read_text(), re.MULTILINE)
    if not pinned:
        raise ImageBuildError("the Makefile does not pin UV_VERSION")
    uv = ROOT / "var" / "tools" / "bin" / "uv"
    if not uv.is_file():
        _run(["make", "var/tools/bin/uv"], what="make var/tools/bin/uv", cwd=ROOT)
    version = _tool_version([str(uv), "--version"])
    if version.split()[1] != pinned.group(1):
        raise ImageBuildError(f"{uv} is {version}, the Makefile pins {pinned.group(1)}: run `make install`")
    return uv, version


def _toolchain_binaries() -> dict[str, Path]:
    """helm and kubectl from tests/toolchain's cache (built from their Go modules once, then reused)."""
    out = _run(
        [sys.executable, "-m", "tests.toolchain", "build", "helm", "kubectl"],
        what="python -m tests.toolchain build helm kubectl",
        cwd=ROOT,
    )
    helm, kubectl = (Path(line) for line in out.split())
    return {"helm": helm, "kubectl": kubectl}


# --- inputs and keys ----------------------------------------------------------------------------------


def source_date_epoch() -> int:
    value = os.environ.get("SOURCE_DATE_EPOCH")
    return int(value) if value else recipe.SOURCE_DATE_EPOCH


def mirrors() -> list[str]:
    main = os.environ.get("PAAS_IMAGE_DEBIAN_MIRROR") or recipe.DEFAULT_MIRROR
    security = os.environ.get("PAAS_IMAGE_DEBIAN_SECURITY_MIRROR") or recipe.DEFAULT_SECURITY_MIRROR
    suite, components = recipe.SUITE, recipe.COMPONENTS
    return [
        f"deb {main} {suite} {components}",
        f"deb {main} {suite}-updates {components}",
        f"deb {security} {suite}-security {components}",
    ]


def app_files() -> list[str]:
    """The tracked files under ``recipe.APP_PATHS`` that exist in the working tree, sorted."""
    out = _run(["git", "ls-files", "-z", "--", *recipe.APP_PATHS], what="git ls-files", cwd=ROOT)
    return sorted(name for name in out.split("\0") if name and (ROOT / name).is_file())


def _hash(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Inputs:
    """Everything a build depends on, and the stage keys derived from it."""

    epoch: int
    mirrors: tuple[str, ...]
    recipe_code: str  # sha256 of recipe.py
    mmdebstrap: str
    umoci: str
    uv: str
    lock: str  # sha256 of pyproject.toml + uv.lock
    tools: tuple[tuple[str, str], ...]  # (name, cached directory name: version + digest)
    files: tuple[tuple[str, str, bool], ...]  # (path, sha256, executable)

    @property
    def base_key(self) -> str:
        return _hash("base", self.recipe_code, _code(_stage_base), self.epoch, self.mirrors, self.mmdebstrap)

    @property
    def venv_key(self) -> str:
        return _hash(
            "venv", self.base_key, _code(_stage_venv, _chroot_env, _prepare_chroot), self.uv, self.lock
        )

    @property
    def tools_key(self) -> str:
        return _hash("tools", self.recipe_code, _code(_stage_tools), self.epoch, self.tools)

    @property
    def app_key(self) -> str:
        return _hash("app", self.venv_key, _code(_stage_app, _chroot_env, _prepare_chroot), self.files)

    @property
    def key(self) -> str:
        return _hash("image", self.app_key, self.tools_key, _code(assemble), self.umoci)


def _code(*functions: Callable) -> str:
    """The source of the functions a stage runs (and of the layer writer every stage uses): a change to
    how a stage is built rebuilds that stage, and only it."""
    source = "".join(inspect.getsource(function) for function in (*functions, write_layer, _walk))
    return hashlib.sha256((source + _BASE_SKIP.pattern).encode()).hexdigest()


def collect_inputs(tools: dict[str, Path]) -> Inputs:
    code = hashlib.sha256((HERE / "recipe.py").read_bytes()).hexdigest()
    locked = (ROOT / "pyproject.toml").read_bytes() + (ROOT / "uv.lock").read_bytes()
    lock = hashlib.sha256(locked).hexdigest()
    files = tuple(
        (name, _file_sha256(ROOT / name), bool((ROOT / name).stat().st_mode & 0o111)) for name in app_files()
    )
    return Inputs(
        epoch=source_date_epoch(),
        mirrors=tuple(mirrors()),
        recipe_code=code,
        mmdebstrap=_tool_version(["mmdebstrap", "--version"]),
        umoci=_tool_version(["umoci", "--version"]),
        uv=_uv_binary()[1],
        lock=lock,
        tools=tuple(sorted((name, path.parent.name) for name, path in tools.items())),
        files=files,
    )


# --- layers -------------------------------------------------------------------------------------------


def _extract(tar: Path, into: Path) -> None:
    _run(["tar", "-xpf", str(tar), "--numeric-owner", "-C", str(into)], what=f"unpacking {tar.name}")


# Left out of the base layer: what only the build needed or what differs between two builds.
_BASE_SKIP = re.compile(
    r"^(dev|proc|sys|run|tmp)/.|^var/(cache|log)/.|^var/lib/apt/lists/.|^etc/(resolv\.conf|hostname|machine-id)$"
    r"|^var/lib/dpkg/(.*-old|lock.*)$|^var/cache/ldconfig/aux-cache$"
)


def _stage_base(inputs: Inputs, out: Path, work: Path) -> None:
    rootfs = work / "rootfs"
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(inputs.epoch), "LC_ALL": "C.UTF-8"}
    command = [
        "mmdebstrap",
        "--mode=root",
        "--variant=essential",
        "--format=directory",
        '--aptopt=APT::Install-Recommends "false"',
        *(f"--dpkgopt={option}" for option in recipe.DPKG_EXCLUDES),
        f"--include={','.join(recipe.PACKAGES)}",
        recipe.SUITE,
        str(rootfs),
        *inputs.mirrors,
    ]
    _run(command, what="mmdebstrap", env=env)
    # The service user and the one writable directory (a volume or an emptyDir is mounted there).
    with open(rootfs / "etc" / "passwd", "a") as passwd:
        passwd.write(f"{recipe.USER}:x:{recipe.UID}:{recipe.GID}:GPU PaaS:{recipe.VAR_DIR}:/usr/sbin/nologin")
        passwd.write("\n")
    with open(rootfs / "etc" / "group", "a") as group:
        group.write(f"{recipe.USER}:x:{recipe.GID}:\n")
    var_dir = rootfs / recipe.VAR_DIR.lstrip("/")
    var_dir.mkdir(parents=True)
    os.chown(var_dir, recipe.UID, recipe.GID)
    var_dir.chmod(0o700)
    (rootfs / "tmp").chmod(0o1777)
    var_rel = recipe.VAR_DIR.lstrip("/")
    write_layer(
        rootfs,
        out,
        epoch=inputs.epoch,
        keep=lambda rel: not _BASE_SKIP.search(rel),
        owner=lambda rel: (recipe.UID, recipe.GID) if rel == var_rel else None,
    )


def _chroot_env(inputs: Inputs, **extra: str) -> dict[str, str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": TMP,
        "LANG": "C.UTF-8",
        "SOURCE_DATE_EPOCH": str(inputs.epoch),
        "PYTHONHASHSEED": "0",
    }
    # A proxy or a private index the build machine needs (not part of the image).
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
                 "UV_DEFAULT_INDEX", "UV_INDEX_URL", "UV_INDEX"):  # fmt: skip
        if os.environ.get(name):
            env[name] = os.environ[name]
    return env | extra


_DEVICES = {"null": (1, 3), "zero": (1, 5), "random": (1, 8), "urandom": (1, 9)}


def _prepare_chroot(rootfs: Path) -> None:
    """What commands run in the root file system need: the usual character devices, name resolution
    (none of it goes to a layer: dev/* and etc/resolv.conf are never written)."""
    for name, (major, minor) in _DEVICES.items():
        device = rootfs / "dev" / name
        if not device.exists():
            os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(major, minor))
            device.chmod(0o666)
    shutil.copyfile("/etc/resolv.conf", rootfs / "etc" / "resolv.conf")


def _stage_venv(inputs: Inputs, base: Path, out: Path, work: Path) -> None:
    rootfs = work / "rootfs"
    rootfs.mkdir()
    _extract(base, rootfs)
    _prepare_chroot(rootfs)
    app = rootfs / "app"
    app.mkdir()
    for name in ("pyproject.toml", "uv.lock"):
        shutil.copyfile(ROOT / name, app / name)
    uv, _version = _uv_binary()
    shutil.copyfile(uv, rootfs / "tmp" / "uv")
    (rootfs / "tmp" / "uv").chmod(0o755)
    extra = {"UV_CACHE_DIR": f"{TMP}/uv-cache", "UV_PYTHON_DOWNLOADS": "never", "UV_LINK_MODE": "copy"}
    extra["UV_PROJECT_ENVIRONMENT"] = "/app/.venv"
    # The build machine's CA bundle (a TLS-intercepting proxy's CA, say) for uv's downloads only.
    ca_file = os.environ.get("SSL_CERT_FILE")
    if ca_file and Path(ca_file).is_file():
        shutil.copyfile(ca_file, rootfs / "tmp" / "build-ca.crt")
        extra["SSL_CERT_FILE"] = f"{TMP}/build-ca.crt"
    command = ["chroot", str(rootfs), f"{TMP}/uv", "sync", "--frozen", "--no-dev", "--no-install-project"]
    command += ["--python", "/usr/bin/python3.11", "--compile-bytecode", "--directory", "/app"]
    _run(command, what="uv sync in the image's root file system", env=_chroot_env(inputs, **extra))
    venv = "app/.venv"
    write_layer(
        rootfs,
        out,
        epoch=inputs.epoch,
        keep=lambda rel: (
            (rel == "app" or rel == venv or rel.startswith(venv + "/"))
            and rel not in (f"{venv}/.lock", f"{venv}/.gitignore", f"{venv}/CACHEDIR.TAG")
        ),
    )


def _stage_tools(inputs: Inputs, tools: dict[str, Path], out: Path, work: Path) -> None:
    bin_dir = work / "usr" / "local" / "bin"
    bin_dir.mkdir(parents=True)
    for name, path in sorted(tools.items()):
        shutil.copyfile(path, bin_dir / name)
        (bin_dir / name).chmod(0o755)
    for directory in (work / "usr", work / "usr" / "local", bin_dir):
        directory.chmod(0o755)
    write_layer(work, out, epoch=inputs.epoch, keep=lambda rel: True, owner=lambda rel: (0, 0))


def _stage_app(inputs: Inputs, base: Path, venv: Path, out: Path, work: Path) -> None:
    rootfs = work / "rootfs"
    rootfs.mkdir()
    _extract(base, rootfs)
    _extract(venv, rootfs)
    _prepare_chroot(rootfs)
    app = rootfs / "app"
    for name, _digest, executable in inputs.files:
        target = app / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / name, target)
        target.chmod(0o755 if executable else 0o644)
    env = _chroot_env(
        inputs,
        DJANGO_SETTINGS_MODULE="paas.settings.base",
        PAAS_STATIC_ROOT=recipe.STATIC_ROOT,
        PAAS_VAR_DIR=f"{TMP}/var",
        PYTHONDONTWRITEBYTECODE="1",  # collectstatic imports the apps: no timestamped .pyc of them
    )
    python = "/app/.venv/bin/python"
    _run(
        ["chroot", str(rootfs), python, "/app/manage.py", "collectstatic", "--noinput", "-v0"],
        what="collectstatic in the image's root file system",
        env=env,
    )
    tops = sorted({name.split("/")[0] for name, _d, _x in inputs.files if "/" in name})
    _run(
        # Hash-checked .pyc: valid whatever the files' timestamps (the layers set them all to the epoch).
        [
            "chroot",
            str(rootfs),
            python,
            "-m",
            "compileall",
            "-q",
            "-j1",
            "-f",
            "--invalidation-mode",
            "checked-hash",
            *(f"/app/{top}" for top in tops),
        ],
        what="compileall in the image's root file system",
        env=env,
    )
    for directory in [app, *(p for p in app.rglob("*") if p.is_dir())]:
        directory.chmod(0o755)
    write_layer(
        rootfs,
        out,
        epoch=inputs.epoch,
        keep=lambda rel: rel == "app" or (rel.startswith("app/") and not rel.startswith("app/.venv")),
        owner=lambda rel: (0, 0),
    )


def _stage(name: str, key: str, build_into: Callable[[Path, Path], None]) -> Path:
    """The cached tar of a stage (``stages/<name>-<key>.tar``), built by ``build_into(out, work)`` once."""
    out = cache_root() / "stages" / f"{name}-{key[:20]}.tar"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    _log(f"building the {name} layer")
    work = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=out.parent))
    try:
        build_into(out, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _log(f"{name} layer: {out.stat().st_size / 1e6:.0f} MB in {time.monotonic() - started:.0f} s")
    return out


# --- the OCI image ------------------------------------------------------------------------------------


def _iso(epoch: int) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def project_version() -> str:
    match = re.search(r'^version\s*=\s*"([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.MULTILINE)
    return match.group(1) if match else "0"


def assemble(layers: list[Layer], layout: Path, *, tag: str, epoch: int) -> str:
    """An OCI image layout at ``layout`` (must not exist) holding ``layers`` under ``tag``; returns the
    manifest's digest.  Deterministic: the same layer tars give the same digest."""
    image = f"{layout}:{tag}"
    created = _iso(epoch)
    _run(["umoci", "init", "--layout", str(layout)], what="umoci init")
    _run(["umoci", "new", "--image", image], what="umoci new")
    for layer in layers:
        _run(
            ["umoci", "raw", "add-layer", "--image", image, f"--history.created={created}",
             f"--history.created_by={layer.created_by}", "--history.author=gpu-paas", str(layer.tar)],
            what=f"umoci raw add-layer ({layer.name})",
        )  # fmt: skip
    config = ["umoci", "config", "--image", image, "--no-history", f"--created={created}"]
    config += ["--author=gpu-paas", "--os=linux", "--architecture=amd64"]
    config += [f"--config.user={recipe.UID}:{recipe.GID}", f"--config.workingdir={recipe.APP_DIR}"]
    config += [f"--config.env={name}={value}" for name, value in recipe.ENV.items()]
    config += [f"--config.entrypoint={part}" for part in recipe.ENTRYPOINT]
    config += [f"--config.cmd={part}" for part in recipe.CMD]
    config += [f"--config.exposedports={port}" for port in recipe.EXPOSED_PORTS]
    config += ["--config.stopsignal=SIGTERM"]
    labels = {**recipe.LABELS, "org.opencontainers.image.version": project_version()}
    labels["org.opencontainers.image.created"] = created
    config += [f"--config.label={name}={value}" for name, value in sorted(labels.items())]
    _run(config, what="umoci config")
    _run(["umoci", "gc", "--layout", str(layout)], what="umoci gc")
    return manifest_digest(layout, tag)


def layers_of(info: dict) -> list[Layer]:
    """The layers an image's INFO.json lists (``assemble(layers_of(info), ...)`` rebuilds its layout)."""
    return [Layer(layer["name"], Path(layer["tar"]), layer["created_by"]) for layer in info["layers"]]


def manifest_digest(layout: Path, tag: str) -> str:
    index = json.loads((layout / "index.json").read_text())
    for manifest in index.get("manifests", []):
        if manifest.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
            return manifest["digest"]
    raise ImageBuildError(f"{layout} has no image tagged {tag}")


def image_size(layout: Path, digest: str) -> dict[str, int]:
    """The compressed size of the layers (what a registry stores) and of the whole layout."""
    blobs = layout / "blobs" / "sha256"
    manifest = json.loads((blobs / digest.split(":", 1)[1]).read_text())
    compressed = sum(layer["size"] for layer in manifest["layers"])
    total = sum(path.stat().st_size for path in blobs.iterdir())
    return {"layers_compressed": compressed, "layout": total}


def _prune(keep: Path) -> None:
    """Keep the KEEP_IMAGES most recently used images, any used in the last KEEP_USED_SECONDS, and the
    stage tars they use (under the build lock: no other build is between writing a stage and its
    image's INFO.json)."""
    images = sorted(
        (path for path in cache_root().iterdir() if (path / "INFO.json").is_file()),
        key=lambda path: (path / "INFO.json").stat().st_mtime,
        reverse=True,
    )
    recent = time.time() - KEEP_USED_SECONDS  # another session (a test run) may still be reading it
    for old in [path for path in images if path != keep][KEEP_IMAGES - 1 :]:
        if (old / "INFO.json").stat().st_mtime < recent:
            shutil.rmtree(old, ignore_errors=True)
    used = {
        Path(layer["tar"]).name
        for path in cache_root().iterdir()
        if (path / "INFO.json").is_file()
        for layer in json.loads((path / "INFO.json").read_text())["layers"]
    }
    for tar in (cache_root() / "stages").glob("*.tar"):
        if tar.name not in used:
            tar.unlink(missing_ok=True)


def build(*, force: bool = False) -> dict:
    """Build the image (or find it cached); returns ``{"layout", "tag", "digest", ...}``."""
    started = time.monotonic()
    ensure_debian_tools()
    tools = _toolchain_binaries()
    inputs = collect_inputs(tools)
    final = cache_root() / inputs.key[:20]
    info_file = final / "INFO.json"
    if info_file.is_file() and not force:
        os.utime(info_file)  # recently used: not pruned
        return json.loads(info_file.read_text())
    if os.geteuid() != 0:
        raise ImageBuildError("building the image needs root (mmdebstrap's root mode and chroot)")
    with _file_lock(cache_root() / "build.lock"):
        if info_file.is_file() and not force:  # another process built it while we waited
            return json.loads(info_file.read_text())
        base = _stage("base", inputs.base_key, lambda out, work: _stage_base(inputs, out, work))
        venv = _stage("venv", inputs.venv_key, lambda out, work: _stage_venv(inputs, base, out, work))
        tools_tar = _stage(
            "tools", inputs.tools_key, lambda out, work: _stage_tools(inputs, tools, out, work)
        )
        app = _stage("app", inputs.app_key, lambda out, work: _stage_app(inputs, base, venv, out, work))
        layers = [
            Layer("base", base, f"mmdebstrap {recipe.SUITE} +{','.join(recipe.PACKAGES)}"),
            Layer("venv", venv, "uv sync --frozen --no-dev (/app/.venv)"),
            Layer("tools", tools_tar, " ".join(f"{name}={d}" for name, d in inputs.tools)),
            Layer("app", app, "the project's files, bytecode, collectstatic (/app)"),
        ]
        tag = f"{project_version()}-{inputs.key[:12]}"
        staging = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=cache_root()))
        try:
            _log("assembling the OCI image (umoci)")
            digest = assemble(layers, staging / "oci", tag=tag, epoch=inputs.epoch)
            info = {
                "layout": str(final / "oci"),
                "tag": tag,
                "digest": digest,
                "key": inputs.key,
                "size": image_size(staging / "oci", digest),
                "layers": [
                    {"name": layer.name, "tar": str(layer.tar), "created_by": layer.created_by}
                    for layer in layers
                ],
                "epoch": inputs.epoch,
                "seconds": round(time.monotonic() - started, 1),
            }
            (staging / "INFO.json").write_text(json.dumps(info, indent=2) + "\n")
            if final.exists():
                shutil.rmtree(final)
            staging.chmod(0o755)
            os.rename(staging, final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        _prune(final)
    _log(f"image {tag} {digest} in {time.monotonic() - started:.0f} s")
    return info
