"""Where a web-shell command runs: a bubblewrap sandbox holding nothing of the platform.

Each command line the policy allows runs as argv (no shell) in a sandbox of its own (``bwrap``):

* its own user namespace, uid/gid 65534 inside (``--uid``/``--gid``); no capabilities;
* ``--clearenv``: only HOME, KUBECONFIG, TERM, PATH (and helm's directories) set here;
* ``--unshare-all``: its own mount, pid, network, ipc, uts and cgroup namespaces: the network has
  only loopback, and ``/proc`` is the sandbox's own (none of the platform's processes or environment);
* ``--die-with-parent``, ``--new-session`` (no terminal injection into the platform's session);
* a tmpfs root holding only the kubectl (or helm) binary at ``/sandbox/bin``, the generated kubeconfig
  (``--ro-bind-data``: never written to the host's disk), the relay script, the session's scratch
  directory (kubectl's cache) at ``/scratch``, and, read-only, ``/usr`` for the relay's Python;
* the kubeconfig points at ``https://127.0.0.1:8443/k8s/instances/<id>`` inside the sandbox (kubectl
  sends its credential over TLS only: the session's own certificate, :class:`LoopbackTLS`), where the
  relay (``python3 -I -S``, stdlib only) forwards each connection to a Unix socket bind-mounted from
  the host; the session (:class:`Relay`) forwards it to the platform's kubectl proxy, which
  authenticates the session's own credential like any other.

Ending a command (Ctrl-C, the page closed, a limit) kills the sandbox: bwrap's pid-namespace init
takes every process in it along.
"""

import asyncio
import os
import shutil
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings

SANDBOX_UID = 65534
INNER_PORT = 8443
BIN = "/sandbox/bin"
KUBECONFIG = "/sandbox/kubeconfig"
RELAY_SCRIPT = "/sandbox/relay.py"
RELAY_SOCKET = "/sandbox/relay.sock"
TLS_CERT = "/sandbox/tls.crt"
TLS_KEY = "/sandbox/tls.key"
SCRATCH = "/scratch"
RELAY_PYTHON = "/usr/bin/python3"

# The relay inside the sandbox: listens on 127.0.0.1:INNER_PORT, forwards to the Unix socket, runs the
# command as its child and exits with its status.
RELAY_SOURCE = r"""
import os, socket, ssl, sys, threading
sock_path, port, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
tls.load_cert_chain("/sandbox/tls.crt", "/sandbox/tls.key")
server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", port))
server.listen(64)

def pipe(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    for s in (dst,):
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass

def serve(raw):
    try:
        conn = tls.wrap_socket(raw, server_side=True)
    except (OSError, ssl.SSLError):
        raw.close()
        return
    up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        up.connect(sock_path)
    except OSError:
        conn.close()
        return
    t = threading.Thread(target=pipe, args=(up, conn), daemon=True)
    t.start()
    pipe(conn, up)
    t.join()
    conn.close()
    up.close()

def accept():
    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()

threading.Thread(target=accept, daemon=True).start()
pid = os.fork()
if pid == 0:
    server.close()
    os.execv(argv[0], argv)
_, status = os.waitpid(pid, 0)
os._exit(os.waitstatus_to_exitcode(status) & 0xFF if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))
"""


class SandboxUnavailable(RuntimeError):
    """bwrap or the kubectl binary is not configured or not there."""


def binaries() -> dict[str, str]:
    """The programs a shell may run: kubectl always, helm when configured."""
    found = {}
    kubectl = getattr(settings, "PAAS_KUBECTL_BINARY", "")
    if kubectl and os.path.isfile(kubectl):
        found["kubectl"] = kubectl
    helm = getattr(settings, "PAAS_HELM_BINARY", "")
    if helm and os.path.isfile(helm):
        found["helm"] = helm
    return found


def bwrap_binary() -> str:
    path = getattr(settings, "PAAS_BWRAP_BINARY", "")
    if not path or not os.path.isfile(path):
        raise SandboxUnavailable("The web shell's sandbox (bubblewrap, PAAS_BWRAP_BINARY) is not installed.")
    return path


@dataclass(frozen=True)
class LoopbackTLS:
    """The relay's certificate inside the sandbox (a session's own, for 127.0.0.1; its key only ever in
    memory and in the sandbox). kubectl sends its credential only over TLS (client-go reads a
    kubeconfig's user only for an https server), so the sandbox's loopback hop is TLS too."""

    cert_pem: str
    key_pem: str

    @classmethod
    def create(cls, *, days: int = 2) -> "LoopbackTLS":
        import datetime
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "paas web shell relay")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
            )
            .sign(key, hashes.SHA256())
        )
        return cls(
            cert_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
            key_pem=key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ).decode(),
        )


def sandbox_kubeconfig(kubeconfig_text: str, tls: LoopbackTLS) -> str:
    """The session's proxy kubeconfig with its server rewritten to the relay inside the sandbox."""
    import base64

    import yaml

    data = yaml.safe_load(kubeconfig_text)
    for cluster in data.get("clusters", []):
        path = urlsplit(cluster["cluster"]["server"]).path
        cluster["cluster"] = {
            "server": f"https://127.0.0.1:{INNER_PORT}{path}",
            "certificate-authority-data": base64.b64encode(tls.cert_pem.encode()).decode(),
        }
    return yaml.safe_dump(data, sort_keys=False)


