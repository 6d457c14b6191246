"""HTTP for the sources: every request through the outbound-address policy
(``paas.outbound.checked_pool_manager``: resolved and checked at connect time, no redirect followed, no
proxy), the repository's CA certificate if it has one, bounded timeouts and response sizes, the
credential only in an ``Authorization`` header, and one wording of what failed (DNS, refused by the
policy, connection refused, TLS, timeout, 401/403, 404) that never carries a credential.
"""

from __future__ import annotations

import base64
import socket
import ssl
from urllib.parse import urljoin, urlsplit, urlunsplit

import urllib3
from urllib3 import exceptions as u3

from catalog.sources.errors import FetchFailed, PackageRefused
from paas import outbound
from paas.secrets import UnreadableSecret

TIMEOUT = urllib3.Timeout(connect=10.0, read=60.0)
MAX_INDEX_BYTES = 20 * 1024 * 1024  # a Helm repository's index.yaml
MAX_DOCUMENT_BYTES = 1024 * 1024  # token answers, tag lists, manifests
RETRIES = urllib3.Retry(total=1, connect=1, read=0, redirect=0, status=0, raise_on_status=False)


def pool_manager(repository, *, purpose: str, headers: dict | None = None) -> outbound.CheckedPoolManager:
    """A checked pool manager for ``repository`` (its CA certificate trusted if it has one)."""
    kwargs: dict = {"timeout": TIMEOUT, "retries": RETRIES, "headers": headers or {}}
    ca = (getattr(repository, "ca_certificate", "") or "").strip()
    if ca:
        kwargs["cert_reqs"] = "CERT_REQUIRED"
        kwargs["ca_cert_data"] = ca
    return outbound.checked_pool_manager(purpose=purpose, **kwargs)


def credential_of(repository) -> str:
    """The repository's credential in clear (an encrypted field reads as a ``paas.secrets.Secret``).
    One whose organization's keys were destroyed is a :class:`FetchFailed` saying so."""
    value = getattr(repository, "credential", "") or ""
    if isinstance(value, UnreadableSecret):
        raise FetchFailed(f"The repository's credential cannot be used: {value.message}")
    return value.reveal() if hasattr(value, "reveal") else str(value)


def auth_headers(repository) -> dict[str, str]:
    """The ``Authorization`` header of the repository's credential (basic or bearer), or none."""
    auth = getattr(repository, "auth", "none")
    credential = credential_of(repository)
    if auth == "basic" and credential:
        raw = f"{repository.username or ''}:{credential}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}
    if auth == "token" and credential:
        return {"Authorization": f"Bearer {credential}"}
    return {}


def safe_url(url: str) -> str:
    """``url`` without userinfo or query (what may appear in a message)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = host + (f":{parts.port}" if parts.port else "")
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    except ValueError:
        return "(an invalid URL)"


def describe(exc: BaseException) -> str:
    """What a network error means, in a sentence fragment without any credential."""
    seen = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, outbound.OutboundConnectionRefused):
            reason = current.reason.partition(" is refused: ")[2] or current.reason
            return f"refused by the outbound-address policy: {reason.rstrip('.')}"
        if isinstance(current, u3.NameResolutionError | socket.gaierror):
            return "the name does not resolve (DNS)"
        if isinstance(current, u3.SSLError | ssl.SSLError):
            detail = getattr(current, "reason", None) or (current.args[0] if current.args else "")
            text = str(detail)
            if "mismatch" in text or "doesn't match" in text:
                return "TLS: the server's certificate is not valid for this host name"
            if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
                return "TLS: the server's certificate is not trusted (add the CA certificate of its issuer)"
            if "WRONG_VERSION_NUMBER" in text or "record layer failure" in text:
                return "TLS: the server does not speak TLS on this port (http:// instead of https://?)"
            return "TLS: the secure connection failed"
        if isinstance(current, u3.NewConnectionError):  # before timeouts: it is a ConnectTimeoutError
            text = str(current)
            if "refused" in text.lower():
                return "the connection was refused (nothing listens there)"
            if "timed out" not in text.lower():
                return "the connection could not be made"
        if isinstance(current, u3.ConnectTimeoutError | u3.ReadTimeoutError | TimeoutError | socket.timeout):
            return "the connection timed out"
        if isinstance(current, ConnectionRefusedError):
            return "the connection was refused (nothing listens there)"
        if isinstance(current, u3.NewConnectionError):
            text = str(current)
            if "refused" in text.lower():
                return "the connection was refused (nothing listens there)"
            return "the connection could not be made"
        if isinstance(current, u3.ProtocolError):
            return "the server closed the connection"
        if isinstance(current, u3.MaxRetryError) and current.reason is not None:
            current = current.reason
            continue
        current = current.__cause__ or current.__context__
    return "the connection failed"


def status_reason(status: int) -> str:
    if status == 401:
        return "401 Unauthorized: the credential is missing or wrong"
    if status == 403:
        return "403 Forbidden: the credential may not read this"
    if status == 404:
        return "404 Not Found"
    if 300 <= status < 400:
        return f"{status}: the server redirects (redirects are not followed; give the final address)"
    if status == 429:
        return "429: too many requests (rate limited)"
    if status >= 500:
        return f"{status}: the server failed"
    return f"unexpected answer {status}"


def get(
    pool: urllib3.PoolManager,
    url: str,
    *,
    what: str,
    headers: dict | None = None,
    limit: int = MAX_DOCUMENT_BYTES,
    allow: tuple[int, ...] = (200,),
    follow: int = 0,
) -> urllib3.BaseHTTPResponse:
    """GET ``url`` with the body read (at most ``limit`` bytes) into ``.data``; any failure or a status
    not in ``allow`` raises FetchFailed naming ``what`` and the reason.

    ``follow``: how many redirects to follow (each hop through the same checked pool manager; the
    ``Authorization`` header is dropped when a hop leaves the origin, as for a registry's blob
    redirected to object storage)."""
    headers = dict(headers or {})
    start = origin(url)
    for _hop in range(follow + 1):
        try:
            response = pool.request("GET", url, headers=headers, preload_content=False, redirect=False)
        except (u3.HTTPError, OSError) as exc:
            raise FetchFailed(f"{what} ({safe_url(url)}): {describe(exc)}") from None
        location = response.headers.get("Location")
        if response.status in (301, 302, 303, 307, 308) and location and _hop < follow:
            response.drain_conn()
            response.release_conn()
            url = urljoin(url, location)
            if urlsplit(url).scheme not in ("http", "https"):
                raise FetchFailed(f"{what}: redirected to a scheme other than http(s)")
            if origin(url) != start:
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            continue
        break
    try:
        body = read_bounded(response, limit, what=what)
    except (u3.HTTPError, OSError) as exc:
        raise FetchFailed(f"{what} ({safe_url(url)}): {describe(exc)}") from None
    finally:
        response.release_conn()
    response._body = body  # .data returns what was read
    if response.status not in allow:
        raise FetchFailed(f"{what} ({safe_url(url)}): {status_reason(response.status)}")
    return response


def origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or ""), parts.port


def read_bounded(response, limit: int, *, what: str) -> bytes:
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PackageRefused({"source": [f"{what}: larger than {limit // 1024} KiB"]})
    chunks, total = [], 0
    for chunk in response.stream(64 * 1024):
        total += len(chunk)
        if total > limit:
            raise PackageRefused({"source": [f"{what}: larger than {limit // 1024} KiB"]})
        chunks.append(chunk)
    return b"".join(chunks)
