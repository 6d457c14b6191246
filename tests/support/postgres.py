"""A private PostgreSQL server for the suite, provisioned when none is given.

``DATABASE_URL`` set in the environment wins. Otherwise a cluster is created (once) under
``/tmp/gpupaas-test-pg`` and started on a free loopback port; it is reused by later runs while it
runs. As root, the Debian package is installed when missing and the server runs as ``postgres``
(PostgreSQL refuses to run as root). As another user without PostgreSQL, a clear message says what
to install.
"""

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

DATA_DIR = Path(os.environ.get("PAAS_TEST_PG_DIR", "/tmp/gpupaas-test-pg"))
DB_USER = "postgres"


def _bin_dir() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if candidates:
        return Path(candidates[0]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _install_debian_package() -> None:
    print("PostgreSQL is not installed; installing the Debian package (as root)...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "postgresql"], check=True, env=env)


def _as_server_user(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _running_port() -> int | None:
    pid_file, port_file = DATA_DIR / "postmaster.pid", DATA_DIR / "port"
    if not pid_file.exists() or not port_file.exists():
        return None
    port = int(port_file.read_text())
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return port
    except OSError:
        return None


def ensure() -> str:
    """Return a DATABASE_URL for a reachable PostgreSQL server, starting one if needed."""
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    port = _running_port()
    if port is None:
        port = _start()
    return f"postgres://{DB_USER}@127.0.0.1:{port}/gpupaas"


def _start() -> int:
    bin_dir = _bin_dir()
    if bin_dir is None:
        if os.geteuid() != 0:
            sys.exit(
                "PostgreSQL is needed for the suite and was not found. Install it (Debian: "
                "`sudo apt-get install postgresql`) or set DATABASE_URL=postgres://user:pass@host:port/db."
            )
        _install_debian_package()
        bin_dir = _bin_dir()
        if bin_dir is None:
            sys.exit("Installing PostgreSQL did not provide initdb; set DATABASE_URL instead.")
    try:
        return _start_server(bin_dir)
    except subprocess.CalledProcessError:
        # A previous run's server was killed (a session ends by killing its processes): stop what is left
        # of it, drop the stale lock and try again; as a last resort start from a new (throwaway) cluster.
        _kill_leftovers()
        (DATA_DIR / "postmaster.pid").unlink(missing_ok=True)
        try:
            return _start_server(bin_dir)
        except subprocess.CalledProcessError:
            print("PostgreSQL would not start from the old test cluster; creating a new one.", flush=True)
            shutil.rmtree(DATA_DIR, ignore_errors=True)
            return _start_server(bin_dir)


def _kill_leftovers() -> None:
    """SIGKILL postgres processes still running from our data directory (orphans of a killed server)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "postgres" in cmdline and str(DATA_DIR) in cmdline:
            with contextlib.suppress(OSError):
                os.kill(int(proc.name), 9)
    time.sleep(0.5)


def _start_server(bin_dir: Path) -> int:
    if not (DATA_DIR / "PG_VERSION").exists():
        shutil.rmtree(DATA_DIR, ignore_errors=True)
        DATA_DIR.mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(DATA_DIR, "postgres", "postgres")
        subprocess.run(
            _as_server_user(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(DATA_DIR),
                    "-U",
                    DB_USER,
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
    port = _free_port()
    (DATA_DIR / "port").write_text(str(port))
    options = (
        f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={DATA_DIR} "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    subprocess.run(
        _as_server_user(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(DATA_DIR),
                "-l",
                str(DATA_DIR / "server.log"),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ]
        ),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.2)
    print(f"PostgreSQL started on 127.0.0.1:{port} (data in {DATA_DIR})", flush=True)
    return port


if __name__ == "__main__":
    print(ensure())
