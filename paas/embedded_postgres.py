"""A private PostgreSQL server the project starts itself: the embedded default of ``make run`` (data
in ``var/postgres``) and the suite's server (``tests/support/postgres.py``) when no ``DATABASE_URL`` is
given. One engine everywhere: what runs is what is tested.

A cluster is created once (``initdb``) in a data directory, started on a loopback port kept in the
file ``port`` beside its data, and reused while it runs; a later call finds it in a few milliseconds
(the port file and one TCP connect). PostgreSQL comes from the machine: Debian's ``postgresql``
package, installed as root when missing; as root the server runs as the ``postgres`` user
(PostgreSQL refuses to run as root). As another user without PostgreSQL, a clear message says what
to install. Standard library only (and psycopg to create the database): settings import it.
"""

import contextlib
import fcntl
import glob
import hashlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

SERVER_USER = "postgres"


class Unavailable(RuntimeError):
    """PostgreSQL is not installed and cannot be installed here."""


def bin_dir() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if candidates:
        return Path(candidates[0]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _install_debian_package() -> None:
    print("PostgreSQL is not installed; installing the Debian package (as root)...", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)  # noqa: S607
    subprocess.run(["apt-get", "install", "-y", "-qq", "postgresql"], check=True, env=env)  # noqa: S607


def _as_server_user(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", SERVER_USER, "--", *cmd]
    return cmd


def _free_port(preferred: int | None = None) -> int:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred or 0))
        except OSError:
            sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def running_port(data_dir: Path) -> int | None:
    """The port of the server running from ``data_dir``, or None."""
    pid_file, port_file = data_dir / "postmaster.pid", data_dir / "port"
    try:
        if not pid_file.exists() or not port_file.exists():
            return None
        port = int(port_file.read_text())
    except (OSError, ValueError):
        return None
    return port if _answers(port) else None


def _url(port: int, database: str, password: str | None) -> str:
    auth = f"{SERVER_USER}:{quote(password, safe='')}" if password else SERVER_USER
    return f"postgres://{auth}@127.0.0.1:{port}/{database}"


