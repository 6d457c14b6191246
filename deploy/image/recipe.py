"""What the image holds: the Debian root file system, the project's files, its configuration.

Every value here enters the cache key (this file is hashed whole), so changing one rebuilds the stages
that depend on it.  The image's contract (CONTRACTS19.md, part B): app at ``/app``, the locked venv at
``/app/.venv``, user ``10001:10001`` (``paas``), a read-only root where only ``/tmp`` and
``/var/lib/gpu-paas`` are written at run time.
"""

from __future__ import annotations

# Debian 12 (bookworm), from the archive apt uses on this machine.  PAAS_IMAGE_DEBIAN_MIRROR names another
# mirror (e.g. an internal one, or http://snapshot.debian.org/archive/debian/<date> for a rebuild from a
# fixed day); the mirror enters the cache key.
SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY_MIRROR = "http://deb.debian.org/debian-security"
COMPONENTS = "main"

# mmdebstrap's "essential" variant (Essential: yes packages only: no apt, no init) plus these, without
# their Recommends.  python3.11: the interpreter the locked venv is built for (requires-python ==3.11.*);
# ca-certificates: TLS to identity providers, Git hosts and clusters' public endpoints; tzdata: zoneinfo.
# psycopg[binary] brings its own libpq; uvloop, httptools, cryptography and nh3 are manylinux wheels.
PACKAGES = ("python3.11", "ca-certificates", "tzdata")

# Not in the image: documentation (copyright files kept: licences ship with the binaries), man pages,
# translations.
DPKG_EXCLUDES = (
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/lintian/*",
)

# Every timestamp in the image (files in the layers, the config's "created", history entries): a fixed
# instant, so the same inputs give the same digest.  SOURCE_DATE_EPOCH in the environment overrides it
# (and enters the cache key).
SOURCE_DATE_EPOCH = 1767225600  # 2026-01-01T00:00:00Z

# The project's files that go to /app: what git tracks under these (the working tree's content).  Tests,
# docs, the front-end's npm manifest (its assets are vendored under paas/static), CI and the builders
# themselves stay out.
APP_PATHS = (
    "manage.py",
    "pyproject.toml",
    "uv.lock",
    "paas",
    "tenancy",
    "inventory",
    "catalog",
    "instances",
    "billing",
    "templates",
)

USER = "paas"
UID = GID = 10001
APP_DIR = "/app"
VAR_DIR = "/var/lib/gpu-paas"
STATIC_ROOT = "/app/static"  # collected at build time (collectstatic), served by the app itself
TAG_PREFIX = "gpu-paas"

ENV = {
    "PATH": "/app/.venv/bin:/usr/local/bin:/usr/bin:/bin",
    "DJANGO_SETTINGS_MODULE": "paas.settings.production",
    "PAAS_VAR_DIR": VAR_DIR,
    "PAAS_STATIC_ROOT": STATIC_ROOT,
    "PAAS_SERVE_STATIC": "true",
    "PAAS_HELM_BINARY": "/usr/local/bin/helm",
    "PAAS_KUBECTL_BINARY": "/usr/local/bin/kubectl",
    "PROMETHEUS_MULTIPROC_DIR": "/tmp/metrics",  # noqa: S108 (tmpfs, the process's own)
    "HOME": VAR_DIR,
    "PYTHONDONTWRITEBYTECODE": "1",  # the root is read-only; the bytecode was compiled at build time
    "PYTHONUNBUFFERED": "1",
    "LANG": "C.UTF-8",
}
ENTRYPOINT = ("/app/.venv/bin/python", "/app/manage.py")
CMD = ("serve", "0.0.0.0:8000", "--no-worker")
EXPOSED_PORTS = ("8000/tcp",)
LABELS = {
    "org.opencontainers.image.title": "gpu-paas",
    "org.opencontainers.image.description": "Self-hosted, multi-tenant GPU platform-as-a-service",
}
