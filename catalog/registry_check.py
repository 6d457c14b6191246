"""Talking to container registries: the connectivity check and Amazon ECR's token exchange.

* :func:`check` asks the registry's Docker Registry HTTP API V2 base endpoint, ``/v2/``, whether the
  credential works, the way a container runtime does: an anonymous request first; on ``401`` with
  ``WWW-Authenticate: Basic`` the request again with the credential; on ``WWW-Authenticate: Bearer
  realm=...,service=...,scope=...`` (distribution's token auth, Docker Hub's ``auth.docker.io``,
  Harbor, GitLab, Artifactory, ...) a token from the realm with the credential, then ``/v2/`` with the
  token. Where the token server says what it granted (a JWT's ``access`` claim), a credential that may
  also *push* is reported: what is delivered into tenants' namespaces must be pull-only.
* :func:`ecr_token` exchanges an Amazon ECR registry's access key (username: the access key id,
  credential: the secret access key) for a registry token (``GetAuthorizationToken``, 12 hours), with a
  Signature Version 4 request (:func:`sigv4_headers`, checked against AWS's published examples).

Every connection goes through the outbound-address policy (``paas.outbound.checked_pool_manager``),
the token realm included (a registry cannot make the platform reach its own host's services), no
redirect is followed, and a credential is never sent to a plain-HTTP token realm of an HTTPS registry.
Messages say what failed (the name does not resolve, refused by the policy, TLS, timeout, 401/403)
and never carry the credential or a token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from datetime import UTC, datetime
from urllib.parse import quote, urlencode, urlsplit

import urllib3
from django.conf import settings
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

from catalog.models import ContainerRegistry
from paas import outbound

TIMEOUT = urllib3.Timeout(connect=5, read=15)
DOCKER_HUB_HOST = "registry-1.docker.io"
ECR_HOST = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr(-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?$"
)
ECR_TARGET = "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken"
MAX_BODY = 1 << 20


class CheckFailed(Exception):
    """What failed, in words fit for the studio (never a credential)."""


# --- addresses ----------------------------------------------------------------------------------------


def registry_host(registry: ContainerRegistry) -> str:
    """``host[:port]`` of the registry's API (Docker Hub's is ``registry-1.docker.io``)."""
    host = registry.endpoint.split("/", 1)[0]
    if registry.provider == ContainerRegistry.Provider.DOCKERHUB and host in (
        "",
        "docker.io",
        "index.docker.io",
    ):
        return DOCKER_HUB_HOST
    return host


def ecr_region(endpoint: str) -> str | None:
    match = ECR_HOST.match(endpoint.split("/", 1)[0])
    return match["region"] if match else None


def _pool() -> urllib3.PoolManager:
    return outbound.checked_pool_manager(purpose="container registry", timeout=TIMEOUT, retries=False)


def _network_failure(exc: Exception, host: str) -> str:
    if isinstance(exc, MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    if isinstance(exc, outbound.OutboundConnectionRefused):
        return exc.reason
    if isinstance(exc, NameResolutionError):
        return f"the name {host.rsplit(':', 1)[0]} does not resolve"
    if isinstance(exc, NewConnectionError):  # (a subclass of ConnectTimeoutError)
        refused = "refused" in str(exc).lower()
        return f"{host} refused the connection" if refused else f"cannot connect to {host}"
    if isinstance(exc, ConnectTimeoutError | ReadTimeoutError | TimeoutError):
        return f"{host} did not answer in time"
    if isinstance(exc, SSLError):
        return f"TLS with {host} failed (a certificate that is not trusted or does not match the name)"
    if isinstance(exc, NewConnectionError):
        return (
            f"{host} refused the connection" if "refused" in str(exc).lower() else f"cannot connect to {host}"
        )
    if isinstance(exc, ProtocolError):
        return f"{host} closed the connection"
    return f"cannot reach {host} ({exc.__class__.__name__})"


def _request(pool, method: str, url: str, *, headers: dict | None = None, body: bytes | None = None):
    host = urlsplit(url).netloc
    try:
        response = pool.request(
            method, url, headers=headers or {}, body=body, preload_content=False, redirect=False
        )
        data = response.read(MAX_BODY + 1, decode_content=True)
        response.release_conn()
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise CheckFailed(_network_failure(exc, host)) from None
    return response, data[:MAX_BODY]


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


# --- the /v2/ check -----------------------------------------------------------------------------------


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="x",service="y"`` -> ``("bearer", {"realm": "x", "service": "y"})``."""
    scheme, _, rest = (header or "").strip().partition(" ")
    params = dict(re.findall(r'([A-Za-z_]+)\s*=\s*"([^"]*)"', rest))
    return scheme.lower(), params


