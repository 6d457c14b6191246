"""A real OpenID Connect provider for the suite: ``oidc-provider-mock`` run as a process over HTTP.

The provider accepts any client id and secret and any redirect URI. Its authorization page is a form
where the person types their subject; tests post that form with ``requests`` (``authorize``). Users'
claims (``email``, ``groups``, names...) are set with ``set_user`` (the provider's ``PUT /users/<sub>``).
It issues RS256 ID tokens, opaque access tokens that its userinfo endpoint checks (expired ones get a
401), refresh tokens, and has an end-session endpoint. ``token_max_age`` bounds ID and access tokens.

Fixtures (registered by tests/conftest.py): ``oidc_provider`` (one process for the session) and
``oidc`` (the provider, with the platform's OIDC settings pointing at it for one test).
"""

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from tests.support.wait import WaitTimedOut, wait_for

CLIENT_ID = "gpupaas-test"
CLIENT_SECRET = "gpupaas-test-secret"  # the provider accepts any; sent like a real one


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class OidcProvider:
    """A running provider process and what a test needs to drive it."""

    url: str
    process: subprocess.Popen
    log_path: Path
    token_max_age: int
    session: requests.Session = field(default_factory=requests.Session)

    @property
    def discovery_url(self) -> str:
        return f"{self.url}/.well-known/openid-configuration"

    def configuration(self) -> dict:
        return self.session.get(self.discovery_url, timeout=10).json()

    def set_user(self, sub: str, **claims) -> None:
        """Create or replace a user at the provider (claims as the provider will send them)."""
        response = self.session.put(f"{self.url}/users/{sub}", json=claims, timeout=10)
        response.raise_for_status()

    def revoke_tokens(self, sub: str) -> None:
        """Revoke every access and refresh token of ``sub`` at the provider."""
        self.session.post(f"{self.url}/users/{sub}/revoke-tokens", timeout=10).raise_for_status()

    def authorize(self, authorization_url: str, sub: str) -> str:
        """Submit the provider's authorization form for ``authorization_url`` as ``sub``; return where
        the provider redirects the browser (the relying party's callback with ``code`` and ``state``)."""
        page = self.session.get(authorization_url, timeout=10)
        assert page.status_code == 200, page.text[:2000]
        response = self.session.post(authorization_url, data={"sub": sub}, allow_redirects=False, timeout=10)
        assert response.status_code == 302, response.text[:2000]
        return response.headers["Location"]

    def issue_tokens(
        self,
        sub: str,
        *,
        client_id: str = CLIENT_ID,
        redirect_uri: str = "http://127.0.0.1/callback",
        scope: str = "openid email profile",
    ) -> dict:
        """Tokens for ``sub`` as an API client (a CLI, a notebook) gets them: the code flow, done here."""
        config = self.configuration()
        query = urlencode(
            {
                "response_type": "code",
                "client_id": client_id,
                "redirect_uri": redirect_uri,
                "scope": scope,
                "state": secrets.token_urlsafe(8),
                "nonce": secrets.token_urlsafe(8),
            }
        )
        location = self.authorize(f"{config['authorization_endpoint']}?{query}", sub)
        code = parse_qs(urlsplit(location).query)["code"][0]
        response = self.session.post(
            config["token_endpoint"],
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "client_id": client_id,
                "client_secret": CLIENT_SECRET,
            },
            timeout=10,
        )
        response.raise_for_status()
        return response.json()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.session.close()


def start_provider(*, token_max_age: int = 3600, timeout: float = 30) -> OidcProvider:
    """Start ``python -m oidc_provider_mock`` on a free loopback port and wait until it answers."""
    port = _free_port()
    log_path = Path(tempfile.mkstemp(prefix="oidc-provider-", suffix=".log")[1])
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "oidc_provider_mock",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--token-max-age",
                str(token_max_age),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "NO_COLOR": "1"},
        )
    provider = OidcProvider(
        url=f"http://127.0.0.1:{port}", process=process, log_path=log_path, token_max_age=token_max_age
    )

    def answers() -> bool:
        with contextlib.suppress(requests.RequestException):
            return requests.get(provider.discovery_url, timeout=1).status_code == 200
        return False

    def alive() -> None:
        if process.poll() is not None:
            raise RuntimeError(f"The OIDC provider exited ({process.returncode}):\n{provider.log()}")

    try:
        wait_for(answers, timeout, 0.1, check=alive)
    except WaitTimedOut:
        provider.stop()
        raise RuntimeError(f"The OIDC provider did not start within {timeout}s:\n{provider.log()}") from None
    return provider


@contextlib.contextmanager
def running_provider(**kwargs):
    provider = start_provider(**kwargs)
    try:
        yield provider
    finally:
        provider.stop()


def configure(settings, provider: OidcProvider, **overrides) -> None:
    """Point the platform's OIDC settings (pytest-django's ``settings``) at ``provider``, by discovery."""
    from tenancy import sso

    sso.clear_discovery_cache()
    values = {
        "OIDC_ENABLED": True,
        "OIDC_RP_CLIENT_ID": CLIENT_ID,
        "OIDC_RP_CLIENT_SECRET": CLIENT_SECRET,
        "OIDC_RP_SIGN_ALGO": "RS256",
        "OIDC_OP_DISCOVERY_URL": provider.discovery_url,
        "OIDC_OP_AUTHORIZATION_ENDPOINT": "",
        "OIDC_OP_TOKEN_ENDPOINT": "",
        "OIDC_OP_USER_ENDPOINT": "",
        "OIDC_OP_JWKS_ENDPOINT": "",
        "OIDC_OP_LOGOUT_ENDPOINT": "",
        "OIDC_DEFAULT_ORG": "",
        "OIDC_GROUPS_CLAIM": "groups",
        "OIDC_PROVIDER_NAME": "Test IdP",
    }
    values.update(overrides)
    for name, value in values.items():
        setattr(settings, name, value)


def sign_in(client, provider: OidcProvider, sub: str, *, next_url: str = ""):
    """The browser's round trip, with Django's test client as the browser: start at the platform,
    submit the provider's form as ``sub``, come back to the callback (the platform then exchanges the
    code with the provider over HTTP). Returns the callback's response."""
    start = client.get("/oidc/authenticate/" + (f"?next={next_url}" if next_url else ""))
    assert start.status_code == 302, start.content[:2000]
    callback = urlsplit(provider.authorize(start["Location"], sub))
    return client.get(f"{callback.path}?{callback.query}")


@pytest.fixture(scope="session")
def oidc_provider():
    """One OIDC provider process for the whole session (users differ per test by subject)."""
    with running_provider() as provider:
        yield provider


@pytest.fixture
def oidc(oidc_provider, settings):
    """The session's provider, with single sign-on enabled and pointed at it for this test."""
    configure(settings, oidc_provider)
    yield oidc_provider
    from tenancy import sso

    sso.clear_discovery_cache()
