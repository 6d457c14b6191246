"""A Git server over SSH for the tests: paramiko's server side on a free 127.0.0.1 port, public-key
authentication against one authorised key, and ``git-upload-pack`` (Git's own program) run for the
``exec`` request, over the bare repositories of a ``GitServer`` (tests/support/git_server.py), so the
same repositories are reached over HTTP and SSH. Read-only: only ``git-upload-pack`` is run.

    with SshGitServer(git_server.root) as ssh:
        url = f"ssh://git@127.0.0.1:{ssh.port}/app.git"; ssh.known_hosts_line; ssh.client_key_text
"""

from __future__ import annotations

import contextlib
import io
import shlex
import socket
import subprocess
import threading
from pathlib import Path

import paramiko

from tests.support.git_server import git_environment


class _Server(paramiko.ServerInterface):
    def __init__(self, owner: SshGitServer):
        self.owner = owner
        self.command: bytes | None = None
        self.ready = threading.Event()

    def check_auth_publickey(self, username, key):
        ok = key == self.owner.authorised_key
        self.owner.auth_attempts.append((username, ok))
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def get_allowed_auths(self, username):
        return "publickey"

    def check_channel_request(self, kind, chanid):
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel, command):
        self.command = command
        self.ready.set()
        return True


class SshGitServer:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.host_key = paramiko.ECDSAKey.generate()
        client_key = paramiko.ECDSAKey.generate()
        self.authorised_key = paramiko.ECDSAKey(data=client_key.asbytes())
        buffer = io.StringIO()
        client_key.write_private_key(buffer)
        self.client_key_text = buffer.getvalue()
        self.auth_attempts: list[tuple[str, bool]] = []
        self.commands: list[str] = []
        self._sock: socket.socket | None = None
        self._stopping = threading.Event()

    @property
    def port(self) -> int:
        return self._sock.getsockname()[1]

    @property
    def known_hosts_line(self) -> str:
        return f"[127.0.0.1]:{self.port} {self.host_key.get_name()} {self.host_key.get_base64()}"

    def url(self, name: str) -> str:
        return f"ssh://git@127.0.0.1:{self.port}/{name}.git"

    def __enter__(self) -> SshGitServer:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self._sock.settimeout(0.2)
        threading.Thread(target=self._accept, daemon=True, name="ssh-git").start()
        return self

    def __exit__(self, *exc) -> None:
        self._stopping.set()
        self._sock.close()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        transport = paramiko.Transport(conn)
        transport.add_server_key(self.host_key)
        server = _Server(self)
        try:
            transport.start_server(server=server)
            channel = transport.accept(20)
            if channel is None or not server.ready.wait(20):
                return
            command = server.command.decode()
            self.commands.append(command)
            argv = shlex.split(command)
            if len(argv) != 2 or argv[0] != "git-upload-pack":
                channel.sendall_stderr(b"only git-upload-pack is served\n")
                channel.send_exit_status(1)
                return
            target = (self.root / argv[1].lstrip("/")).resolve()
            if self.root.resolve() not in target.parents or not target.is_dir():
                channel.sendall_stderr(b"no such repository\n")
                channel.send_exit_status(128)
                return
            process = subprocess.Popen(
                ["git-upload-pack", str(target)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=git_environment(),
            )

            def pump_in():
                try:
                    while data := channel.recv(65536):
                        process.stdin.write(data)
                        process.stdin.flush()
                except (OSError, ValueError):
                    pass
                finally:
                    with contextlib.suppress(OSError):
                        process.stdin.close()

            threading.Thread(target=pump_in, daemon=True).start()
            while data := process.stdout.read1(65536):
                channel.sendall(data)
            channel.send_exit_status(process.wait())
        except (paramiko.SSHException, OSError, EOFError):
            pass
        finally:
            transport.close()