def ensure(
    data_dir: Path,
    database: str,
    *,
    password_file: Path | None = None,
    throwaway: bool = False,
    quiet: bool = False,
) -> str:
    """A DATABASE_URL for ``database`` on the server of ``data_dir``, starting the server (creating the
    cluster the first time) and creating the database when needed.

    With ``password_file`` the cluster is created with password authentication and that password
    (generated once, mode 0600) is put in the URL; without it, loopback connections are trusted (the
    suite's throwaway server). ``throwaway``: a cluster that will not start even after its leftovers
    are cleared is recreated (never for the project's own data).
    """
    data_dir = Path(data_dir)
    password = _password(password_file) if password_file else None
    port = running_port(data_dir)
    if port is None:
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        # One starter at a time (the web server and the worker may ask together).
        with open(data_dir.parent / f".{data_dir.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            port = running_port(data_dir) or _start(data_dir, password, throwaway=throwaway, quiet=quiet)
    _create_database(port, database, password)
    return _url(port, database, password)


def _password(path: Path) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


def _create_database(port: int, database: str, password: str | None) -> None:
    import psycopg

    with psycopg.connect(
        host="127.0.0.1", port=port, user=SERVER_USER, password=password, dbname="postgres", autocommit=True
    ) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{database}"')


def _start(data_dir: Path, password: str | None, *, throwaway: bool, quiet: bool) -> int:
    binaries = bin_dir()
    if binaries is None:
        if os.geteuid() != 0:
            raise Unavailable(
                "PostgreSQL was not found. Install it (Debian: `sudo apt-get install postgresql`) "
                "or set DATABASE_URL=postgres://user:pass@host:port/db."
            )
        _install_debian_package()
        binaries = bin_dir()
        if binaries is None:
            raise Unavailable("Installing PostgreSQL did not provide initdb; set DATABASE_URL instead.")
    try:
        return _start_server(binaries, data_dir, password, quiet=quiet)
    except subprocess.CalledProcessError:
        # A previous server was killed (a session ends by killing its processes): stop what is left of
        # it, drop the stale lock and try again.
        _kill_leftovers(data_dir)
        (data_dir / "postmaster.pid").unlink(missing_ok=True)
        try:
            return _start_server(binaries, data_dir, password, quiet=quiet)
        except subprocess.CalledProcessError:
            if not throwaway:
                raise
            print(f"PostgreSQL would not start from {data_dir}; creating a new cluster.", file=sys.stderr)
            shutil.rmtree(data_dir, ignore_errors=True)
            return _start_server(binaries, data_dir, password, quiet=quiet)


def _kill_leftovers(data_dir: Path) -> None:
    """SIGKILL postgres processes still running from ``data_dir`` (orphans of a killed server)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "postgres" in cmdline and f"-D {data_dir} " in cmdline + " ":
            with contextlib.suppress(OSError):
                os.kill(int(proc.name), 9)
    time.sleep(0.5)


def _server_can_reach(path: Path) -> bool:
    if os.geteuid() != 0:
        return True
    probe = _as_server_user(["test", "-x", str(path)])
    return subprocess.run(probe, check=False).returncode == 0  # noqa: S603


def _initdb(binaries: Path, data_dir: Path, password: str | None) -> None:
    if not _server_can_reach(data_dir.parent):
        # A project under a directory closed to the postgres user (a clone in /root): the data lives in
        # the postgres user's home and data_dir is a link to it.
        digest = hashlib.sha256(str(data_dir.absolute()).encode()).hexdigest()[:12]
        home = Path(f"/var/lib/postgresql/gpupaas-{digest}")
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        if data_dir.is_symlink():
            data_dir.unlink()
        shutil.rmtree(data_dir, ignore_errors=True)
        data_dir.symlink_to(home)
    else:
        shutil.rmtree(data_dir, ignore_errors=True)
        data_dir.mkdir(parents=True)
    if os.geteuid() == 0:
        shutil.chown(data_dir.resolve(), SERVER_USER, SERVER_USER)
    command = [str(binaries / "initdb"), "-D", str(data_dir.resolve()), "-U", SERVER_USER, "-E", "UTF8"]
    command += ["--no-sync", "--no-instructions"]
    with tempfile.NamedTemporaryFile("w", suffix=".pw") as pwfile:
        if password:
            pwfile.write(password)
            pwfile.flush()
            if os.geteuid() == 0:
                shutil.chown(pwfile.name, SERVER_USER)
            command += ["--auth-local=peer", "--auth-host=scram-sha-256", f"--pwfile={pwfile.name}"]
        else:
            command += ["-A", "trust"]
        subprocess.run(_as_server_user(command), check=True, stdout=subprocess.DEVNULL)  # noqa: S603


def _start_server(binaries: Path, data_dir: Path, password: str | None, *, quiet: bool) -> int:
    if not (data_dir / "PG_VERSION").exists():
        _initdb(binaries, data_dir, password)
    real_dir = data_dir.resolve()
    previous = None
    with contextlib.suppress(OSError, ValueError):
        previous = int((data_dir / "port").read_text())
    port = _free_port(previous)
    (data_dir / "port").write_text(str(port))
    options = (
        f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={real_dir} "
        "-c max_connections=200"
    )
    if not password:  # the suite's throwaway server: speed over durability
        options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    command = [str(binaries / "pg_ctl"), "-D", str(real_dir), "-l", str(real_dir / "server.log")]
    subprocess.run(  # noqa: S603
        _as_server_user([*command, "-o", options, "-w", "-t", "60", "start"]),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not _answers(port) and time.monotonic() < deadline:
        time.sleep(0.1)
    if not quiet:
        print(f"PostgreSQL started on 127.0.0.1:{port} (data in {data_dir})", file=sys.stderr, flush=True)
    return port


def stop(data_dir: Path) -> None:
    """Stop the server of ``data_dir`` if it runs (fast: open connections are cut)."""
    binaries = bin_dir()
    if binaries is None or not (Path(data_dir) / "postmaster.pid").exists():
        return
    real_dir = str(Path(data_dir).resolve())
    subprocess.run(  # noqa: S603
        _as_server_user([str(binaries / "pg_ctl"), "-D", real_dir, "-m", "fast", "-w", "stop"]),
        check=False,
        stdout=subprocess.DEVNULL,
    )


def project_var_dir() -> Path:
    """The project's ``var/`` (``PAAS_VAR_DIR`` moves it), as the settings compute it."""
    return Path(os.environ.get("PAAS_VAR_DIR", Path(__file__).resolve().parent.parent / "var"))


def ensure_project_database(var_dir: Path) -> str:
    """The DATABASE_URL of ``make run`` and of ``manage.py`` run by hand: database ``paas`` on the
    project's server in ``var_dir/postgres``, started when it is not running. The password of its
    ``postgres`` role is generated once into ``var_dir/postgres.password`` (mode 0600)."""
    return ensure(var_dir / "postgres", "paas", password_file=var_dir / "postgres.password")


if __name__ == "__main__":
    # python -m paas.embedded_postgres [url|stop]: print the project's DATABASE_URL (starting the
    # server if needed), or stop the server.
    if sys.argv[1:] == ["stop"]:
        stop(project_var_dir() / "postgres")
    else:
        print(ensure_project_database(project_var_dir()))
