"""Helm for the tests: the real ``helm`` (built by tests/toolchain), charts written by the test, and a
Helm chart repository served over HTTP.

``Helm(binary, home)`` runs the CLI with every Helm directory (config, cache, data, registry and
repository config) inside ``home``, so a test never reads or writes the machine's Helm state.
``write_chart`` writes a small chart (Chart.yaml, values.yaml, templates, and optionally ``crds/``) so
a test can build exactly the chart it needs, hostile ones included.  ``ChartRepository`` is a static
HTTP server (optional basic auth) over a directory the real helm fills: ``publish`` runs
``helm package`` then ``helm repo index --url <server>``, so ``index.yaml`` and the ``.tgz`` are what
a real chart repository serves.

    repo = ChartRepository(tmp_path / "charts", credentials=("bob", "pw")).start()
    repo.publish(helm, write_chart(tmp_path / "src", "hello", "0.1.0", templates={...}))
"""

from __future__ import annotations

import mimetypes
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.support.loopback_http import BackgroundHTTPServer, LoopbackHandler


class HelmError(RuntimeError):
    pass


class Helm:
    """The helm CLI with its own, isolated home directory."""

    def __init__(self, binary: Path, home: Path):
        self.binary = Path(binary)
        self.home = Path(home)
        self.home.mkdir(parents=True, exist_ok=True)

    @property
    def env(self) -> dict[str, str]:
        home = self.home
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_DATA_HOME": str(home / "data"),
            "HELM_REGISTRY_CONFIG": str(home / "config" / "registry" / "config.json"),
            "HELM_REPOSITORY_CONFIG": str(home / "config" / "repositories.yaml"),
            "HELM_REPOSITORY_CACHE": str(home / "cache" / "repository"),
            # never a kube context of the machine: helm here packages, indexes, pulls and templates
            "KUBECONFIG": str(home / "no-kubeconfig"),
        }

    def run(
        self, *args: str, cwd: Path | None = None, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [str(self.binary), *args],
            cwd=cwd,
            env=self.env,
            capture_output=True,
            text=True,
            input=input,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise HelmError(f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def package(self, chart_dir: Path, destination: Path) -> Path:
        """``helm package``; returns the .tgz written."""
        destination.mkdir(parents=True, exist_ok=True)
        out = self.run("package", str(chart_dir), "--destination", str(destination)).stdout
        # "Successfully packaged chart and saved it to: /path/name-1.0.0.tgz"
        return Path(out.strip().rsplit(": ", 1)[-1])


def write_chart(
    directory: Path,
    name: str,
    version: str,
    *,
    templates: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    crds: dict[str, str] | None = None,
    app_version: str = "1.0.0",
    readme: str | None = None,
) -> Path:
    """Write a chart named ``name`` into ``directory/name`` and return that directory."""
    chart = Path(directory) / name
    (chart / "templates").mkdir(parents=True, exist_ok=True)
    meta = {
        "apiVersion": "v2",
        "name": name,
        "version": version,
        "appVersion": app_version,
        "type": "application",
    }
    (chart / "Chart.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    (chart / "values.yaml").write_text(yaml.safe_dump(values or {}, sort_keys=False))
    default_templates = {
        "configmap.yaml": (
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-config\n"
            'data:\n  greeting: {{ .Values.greeting | default "hello" | quote }}\n'
        )
    }
    for file_name, text in (templates if templates is not None else default_templates).items():
        (chart / "templates" / file_name).parent.mkdir(parents=True, exist_ok=True)
        (chart / "templates" / file_name).write_text(text)
    for file_name, text in (crds or {}).items():
        (chart / "crds").mkdir(exist_ok=True)
        (chart / "crds" / file_name).write_text(text)
    if readme is not None:
        (chart / "README.md").write_text(readme)
    return chart


class _StaticHandler(LoopbackHandler):
    def handle_request(self, user: str | None) -> None:
        repo: ChartRepository = self.server.owner  # type: ignore[assignment]
        relative = self.path.partition("?")[0].lstrip("/")
        target = (repo.directory / relative).resolve()
        if self.command not in ("GET", "HEAD") or repo.directory.resolve() not in target.parents:
            self.reply(404, b"not found\n")
            return
        if not target.is_file():
            self.reply(404, b"not found\n")
            return
        content_type = "application/x-yaml" if target.suffix == ".yaml" else None
        content_type = content_type or mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        self.reply(200, target.read_bytes(), content_type)


class ChartRepository(BackgroundHTTPServer):
    """A Helm chart repository (``index.yaml`` + packaged charts) over HTTP."""

    handler = _StaticHandler
    realm = "charts"
    ready_path = "/index.yaml"

    def __init__(self, directory: Path, *, credentials: tuple[str, str] | None = None):
        super().__init__(credentials=credentials)
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def publish(self, helm: Helm, chart_dir: Path) -> Path:
        """Package ``chart_dir`` into the repository and regenerate ``index.yaml``; returns the .tgz."""
        archive = helm.package(chart_dir, self.directory)
        helm.run("repo", "index", str(self.directory), "--url", self.url)
        return archive

    def index(self) -> dict:
        return yaml.safe_load((self.directory / "index.yaml").read_text())
