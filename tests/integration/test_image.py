"""The platform's OCI image (deploy/image), run the way a container runtime would, without one.

``built_image()`` (cached by content) is unpacked with umoci; its own config (the image's Entrypoint,
Env, User and WorkingDir, read from the layout) says what runs, in its own namespaces (bubblewrap:
user, mount, pid, ipc, uts; the host's loopback network shared to reach the suite's PostgreSQL) as
uid/gid 10001 on the host too (setpriv drops root before the sandbox starts), on a read-only root with
a tmpfs at /tmp and a directory of the test's at /var/lib/gpu-paas.  Inside: ``manage.py check
--deploy`` with warnings failing it; ``serve`` on a loopback port, whose /readyz says 503 with only the
worker missing (database answers, migrations applied); then a worker (``qcluster``, the image's too),
after which /readyz answers 200.  The probes are sent as a kubelet sends them: plain HTTP.
Also: the same layers assemble to the same digest (reproducible), and the layers carry fixed
timestamps and owners.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.utils import timezone
from django_q.models import Schedule

from deploy.image import build as image_build
from tests.support import processes
from tests.support.image import BuiltImage, built_image
from tests.support.processes import free_port
from tests.support.wait import wait_for
from tests.toolchain import bwrap

pytestmark = [
    pytest.mark.toolchain,
    pytest.mark.skipif(os.geteuid() != 0, reason="building and running the image as uid 10001 needs root"),
]

ROOT = Path(__file__).resolve().parents[2]
UID = 10001


def _image_config(image: BuiltImage) -> dict:
    """The image's OCI config (``config`` part: Entrypoint, Cmd, Env, User, WorkingDir...)."""
    blobs = image.layout / "blobs" / "sha256"
    manifest = json.loads((blobs / image.digest.split(":", 1)[1]).read_text())
    return json.loads((blobs / manifest["config"]["digest"].split(":", 1)[1]).read_text())


@dataclass
class Unpacked:
    image: BuiltImage
    rootfs: Path
    var_dir: Path
    bwrap: Path
    config: dict  # the image config's "config"

    def argv(self, *command: str, env: dict[str, str]) -> list[str]:
        """``command`` (after the image's entrypoint) as the image's user in its own namespaces."""
        image_env = dict(item.split("=", 1) for item in self.config["Env"])
        user, group = self.config["User"].split(":")
        argv = ["setpriv", f"--reuid={user}", f"--regid={group}", "--clear-groups", "--inh-caps=-all"]
        argv += [str(self.bwrap), "--unshare-all", "--share-net", "--die-with-parent", "--new-session"]
        argv += ["--uid", user, "--gid", group, "--ro-bind", str(self.rootfs), "/"]
        argv += ["--tmpfs", "/tmp", "--bind", str(self.var_dir), "/var/lib/gpu-paas"]
        argv += ["--proc", "/proc", "--dev", "/dev", "--chdir", self.config["WorkingDir"], "--clearenv"]
        for name, value in {**image_env, **env}.items():
            argv += ["--setenv", name, value]
        return [*argv, "--", *self.config["Entrypoint"], *command]


