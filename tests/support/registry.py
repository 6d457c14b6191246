"""A real container registry for the tests: the CNCF distribution registry (built by tests/toolchain
from its Go module) as a process on a free 127.0.0.1 port, with either of its two real
authentication schemes:

* ``htpasswd``: HTTP basic auth against a bcrypt htpasswd file the test writes;
* ``token``: the Docker token flow.  ``/v2/`` answers 401 with
  ``WWW-Authenticate: Bearer realm="<token server>/token",service="test-registry"`` (plus ``scope=``
  on repository requests); the client asks ``TokenServer`` (the test's own HTTP server) for a token
  with basic auth, and the registry accepts the JWT because it is signed (ES256) by a key whose
  certificate (sent in the ``x5c`` header) chains to the CA in the registry's ``rootcertbundle``.
  Each token server user is granted only the actions listed for it (e.g. a pull-only robot).

Storage is the filesystem driver in the registry's own directory; it speaks plain HTTP on
loopback (helm: ``--plain-http``).
"""

from __future__ import annotations

import base64
import ctypes
import datetime
import json
import secrets
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import bcrypt
import requests
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from tests.support.loopback_http import BackgroundHTTPServer, LoopbackHandler, check_basic_auth
from tests.support.wait import wait_for

SERVICE = "test-registry"
ISSUER = "test-token-issuer"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def parse_bearer_challenge(header: str) -> dict[str, str]:
    """``Bearer realm="x",service="y",scope="z"`` -> ``{"realm": "x", "service": "y", "scope": "z"}``."""
    scheme, _, params = header.partition(" ")
    assert scheme == "Bearer", header
    result = {}
    for part in _split_params(params):
        key, _, value = part.partition("=")
        result[key.strip()] = value.strip().strip('"')
    return result


def _split_params(params: str) -> list[str]:
    parts, current, quoted = [], "", False
    for char in params:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current] if current else parts