def _credentials(registry: ContainerRegistry, pool) -> tuple[str, str] | None:
    if registry.provider == ContainerRegistry.Provider.ECR:
        token, _expires = ecr_token(registry, pool=pool)
        return "AWS", token
    if not registry.credential:
        return None
    return registry.username, registry.credential.reveal()


def _granted_push(token: str) -> bool:
    """Whether a registry token (a JWT with distribution's ``access`` claim) grants push or ``*``."""
    parts = token.split(".")
    if len(parts) != 3:
        return False
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, TypeError):
        return False
    access = claims.get("access") if isinstance(claims, dict) else None
    return any(
        isinstance(a, dict) and any(x in ("push", "*") for x in a.get("actions") or []) for a in access or []
    )


def _token(pool, registry: ContainerRegistry, challenge: dict, credentials, *, scope: str = "") -> str:
    realm = challenge.get("realm", "")
    try:
        checked = outbound.check_url(realm, purpose="registry token server", field="endpoint")
    except outbound.OutboundRefused as exc:
        raise CheckFailed(exc.message) from None
    if credentials and registry.scheme == ContainerRegistry.Scheme.HTTPS and checked.scheme != "https":
        raise CheckFailed(f"the token server {checked.host} is plain HTTP: the credential is not sent there")
    query = {"service": challenge["service"]} if challenge.get("service") else {}
    if scope or challenge.get("scope"):
        query["scope"] = scope or challenge["scope"]
    headers = {"Authorization": _basic(*credentials)} if credentials else {}
    url = realm + ("&" if "?" in realm else "?") + urlencode(query) if query else realm
    response, data = _request(pool, "GET", url, headers=headers)
    if response.status in (401, 403):
        raise CheckFailed(
            f"the token server {checked.host} refused the username or password (HTTP {response.status})"
        )
    if response.status != 200:
        raise CheckFailed(f"the token server {checked.host} answered HTTP {response.status}")
    try:
        body = json.loads(data)
        token = body.get("token") or body.get("access_token")
    except (ValueError, AttributeError):
        token = None
    if not isinstance(token, str) or not token:
        raise CheckFailed(f"the token server {checked.host} answered without a token")
    return token


def _check(registry: ContainerRegistry) -> str:
    pool = _pool()
    host = registry_host(registry)
    base = f"{registry.scheme}://{host}/v2/"
    credentials = _credentials(registry, pool)
    response, _ = _request(pool, "GET", base)
    if response.status == 200:
        if credentials is None:
            return f"{host} answered /v2/ anonymously (public; no credential to deliver)."
        response, _ = _request(pool, "GET", base, headers={"Authorization": _basic(*credentials)})
        if response.status == 200:
            return f"{host} answered /v2/ (it also allows anonymous access)."
    if response.status != 401:
        raise CheckFailed(
            f"{host} answered /v2/ with HTTP {response.status}: is it a Docker registry (v2 API)?"
        )
    scheme, challenge = parse_challenge(response.headers.get("WWW-Authenticate", ""))
    if scheme == "basic":
        if credentials is None:
            raise CheckFailed(f"{host} asks for a username and password, and none is set")
        response, _ = _request(pool, "GET", base, headers={"Authorization": _basic(*credentials)})
        if response.status == 200:
            return f"{host} accepted the credential (basic authentication)."
        raise CheckFailed(f"{host} refused the username or password (HTTP {response.status})")
    if scheme != "bearer" or not challenge.get("realm"):
        raise CheckFailed(
            f"{host} asks for an authentication it does not name (WWW-Authenticate: {scheme or '-'})"
        )
    token = _token(pool, registry, challenge, credentials)
    response, _ = _request(pool, "GET", base, headers={"Authorization": f"Bearer {token}"})
    if response.status != 200:
        raise CheckFailed(f"{host} refused the token its token server issued (HTTP {response.status})")
    realm = urlsplit(challenge["realm"]).netloc
    if credentials is None:
        return f"{host} answered /v2/ with an anonymous token from {realm} (no credential to deliver)."
    message = f"{host} accepted the credential (token from {realm})."
    prefix = registry.endpoint.split("/", 1)[1].strip("/") + "/" if "/" in registry.endpoint else ""
    probe = f"repository:{prefix}paas-pull-check:pull,push"
    try:
        pushes = _granted_push(_token(pool, registry, challenge, credentials, scope=probe))
    except CheckFailed:
        pushes = False
    if pushes:
        message += (
            " Warning: this credential may also push images. Tenants can read what is delivered to their "
            "namespaces: replace it with a pull-only robot account or token."
        )
    return message