class Relay:
    """The host side of the sandbox's network: a Unix socket in the session's private directory whose
    connections go to the platform's kubectl proxy (``PAAS_KUBE_PROXY_URL``) and nowhere else."""

    def __init__(self, directory: Path, target_url: str):
        self.path = directory / "relay.sock"
        parts = urlsplit(target_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.tls = parts.scheme == "https"
        self.server: asyncio.AbstractServer | None = None
        self.connections: set[asyncio.Task] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        os.chmod(self.path, 0o600)

    async def _serve(self, reader, writer) -> None:
        task = asyncio.current_task()
        self.connections.add(task)
        try:
            context = None
            if self.tls:
                context = ssl.create_default_context(
                    cafile=getattr(settings, "PAAS_KUBE_PROXY_CA_FILE", "") or None
                )
            up_reader, up_writer = await asyncio.open_connection(
                self.host, self.port, ssl=context, server_hostname=self.host if self.tls else None
            )
        except OSError:
            writer.close()
            self.connections.discard(task)
            return

        async def pipe(src, dst):
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                try:
                    if dst.can_write_eof():
                        dst.write_eof()
                except OSError:
                    pass

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                w.close()
            self.connections.discard(task)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self.connections):
            task.cancel()
        await asyncio.gather(*self.connections, return_exceptions=True)


@dataclass
class Workspace:
    """A session's private host directory (0700): the relay's socket and the scratch directory."""

    directory: Path

    @classmethod
    def create(cls) -> "Workspace":
        directory = Path(tempfile.mkdtemp(prefix="paas-shell-"))
        os.chmod(directory, 0o700)
        (directory / "scratch").mkdir(mode=0o700)
        return cls(directory)

    @property
    def scratch(self) -> Path:
        return self.directory / "scratch"

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def _data_fd(text: str) -> int:
    """A pipe's read end holding ``text`` (bwrap copies it into the sandbox: ``--ro-bind-data``)."""
    read, write = os.pipe()
    data = text.encode()
    if len(data) > 60000:  # a pipe's buffer; kubeconfigs and the relay are far smaller
        raise ValueError("too large for a pipe")
    os.write(write, data)
    os.close(write)
    return read


def command_argv(
    *,
    program: str,
    args: list[str],
    workspace: Workspace,
    kubeconfig_fd: int,
    relay_fd: int,
    tls_fds: tuple[int, int],
    term: str = "xterm-256color",
) -> list[str]:
    """bwrap's argv for one command (``program`` is a key of :func:`binaries`)."""
    binary = binaries()[program]
    inner = f"{BIN}/{program}"
    argv = [
        bwrap_binary(),
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        "--uid",
        str(SANDBOX_UID),
        "--gid",
        str(SANDBOX_UID),
        "--hostname",
        "shell",
        "--ro-bind",
        "/usr",
        "/usr",
        "--symlink",
        "usr/lib",
        "/lib",
        "--symlink",
        "usr/lib64",
        "/lib64",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--tmpfs",
        "/tmp",  # noqa: S108 - the sandbox's own, empty
        "--dir",
        "/sandbox",
        "--ro-bind",
        binary,
        inner,
        "--ro-bind-data",
        str(kubeconfig_fd),
        KUBECONFIG,
        "--ro-bind-data",
        str(relay_fd),
        RELAY_SCRIPT,
        "--ro-bind-data",
        str(tls_fds[0]),
        TLS_CERT,
        "--ro-bind-data",
        str(tls_fds[1]),
        TLS_KEY,
        "--bind",
        str(workspace.directory / "relay.sock"),
        RELAY_SOCKET,
        "--bind",
        str(workspace.scratch),
        SCRATCH,
        "--chdir",
        SCRATCH,
        "--setenv",
        "HOME",
        SCRATCH,
        "--setenv",
        "KUBECONFIG",
        KUBECONFIG,
        "--setenv",
        "TERM",
        term,
        "--setenv",
        "PATH",
        BIN,
    ]
    if program == "helm":
        for name, sub in (
            ("HELM_CACHE_HOME", "cache"),
            ("HELM_CONFIG_HOME", "config"),
            ("HELM_DATA_HOME", "data"),
        ):
            argv += ["--setenv", name, f"{SCRATCH}/.helm/{sub}"]
        argv += ["--setenv", "HELM_PLUGINS", "/nonexistent"]
    argv += ["--", RELAY_PYTHON, "-I", "-S", RELAY_SCRIPT, RELAY_SOCKET, str(INNER_PORT), inner, *args]
    return argv


async def spawn(
    *, program: str, args: list[str], workspace: Workspace, kubeconfig: str, tls: LoopbackTLS, stdout_fd: int
):
    """Start one command in its sandbox (output to ``stdout_fd``, a pseudo-terminal; no input)."""
    fds = [_data_fd(kubeconfig), _data_fd(RELAY_SOURCE), _data_fd(tls.cert_pem), _data_fd(tls.key_pem)]
    try:
        argv = command_argv(
            program=program,
            args=args,
            workspace=workspace,
            kubeconfig_fd=fds[0],
            relay_fd=fds[1],
            tls_fds=(fds[2], fds[3]),
        )
        return await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=stdout_fd,
            stderr=stdout_fd,
            pass_fds=tuple(fds),
            start_new_session=True,
            env={},
            cwd="/",
        )
    finally:
        for fd in fds:
            os.close(fd)
