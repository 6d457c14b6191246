"""Git over SSH (``ssh://[user@]host[:port]/path`` with an SSH private key) for dulwich, with paramiko:

* the TCP connection is opened by ``paas.outbound.connect_checked`` (the name resolved and every
  address checked at connect time, the connection made to a checked address);
* the server's host key must be in the repository's ``ssh_known_hosts`` (OpenSSH ``known_hosts``
  lines; ``[host]:port`` for another port than 22): there is no trust on first use, no file of the
  machine's and no agent is read;
* the key is the repository's credential (an OpenSSH or PEM private key without a passphrase; Ed25519,
  ECDSA or RSA), used for public-key authentication only; it never reaches a file or a process.
"""

from __future__ import annotations

import contextlib
import io

from catalog.sources.errors import FetchFailed, PackageRefused
from paas import outbound

TIMEOUT = 15.0


def load_private_key(text: str):
    """A paramiko key from the text of a private key; PackageRefused if it is not one."""
    import paramiko

    for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return cls.from_private_key(io.StringIO(text))
        except (paramiko.SSHException, ValueError, TypeError, IndexError):
            continue
    raise PackageRefused(
        {
            "credential": [
                "not an SSH private key (OpenSSH or PEM, Ed25519, ECDSA or RSA, without a passphrase)"
            ]
        }
    )


def host_keys(text: str, host: str, port: int):
    """The keys ``known_hosts`` text lists for ``host``:``port``."""
    import paramiko

    keys = paramiko.HostKeys()
    for line in (text or "").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            entry = paramiko.hostkeys.HostKeyEntry.from_line(line)
        except (paramiko.SSHException, paramiko.hostkeys.InvalidHostKey, ValueError, TypeError, IndexError):
            entry = None
        if entry is not None and entry.key is not None:
            for name in entry.hostnames:
                keys.add(name, entry.key.get_name(), entry.key)
    lookup = host if port == 22 else f"[{host}]:{port}"
    return keys.lookup(lookup) or {}


def check_known_hosts(text: str) -> int:
    """How many usable ``known_hosts`` lines ``text`` holds (request side)."""
    import paramiko

    count = 0
    for line in (text or "").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            entry = paramiko.hostkeys.HostKeyEntry.from_line(line)
        except (paramiko.SSHException, paramiko.hostkeys.InvalidHostKey, ValueError, TypeError, IndexError):
            entry = None
        if entry is None or entry.key is None:
            raise ValueError(f"not a known_hosts line: {line[:60]!r}")
        count += 1
    return count


class _Connection:
    """What dulwich's SSH client reads from and writes to: one exec channel."""

    def __init__(self, transport, channel):
        self.transport, self.channel = transport, channel

    def read(self, n: int | None = None) -> bytes:
        chunks, wanted = [], n
        while True:
            data = self.channel.recv(wanted if wanted else 65536)
            if not data:
                break
            chunks.append(data)
            if wanted is None:
                break
            wanted -= len(data)
            if wanted <= 0:
                break
        return b"".join(chunks)

    def write(self, data: bytes) -> None:
        self.channel.sendall(data)

    def can_read(self) -> bool:
        return self.channel.recv_ready()

    def close(self, timeout: int | None = None) -> None:
        import paramiko

        with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
            self.channel.close()  # the server may have closed first: nothing left to say
        self.transport.close()


class CheckedSSHVendor:
    """A dulwich ``SSHVendor`` for one repository (its known hosts and key)."""

    def __init__(self, repository, credential: str):
        self.repository = repository
        self.credential = credential

    def run_command(self, host, command, username=None, port=None, **_ignored):
        import paramiko

        port = port or 22
        where = f"Git repository ssh://{host}:{port}"
        expected = host_keys(self.repository.ssh_known_hosts, host, port)
        if not expected:
            raise FetchFailed(f"{where}: no host key for {host} in the repository's known hosts")
        key = load_private_key(self.credential)
        try:
            sock = outbound.connect_checked(host, port, purpose="Git repository", timeout=TIMEOUT)
        except outbound.OutboundConnectionRefused as exc:
            reason = exc.reason.partition(" is refused: ")[2] or exc.reason
            raise FetchFailed(
                f"{where}: refused by the outbound-address policy: {reason.rstrip('.')}"
            ) from None
        except OSError as exc:
            from catalog.sources.http import describe

            raise FetchFailed(f"{where}: {describe(exc)}") from None
        transport = paramiko.Transport(sock)
        try:
            transport.start_client(timeout=TIMEOUT)
            offered = transport.get_remote_server_key()
            known = expected.get(offered.get_name())
            if known is None or known != offered:
                raise FetchFailed(
                    f"{where}: the server's host key ({offered.get_name()} "
                    f"{offered.fingerprint}) is not the one in the repository's known hosts"
                )
            try:
                transport.auth_publickey(username or "git", key)
            except paramiko.AuthenticationException:
                raise FetchFailed(f"{where}: the SSH key was refused (authentication failed)") from None
            channel = transport.open_session(timeout=TIMEOUT)
            channel.settimeout(60)
            channel.exec_command(command.decode() if isinstance(command, bytes) else " ".join(command))
        except FetchFailed:
            transport.close()
            raise
        except (paramiko.SSHException, OSError, EOFError) as exc:
            transport.close()
            raise FetchFailed(f"{where}: the SSH connection failed ({type(exc).__name__})") from None
        return _Connection(transport, channel)
