"""The outbound-address policy: the one rule for every connection the platform opens to an address
someone gave it (clusters today; repositories, registries and audit sinks later).

Two halves, the same rule:

* :func:`check_url` when the address is given (registration, a form, a setting): refuses ``file://``,
  local paths and schemes the feature does not allow, resolves the host (every address) and refuses
  loopback, link-local, cloud metadata, unspecified, multicast and reserved addresses, in any
  spelling (``2130706433``, ``0177.0.0.1``, ``[::ffff:127.0.0.1]``, 6to4/NAT64 forms, a name that
  resolves there). Raises :class:`OutboundRefused`, a :class:`paas.errors.ValidationFailed` with a
  field message.
* :func:`checked_pool_manager` / :func:`checked_session` when connecting: every new connection
  resolves the name again, checks every address and connects to a checked address (so a name that
  resolves elsewhere at connect time, DNS rebinding, meets the same rule and cannot slip in between
  check and connect), TLS still verifies and sends the host name; redirects are not followed by the
  pool manager, and any that a caller follows go through the same check. Never through an
  environment proxy. Raises :class:`OutboundConnectionRefused` (a ``urllib3`` ``HTTPError``, so
  the callers' network error handling catches it, and it is not retried).

Private ranges (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7) stay allowed: real clusters and
registries live there, and the platform host's own services are reached through loopback, link-local
or metadata addresses, which stay refused. Operators widen the rule with settings:

* ``PAAS_OUTBOUND_ALLOW_LOOPBACK``: allow loopback (the demo and the suite: the local cluster is on
  127.0.0.1).
* ``PAAS_OUTBOUND_ALLOWED_NETWORKS``: CIDRs always allowed (e.g. a link-local range a cluster
  really uses), whatever their kind.
* ``PAAS_OUTBOUND_DENY_ALL``: refuse every outbound address (the API fuzz run uses it).
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.connection import create_connection
from urllib3.util.timeout import _DEFAULT_TIMEOUT

from paas.errors import ValidationFailed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Instance metadata services: they hand out the host's cloud credentials. Some sit in ranges that are
# otherwise allowed (100.64/10, fc00::/7), so they are named one by one.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, ...
        "169.254.170.2",  # AWS ECS task credentials
        "169.254.169.123",  # AWS time sync
        "169.254.169.253",  # AWS DNS
        "fd00:ec2::254",  # AWS IPv6 metadata
        "fd00:ec2::253",
        "fd00:ec2::123",
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
        "168.63.129.16",  # Azure wire server
    )
)
NAT64 = ipaddress.ip_network("64:ff9b::/96")
THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")  # 0.x.y.z reaches the local host on Linux
_LEGACY_IPV4 = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}\.?$", re.IGNORECASE)


class OutboundRefused(ValidationFailed):
    """An address given to the platform that the outbound-address policy refuses."""

    code = "outbound_refused"


class OutboundConnectionRefused(urllib3.exceptions.HTTPError):
    """A connection the outbound-address policy refused at connect time (not retried)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class OutboundRequestRefused(requests.exceptions.ConnectionError):
    """The same refusal met through :func:`checked_session` (a ``requests`` connection error)."""

    def __init__(self, reason: str, **kwargs):
        super().__init__(reason, **kwargs)
        self.reason = reason


@dataclass(frozen=True)
class Policy:
    deny_all: bool = False
    allow_loopback: bool = False
    allowed_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()