@pytest.fixture(scope="module")
def unpacked() -> Iterator[Unpacked]:
    """The image unpacked (``umoci raw unpack``) in a directory uid 10001 may read, and bwrap beside it."""
    image = built_image()
    top = Path(tempfile.mkdtemp(prefix="paas-image-test-"))
    try:
        top.chmod(0o755)
        rootfs = top / "rootfs"
        done = subprocess.run(
            ["umoci", "raw", "unpack", "--image", image.reference, str(rootfs)],
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        var_dir = top / "var"
        var_dir.mkdir(mode=0o700)
        os.chown(var_dir, UID, UID)
        sandbox = top / "bwrap"
        shutil.copyfile(bwrap.ensure(), sandbox)
        sandbox.chmod(0o755)
        yield Unpacked(image, rootfs, var_dir, sandbox, _image_config(image)["config"])
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _production_env() -> dict[str, str]:
    """What an operator sets: the secrets and the suite's test database (pytest-django's ``test_...``)."""
    db = settings.DATABASES["default"]
    credentials = quote(db["USER"], safe="") + (
        ":" + quote(db["PASSWORD"], safe="") if db.get("PASSWORD") else ""
    )
    return {
        "SECRET_KEY": secrets.token_urlsafe(60),
        "PAAS_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "PAAS_AUDIT_CHECKPOINT_KEY": secrets.token_urlsafe(40),
        "DATABASE_URL": f"postgres://{credentials}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "ALLOWED_HOSTS": "127.0.0.1",
    }


def test_the_image_config_and_layers_are_as_contracted(unpacked):
    config = unpacked.config
    assert config["User"] == "10001:10001" and config["WorkingDir"] == "/app"
    assert config["Entrypoint"] == ["/app/.venv/bin/python", "/app/manage.py"]
    assert config["Cmd"] == ["serve", "0.0.0.0:8000", "--no-worker"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["DJANGO_SETTINGS_MODULE"] == "paas.settings.production"
    assert env["PAAS_VAR_DIR"] == "/var/lib/gpu-paas" and env["PROMETHEUS_MULTIPROC_DIR"] == "/tmp/metrics"
    assert env["PAAS_HELM_BINARY"] == "/usr/local/bin/helm"
    assert env["PAAS_KUBECTL_BINARY"] == "/usr/local/bin/kubectl"
    assert (unpacked.rootfs / "etc/passwd").read_text().splitlines()[-1].startswith("paas:x:10001:10001:")
    # The vendored front-end assets, collected at build time, are the repository's.
    htmx = unpacked.rootfs / "app/static/vendor/htmx.min.js"
    assert htmx.read_bytes() == (ROOT / "paas/static/vendor/htmx.min.js").read_bytes()
    assert not (unpacked.rootfs / "app/tests").exists()
    # No documentation but the licences (dpkg's path-excludes): no man page, only copyright files.
    assert not [path for path in (unpacked.rootfs / "usr/share/man").rglob("*") if not path.is_dir()]
    assert {path.name for path in (unpacked.rootfs / "usr/share/doc").rglob("*") if path.is_file()} == {
        "copyright"
    }
    # The app layer: fixed timestamps, root-owned, sorted.
    info = json.loads((unpacked.image.layout.parent / "INFO.json").read_text())
    app_tar = next(Path(layer["tar"]) for layer in info["layers"] if layer["name"] == "app")
    with tarfile.open(app_tar) as tar:
        members = tar.getmembers()
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(info["epoch"], 0, 0, "", "")}
    assert [m.name for m in members] == sorted(m.name for m in members)


def test_the_same_layers_assemble_to_the_same_digest(tmp_path):
    image = built_image()
    info = json.loads((image.layout.parent / "INFO.json").read_text())
    layers = image_build.layers_of(info)
    again = image_build.assemble(layers, tmp_path / "oci", tag=image.tag, epoch=info["epoch"])
    assert again == image.digest


@contextmanager
def _running(unpacked: Unpacked, log: Path, *command: str, env: dict[str, str]) -> Iterator[subprocess.Popen]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            unpacked.argv(*command, env=env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        processes.stop(process)


PROBE = """
import os, subprocess, sys
assert (os.getuid(), os.getgid()) == (10001, 10001), (os.getuid(), os.getgid())
for path in ("/app/written", "/etc/written", "/usr/local/bin/written"):
    try:
        open(path, "w")
    except OSError as exc:
        assert exc.errno == 30, exc  # EROFS: the root file system is read-only
    else:
        sys.exit(f"{path} was writable")
for path in ("/tmp/written", "/var/lib/gpu-paas/written"):
    open(path, "w").write("ok")
print(subprocess.run(["/usr/local/bin/helm", "version", "--short"], capture_output=True, text=True,
                     check=True).stdout.strip())
print(subprocess.run(["/usr/local/bin/kubectl", "version", "--client"], capture_output=True, text=True,
                     check=True).stdout.splitlines()[0])
print("probe ok")
"""


def test_the_image_passes_check_deploy_and_serves_until_ready(unpacked, transactional_db, tmp_path):
    env = _production_env()
    # The probe runs through the image's own interpreter: `manage.py shell -c` (the entrypoint is manage.py).
    probe = subprocess.run(
        unpacked.argv("shell", "-c", PROBE, env=env), capture_output=True, text=True, timeout=300
    )
    assert probe.returncode == 0 and "probe ok" in probe.stdout, probe.stdout + probe.stderr
    assert "v4." in probe.stdout and "Client Version: v1." in probe.stdout
    assert (unpacked.var_dir / "written").stat().st_uid == UID  # really uid 10001 on the host too

    check = subprocess.run(
        unpacked.argv("check", "--deploy", "--fail-level", "WARNING", env=env),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert check.returncode == 0, check.stdout + check.stderr

    port = free_port()
    with (
        _running(unpacked, tmp_path / "web.log", "serve", f"127.0.0.1:{port}", "--no-worker", env=env) as web,
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http,
    ):

        def logs() -> str:
            return "\n".join(
                f"--- {log.name}:\n" + log.read_text(errors="replace")[-3000:]
                for log in sorted(tmp_path.glob("*.log"))
            )

        def answered(path: str, status: int) -> httpx.Response | None:
            """``path`` as a kubelet probes it (plain HTTP to the pod's address), once it says ``status``."""
            assert web.poll() is None, f"the image's web process exited\n{logs()}"
            try:
                answer = http.get(path)
            except httpx.TransportError:
                return None
            return answer if answer.status_code == status else None

        wait_for(lambda: answered("/healthz", 200), timeout=240, interval=0.5, what="/healthz from the image")
        # No worker yet: not ready, and the report says that is the only reason.
        unready = http.get("/readyz")
        assert unready.status_code == 503, unready.text
        report = unready.json()
        assert report["database"]["ok"] is True and report["migrations"]["ok"] is True, report
        assert report["worker"]["ok"] is False, report

        # The heartbeat's schedule comes from a migration; an earlier transactional test of the suite may
        # have flushed it (transactional_db empties every table), so it is put back as migrated.
        Schedule.objects.update_or_create(
            name="worker heartbeat",
            defaults={
                "func": "paas.tasks.worker_heartbeat",
                "schedule_type": Schedule.MINUTES,
                "minutes": 1,
                "repeats": -1,
                "next_run": timezone.now(),
            },
        )
        with _running(unpacked, tmp_path / "worker.log", "qcluster", env=env) as worker:
            ready = wait_for(
                lambda: worker.poll() is None and answered("/readyz", 200),
                timeout=240,
                interval=0.5,
                what="/readyz answering 200 once the image's worker runs",
            )
            assert worker.poll() is None, f"the image's worker exited\n{logs()}"
        assert ready.json()["ok"] is True and ready.json()["worker"]["ok"] is True, ready.text
        static = http.get("/static/vendor/htmx.min.js", headers={"X-Forwarded-Proto": "https"})
        assert static.status_code == 200
        assert static.content == (ROOT / "paas/static/vendor/htmx.min.js").read_bytes()
    assert "Traceback" not in logs()