def check(registry: ContainerRegistry) -> tuple[bool, str]:
    """(works, what happened) for ``registry``'s endpoint and credential."""
    try:
        return True, _check(registry)
    except CheckFailed as exc:
        return False, f"The check failed: {exc}."


# --- Amazon ECR -----------------------------------------------------------------------------------------


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def sigv4_headers(
    *,
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    region: str,
    service: str,
    access_key: str,
    secret_key: str,
    now: datetime | None = None,
) -> dict[str, str]:
    """``headers`` plus ``Host``, ``X-Amz-Date`` and the ``Authorization`` of AWS Signature Version 4
    (every header given is signed). Our own: botocore's signer cannot be installed beside the
    ``kubernetes`` client (python-dateutil below 3 against 3 or later); checked against AWS's examples."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    parts = urlsplit(url)
    signed = {k.lower(): " ".join(str(v).split()) for k, v in headers.items()}
    signed["host"], signed["x-amz-date"] = parts.netloc, amz_date
    names = sorted(signed)
    pairs = sorted(
        (quote(k, safe="-_.~"), quote(v, safe="-_.~"))
        for k, _, v in (item.partition("=") for item in parts.query.split("&") if item)
    )
    canonical = "\n".join(
        [
            method.upper(),
            quote(parts.path or "/", safe="/-_.~"),
            "&".join(f"{k}={v}" for k, v in pairs),
            "".join(f"{n}:{signed[n]}\n" for n in names),
            ";".join(names),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(_hmac(_hmac(_hmac(f"AWS4{secret_key}".encode(), day), region), service), "aws4_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    authorization = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={';'.join(names)}, "
        f"Signature={signature}"
    )
    return {**headers, "Host": parts.netloc, "X-Amz-Date": amz_date, "Authorization": authorization}


def ecr_api_url(region: str) -> str:
    return settings.PAAS_ECR_API_URL.format(region=region)


def ecr_token(registry: ContainerRegistry, *, pool=None) -> tuple[str, datetime]:
    """Exchange the registry's access key for a registry token: ``(password, expires at)`` (the
    username that goes with it is ``AWS``). Raises :class:`CheckFailed`."""
    region = ecr_region(registry.endpoint)
    if region is None:
        raise CheckFailed(
            "the endpoint is not an Amazon ECR registry (<account>.dkr.ecr.<region>.amazonaws.com)"
        )
    if not registry.username or not registry.credential:
        raise CheckFailed("Amazon ECR needs the access key id (username) and the secret access key")
    url = ecr_api_url(region)
    try:
        outbound.check_url(url, purpose="Amazon ECR API", field="endpoint")
    except outbound.OutboundRefused as exc:
        raise CheckFailed(exc.message) from None
    body = b"{}"
    headers = sigv4_headers(
        method="POST",
        url=url,
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": ECR_TARGET},
        body=body,
        region=region,
        service="ecr",
        access_key=registry.username,
        secret_key=registry.credential.reveal(),
    )
    response, data = _request(pool or _pool(), "POST", url, headers=headers, body=body)
    try:
        answer = json.loads(data) if data else {}
    except ValueError:
        answer = {}
    if response.status != 200:
        kind = str(answer.get("__type", "")).rsplit("#", 1)[-1] if isinstance(answer, dict) else ""
        raise CheckFailed(
            f"Amazon ECR refused the access key (HTTP {response.status}{', ' + kind if kind else ''})"
        )
    try:
        item = answer["authorizationData"][0]
        user, _, password = base64.b64decode(item["authorizationToken"]).decode().partition(":")
        expires = datetime.fromtimestamp(float(item["expiresAt"]), UTC)
    except (KeyError, IndexError, TypeError, ValueError):
        raise CheckFailed("Amazon ECR answered without a registry token") from None
    if user != "AWS" or not password:
        raise CheckFailed("Amazon ECR answered with a token of an unknown form")
    return password, expires