# --------------------------------------------------------------------------------------------
# token signing
# --------------------------------------------------------------------------------------------
class TokenSigner:
    """A CA and a signing certificate issued by it (ECDSA P-256), and ES256 JWTs signed with it."""

    def __init__(self) -> None:
        now = datetime.datetime.now(datetime.UTC)
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test token CA")])
        self.ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(self.ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(*[False] * 5, True, True, False, False), critical=True)
            .sign(self.ca_key, hashes.SHA256())
        )
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)]))
            .issuer_name(ca_name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, *[False] * 8),  # digitalSignature
                critical=True,
            )
            .sign(self.ca_key, hashes.SHA256())
        )

    def ca_pem(self) -> bytes:
        return self.ca_cert.public_bytes(serialization.Encoding.PEM)

    def sign(self, claims: dict) -> str:
        header = {
            "typ": "JWT",
            "alg": "ES256",
            "x5c": [base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()],
        }
        signing_input = (
            f"{_b64url(json.dumps(header, separators=(',', ':')).encode())}."
            f"{_b64url(json.dumps(claims, separators=(',', ':')).encode())}"
        )
        r, s = decode_dss_signature(self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return f"{signing_input}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


class _TokenHandler(LoopbackHandler):
    def handle_request(self, user: str | None) -> None:
        server: TokenServer = self.server.owner  # type: ignore[assignment]
        url = urlsplit(self.path)
        if url.path != "/token" or self.command not in ("GET", "HEAD"):
            self.reply(404, b"not found\n")
            return
        query = parse_qs(url.query)
        authorization = self.headers.get("Authorization")
        if authorization:
            user = check_basic_auth(authorization, {name: p for name, (p, _) in server.users.items()})
            if user is None:
                self.reply(401, b'{"details":"invalid username or password"}\n', "application/json")
                return
        if query.get("service", [SERVICE])[0] != SERVICE:
            self.reply(400, b'{"details":"unknown service"}\n', "application/json")
            return
        allowed = set(server.users[user][1]) if user else set()
        access = []
        for scope in query.get("scope", []):
            for item in scope.split(" "):
                kind, _, rest = item.partition(":")
                name, _, actions = rest.rpartition(":")
                granted = [action for action in actions.split(",") if action in allowed]
                if kind == "repository" and name and granted:
                    access.append({"type": kind, "name": name, "actions": granted})
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": user or "",
            "aud": SERVICE,
            "exp": now + server.lifetime,
            "nbf": now - 5,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        token = server.signer.sign(claims)
        server.issued.append((user, access))
        body = {
            "token": token,
            "access_token": token,
            "expires_in": server.lifetime,
            "issued_at": datetime.datetime.fromtimestamp(now, datetime.UTC).isoformat(),
        }
        self.reply(200, json.dumps(body).encode(), "application/json")


class TokenServer(BackgroundHTTPServer):
    """Docker token server: ``GET /token?service=&scope=repository:<name>:pull,push`` with basic auth.

    ``users`` maps a user to ``(password, actions it may be granted)``; an anonymous request gets a
    token with no access, a wrong password a 401.  ``issued`` records (user, access) per token.
    """

    handler = _TokenHandler
    realm = "token"
    ready_path = "/token"

    def __init__(self, users: dict[str, tuple[str, tuple[str, ...]]], *, lifetime: int = 300):
        super().__init__()
        self.users = users
        self.lifetime = lifetime
        self.signer = TokenSigner()
        self.issued: list[tuple[str | None, list]] = []

    @property
    def realm_url(self) -> str:
        return f"{self.url}/token"


# --------------------------------------------------------------------------------------------
# the registry process
# --------------------------------------------------------------------------------------------
@dataclass
class Registry:
    """The distribution registry process.  ``auth`` is ``"htpasswd"`` (``users``: user -> password)
    or ``"token"`` (a ``TokenServer``, whose CA the registry trusts)."""

    binary: Path
    directory: Path
    auth: str
    users: dict[str, str] = field(default_factory=dict)
    token_server: TokenServer | None = None
    port: int = 0
    process: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>``: the registry host of image references and ``oci://`` chart URLs."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def log_path(self) -> Path:
        return self.directory / "registry.log"

    def _config(self) -> dict:
        if self.auth == "htpasswd":
            htpasswd = self.directory / "htpasswd"
            htpasswd.write_text(
                "".join(
                    f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()}\n"
                    for user, password in self.users.items()
                )
            )
            auth = {"htpasswd": {"realm": SERVICE, "path": str(htpasswd)}}
        elif self.auth == "token":
            assert self.token_server is not None, "token auth needs a TokenServer"
            bundle = self.directory / "token-ca.pem"
            bundle.write_bytes(self.token_server.signer.ca_pem())
            auth = {
                "token": {
                    "realm": self.token_server.realm_url,
                    "service": SERVICE,
                    "issuer": ISSUER,
                    "rootcertbundle": str(bundle),
                }
            }
        else:
            raise ValueError(f"unknown registry auth {self.auth!r}")
        return {
            "version": 0.1,
            "log": {"level": "info", "formatter": "text"},
            "storage": {
                "filesystem": {"rootdirectory": str(self.directory / "data")},
                "delete": {"enabled": True},
            },
            "http": {"addr": self.host, "secret": secrets.token_hex(16)},
            "auth": auth,
        }

    def start(self) -> Registry:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        config = self.directory / "config.yml"
        config.write_text(yaml.safe_dump(self._config(), sort_keys=False))
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [str(self.binary), "serve", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # no registry left running after a crashed pytest
            )
        wait_for(self._ready, timeout=30, interval=0.05, what=f"registry on {self.url}", check=self._alive)
        return self

    def _alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the registry exited ({self.process.returncode}):\n{tail}")

    def _ready(self) -> bool:
        try:
            return requests.get(f"{self.url}/v2/", timeout=2).status_code == 401
        except requests.ConnectionError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def __enter__(self) -> Registry:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