def current_policy() -> Policy:
    """The policy from the settings, read on every check (tests and operators may change them)."""
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    networks = getattr(settings, "PAAS_OUTBOUND_ALLOWED_NETWORKS", ()) or ()
    if isinstance(networks, str):
        networks = [n.strip() for n in networks.split(",") if n.strip()]
    try:
        parsed = tuple(ipaddress.ip_network(n, strict=False) for n in networks)
    except ValueError as exc:
        raise ImproperlyConfigured(f"PAAS_OUTBOUND_ALLOWED_NETWORKS: {exc}") from exc
    return Policy(
        deny_all=bool(getattr(settings, "PAAS_OUTBOUND_DENY_ALL", False)),
        allow_loopback=bool(getattr(settings, "PAAS_OUTBOUND_ALLOW_LOOPBACK", False)),
        allowed_networks=parsed,
    )


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, 6to4, NAT64), if any."""
    if ip.version != 6:
        return None
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip.sixtofour:
        return ip.sixtofour
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if int(ip) >> 32 == 0 and int(ip) > 1:  # IPv4-compatible ::a.b.c.d (deprecated, still routed)
        return ipaddress.IPv4Address(int(ip))
    return None


def _kind(ip: IPAddress) -> tuple[str, str] | None:
    """(kind, description) of an address the policy refuses by default, or None if it is allowed."""
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        return _kind(embedded)
    if ip in METADATA_ADDRESSES:
        return "metadata", "a cloud metadata address"
    if ip.is_unspecified or (ip.version == 4 and ip in THIS_NETWORK):
        return "unspecified", "an unspecified address"
    if ip.is_loopback:
        return "loopback", "a loopback address"
    if ip.is_link_local:
        return "link-local", "a link-local address"
    if ip.is_multicast:
        return "multicast", "a multicast address"
    if ip.version == 4 and (ip.is_reserved or ip == ipaddress.IPv4Address("255.255.255.255")):
        return "reserved", "a reserved address"
    return None


def address_refusal(ip: IPAddress, policy: Policy | None = None, *, spelled: str = "") -> str | None:
    """Why ``ip`` is refused (a sentence fragment), or None if the policy allows it.

    ``spelled`` is how the address was given (a name, an odd spelling), for the message.
    """
    policy = policy or current_policy()
    if policy.deny_all:
        return "every outbound address is refused here (PAAS_OUTBOUND_DENY_ALL)"
    embedded = _embedded_ipv4(ip)
    candidates = [ip] + ([embedded] if embedded is not None else [])
    if any(c.version == n.version and c in n for c in candidates for n in policy.allowed_networks):
        return None
    kind = _kind(ip)
    if kind is None:
        return None
    name, description = kind
    if name == "loopback" and policy.allow_loopback:
        return None
    setting = "PAAS_OUTBOUND_ALLOW_LOOPBACK" if name == "loopback" else "PAAS_OUTBOUND_ALLOWED_NETWORKS"
    hint = f" (an operator may allow it with {setting})"
    shown = str(embedded or ip)
    if spelled and literal_address(spelled) is None:
        return f"{spelled} resolves to {shown}, {description}{hint}"
    if spelled and spelled.lower() != shown:
        return f"{spelled} is {shown}, {description}{hint}"
    return f"{shown} is {description}{hint}"


def literal_address(host: str) -> IPAddress | None:
    """``host`` as an IP address if it is one in any spelling the resolver accepts, else None."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    if _LEGACY_IPV4.match(host):  # 2130706433, 0x7f000001, 0177.0.0.1, 127.1: inet_aton spellings
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host.rstrip(".")))
        except OSError:
            return None
    return None


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` stands for (an IP literal in any spelling, or a name looked up now).

    Raises ``socket.gaierror`` when the name does not resolve.
    """
    literal = literal_address(host)
    if literal is not None:
        return [literal]
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: dict[str, IPAddress] = {}
    for family, _type, _proto, _name, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            seen.setdefault(sockaddr[0], ipaddress.ip_address(sockaddr[0].split("%", 1)[0]))
    return list(seen.values())


def host_refusal(host: str, port: int, policy: Policy | None = None) -> tuple[str | None, list[IPAddress]]:
    """(why ``host`` is refused or None, its checked addresses). Every address must be allowed."""
    policy = policy or current_policy()
    if policy.deny_all:
        return address_refusal(ipaddress.IPv4Address(0), policy), []
    try:
        addresses = resolve(host, port)
    except (socket.gaierror, UnicodeError) as exc:
        return f"the name {host} does not resolve ({getattr(exc, 'strerror', None) or exc})", []
    if not addresses:
        return f"the name {host} has no IP address", []
    for ip in addresses:
        reason = address_refusal(ip, policy, spelled=host.strip("[]"))
        if reason:
            return reason, addresses
    return None, addresses


@dataclass(frozen=True)
class CheckedURL:
    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[IPAddress, ...]


DEFAULT_PORTS = {"http": 80, "https": 443, "ssh": 22, "git": 9418}


def check_url(
    url: str, *, purpose: str, field: str = "url", schemes: tuple[str, ...] = ("https", "http")
) -> CheckedURL:
    """Check an address given to the platform before it is stored or used.

    ``purpose`` names the feature in the message ("cluster server"); ``field`` is the form/API field
    the message belongs to; ``schemes`` are the schemes the feature accepts (``file`` never is).
    """

    def refuse(reason: str):
        message = f"The {purpose} address is refused: {reason}."
        raise OutboundRefused(message, fields={field: message})

    text = (url or "").strip()
    if not text:
        refuse("it is empty")
    if any(ord(ch) < 33 for ch in text):
        refuse("it contains spaces or control characters")
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme == "file" or (not scheme and (text.startswith(("/", ".", "~", "\\")) or ":\\" in text)):
        refuse("local files and paths are never reached")
    if not scheme or "://" not in text:
        refuse(f"it is not a URL (expected {' or '.join(s + '://' for s in schemes)})")
    if scheme not in schemes:
        refuse(f"the scheme {scheme}:// is not allowed here (use {' or '.join(s + '://' for s in schemes)})")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        refuse("its port is not valid")
    if not host:
        refuse("it has no host")
    port = port or DEFAULT_PORTS.get(scheme, 443)
    reason, addresses = host_refusal(host, port)
    if reason:
        refuse(reason)
    return CheckedURL(url=text, scheme=scheme, host=host, port=port, addresses=tuple(addresses))


# --- connect time -----------------------------------------------------------------------------------


def connect_checked(
    host: str,
    port: int,
    *,
    purpose: str,
    timeout=_DEFAULT_TIMEOUT,
    source_address=None,
    socket_options=None,
) -> socket.socket:
    """Open a TCP connection to ``host`` under the policy: resolve now, check every address, connect to
    a checked address (never resolving again), and check the peer once connected."""
    reason, addresses = host_refusal(host, port)
    if reason:
        raise OutboundConnectionRefused(f"The {purpose} address is refused: {reason}.")
    last: OSError | None = None
    for ip in addresses:
        try:
            sock = create_connection((str(ip), port), timeout, source_address, socket_options)
        except OSError as exc:
            last = exc
            continue
        peer = ipaddress.ip_address(sock.getpeername()[0].split("%", 1)[0])
        if peer != ip or address_refusal(peer):
            sock.close()
            raise OutboundConnectionRefused(f"The {purpose} connection reached {peer}, which is refused.")
        return sock
    raise last or OSError(f"No address to connect to for {host}")


class _CheckedConnectionMixin:
    outbound_purpose = "outbound"

    def _new_conn(self) -> socket.socket:
        try:
            return connect_checked(
                self._dns_host,
                self.port,
                purpose=self.outbound_purpose,
                timeout=self.timeout,
                source_address=self.source_address,
                socket_options=self.socket_options,
            )
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        except TimeoutError as exc:
            raise ConnectTimeoutError(self, f"Connection to {self.host} timed out.") from exc
        except OSError as exc:
            raise NewConnectionError(self, f"Failed to establish a new connection: {exc}") from exc


@functools.cache
def _pool_classes(purpose: str) -> dict[str, type]:
    http_conn = type("CheckedHTTPConnection", (_CheckedConnectionMixin, HTTPConnection), {})
    https_conn = type("CheckedHTTPSConnection", (_CheckedConnectionMixin, HTTPSConnection), {})
    http_conn.outbound_purpose = https_conn.outbound_purpose = purpose
    return {
        "http": type("CheckedHTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}),
        "https": type("CheckedHTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}),
    }


class CheckedPoolManager(urllib3.PoolManager):
    """A ``urllib3.PoolManager`` whose every new connection goes through :func:`connect_checked` and
    which never follows redirects (the caller sees the 3xx answer)."""

    def __init__(self, *args, purpose: str = "outbound", **kwargs):
        super().__init__(*args, **kwargs)
        self.pool_classes_by_scheme = _pool_classes(purpose)

    def urlopen(self, method, url, redirect=True, **kw):
        return super().urlopen(method, url, redirect=False, **kw)


def checked_pool_manager(*, purpose: str, **pool_kwargs) -> CheckedPoolManager:
    """A checked pool manager; ``pool_kwargs`` as for ``urllib3.PoolManager`` (TLS settings, retries)."""
    # Proxy and SOCKS settings (``_proxy``, ``_socks_options``, ...) are dropped: no proxy, ever.
    pool_kwargs = {k: v for k, v in pool_kwargs.items() if not k.startswith("_") and k != "proxy_url"}
    retries = pool_kwargs.get("retries")
    if retries is None:
        retries = urllib3.Retry.DEFAULT
    if isinstance(retries, urllib3.Retry):
        pool_kwargs["retries"] = retries.new(redirect=0, raise_on_redirect=False)
    return CheckedPoolManager(purpose=purpose, **pool_kwargs)


def checked_session(*, purpose: str):
    """A ``requests.Session`` under the policy: every connection (each redirect hop included) is
    checked, the environment's proxies are ignored, and only http(s) is mounted. A refusal raises
    :class:`OutboundRequestRefused`, a ``requests.ConnectionError``."""
    from requests.adapters import HTTPAdapter

    class CheckedAdapter(HTTPAdapter):
        def init_poolmanager(self, connections, maxsize, block=False, **pool_kwargs):
            self.poolmanager = CheckedPoolManager(
                num_pools=connections, maxsize=maxsize, block=block, purpose=purpose, **pool_kwargs
            )

        def send(self, request, *args, **kwargs):
            kwargs["proxies"] = {}
            try:
                return super().send(request, *args, **kwargs)
            except OutboundConnectionRefused as exc:
                raise OutboundRequestRefused(exc.reason, request=request) from exc

    session = requests.Session()
    session.trust_env = False
    session.adapters.clear()
    session.mount("https://", CheckedAdapter())
    session.mount("http://", CheckedAdapter())
    return session
