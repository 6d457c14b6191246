"""A cluster's Prometheus: the address operators give it, and the one client that queries it.

The platform reads GPU utilisation (the DCGM exporter's ``DCGM_FI_DEV_GPU_UTIL``) from the Prometheus
of each cluster whose operator configured ``Cluster.prometheus_url`` (billing/utilisation.py builds the
query). Both halves of the outbound-address policy apply (``paas/outbound.py``):

* :func:`clean_prometheus_url` when the address is given (studio form, API): http or https only, no
  user name or password in it (a credential in a URL ends up in logs and audit events; a Prometheus
  behind authentication is not supported here), no query or fragment, and ``outbound.check_url``'s
  answer (loopback, link-local, metadata addresses, names resolving there) as the field's error;
* :func:`instant_query` when connecting: through ``outbound.checked_pool_manager`` (checked again at
  connect time, no redirect followed, no proxy), short timeouts, no retry, the answer read up to
  :data:`MAX_BODY` bytes. Every failure raises :class:`PrometheusFailed` whose message names the host,
  never a credential.

:func:`prometheus_check` is the operators' "test connection": what Prometheus answered, in words.
"""

from __future__ import annotations

import datetime as dt
import json
from urllib.parse import urlencode, urlsplit, urlunsplit

import urllib3
from django.db import transaction
from urllib3 import exceptions as u3

from paas import authz, outbound
from paas.audit import audit_log
from paas.errors import ValidationFailed

PURPOSE = "Prometheus"
FIELD = "prometheus_url"
MAX_URL_LENGTH = 300  # the model field's max_length
TIMEOUT = urllib3.Timeout(connect=3.0, read=10.0)
MAX_BODY = 4 * 1024 * 1024  # an aggregated answer (one sample per namespace) is far smaller
UTILISATION_METRIC = "DCGM_FI_DEV_GPU_UTIL"


class PrometheusFailed(Exception):
    """What failed, in words fit for a page or a log line (never a credential)."""


def _refuse(reason: str, field: str):
    message = f"The {PURPOSE} address is refused: {reason}."
    raise outbound.OutboundRefused(message, fields={field: message})


def clean_prometheus_url(url: str | None, *, field: str = FIELD) -> str:
    """The address to store ("" = not configured), or :class:`paas.errors.ValidationFailed` on ``field``."""
    text = (url or "").strip()
    if not text:
        return ""
    if len(text) > MAX_URL_LENGTH:
        _refuse(f"it is longer than {MAX_URL_LENGTH} characters", field)
    try:
        parts = urlsplit(text)
        has_userinfo = parts.username is not None or parts.password is not None or "@" in parts.netloc
    except ValueError:
        _refuse("it is not a valid URL", field)
    if has_userinfo:
        _refuse("it must not carry a user name or password (user:password@)", field)
    if parts.query or parts.fragment or text.endswith(("?", "#")):
        _refuse("give the base address only, without a query or fragment", field)
    outbound.check_url(text, purpose=PURPOSE, field=field, schemes=("https", "http"))
    return text


def safe_url(url: str) -> str:
    """``url`` without userinfo, query or fragment (what a message or a log line may show)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        return urlunsplit((parts.scheme, host + (f":{parts.port}" if parts.port else ""), parts.path, "", ""))
    except ValueError:
        return "(an invalid URL)"


def _describe(exc: BaseException, host: str) -> str:
    """What a network error means (the registry check's wording), without any credential."""
    if isinstance(exc, u3.MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    if isinstance(exc, outbound.OutboundConnectionRefused):
        return f"refused by the outbound-address policy: {exc.reason.rstrip('.')}"
    if isinstance(exc, u3.NameResolutionError):
        return f"the name {host} does not resolve"
    if isinstance(exc, u3.NewConnectionError):  # a subclass of ConnectTimeoutError: test it first
        return (
            f"{host} refused the connection" if "refused" in str(exc).lower() else f"cannot connect to {host}"
        )
    if isinstance(exc, u3.ConnectTimeoutError | u3.ReadTimeoutError | TimeoutError):
        return f"{host} did not answer in time"
    if isinstance(exc, u3.SSLError):
        return f"TLS with {host} failed (a certificate that is not trusted or does not match the name)"
    if isinstance(exc, u3.ProtocolError):
        return f"{host} closed the connection"
    return f"cannot reach {host} ({exc.__class__.__name__})"


def _pool() -> outbound.CheckedPoolManager:
    return outbound.checked_pool_manager(purpose=PURPOSE, timeout=TIMEOUT, retries=False)


def _get_json(url: str, path: str, params: dict) -> dict:
    """GET ``<url>/<path>?<params>`` from a Prometheus; its JSON answer's ``data`` (bounded, checked)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError on a port that is not one)
    except ValueError:
        raise PrometheusFailed("the Prometheus address is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PrometheusFailed("the Prometheus address is not an http(s) URL")
    if parts.username is not None or parts.password is not None:
        raise PrometheusFailed("the Prometheus address carries a user name or password: not used")
    host = parts.hostname
    target = f"{safe_url(url).rstrip('/')}/{path}?{urlencode(params)}"
    try:
        response = _pool().request(
            "GET", target, headers={"Accept": "application/json"}, preload_content=False, redirect=False
        )
        try:
            body = response.read(MAX_BODY + 1, decode_content=True)
        finally:
            response.release_conn()
    except (u3.HTTPError, OSError) as exc:
        raise PrometheusFailed(_describe(exc, host)) from None
    if len(body) > MAX_BODY:
        raise PrometheusFailed(f"{host} answered more than {MAX_BODY // (1024 * 1024)} MiB")
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or "status" not in answer:
        raise PrometheusFailed(f"{host} answered HTTP {response.status}, not the Prometheus HTTP API")
    if response.status != 200 or answer.get("status") != "success":
        error = str(answer.get("error") or "")[:200]
        raise PrometheusFailed(f"{host} answered HTTP {response.status}{': ' + error if error else ''}")
    data = answer.get("data")
    if not isinstance(data, dict):
        raise PrometheusFailed(f"{host} answered without data")
    return data


def instant_query(url: str, promql: str, *, at: dt.datetime) -> list[tuple[dict, float]]:
    """Evaluate ``promql`` at ``at`` (``/api/v1/query``): ``[(labels, value), ...]`` of the vector."""
    params = {"query": promql, "time": f"{at.timestamp():.3f}", "timeout": "10s"}
    data = _get_json(url, "api/v1/query", params)
    if data.get("resultType") != "vector" or not isinstance(data.get("result"), list):
        raise PrometheusFailed(
            f"{urlsplit(url).hostname} answered a {data.get('resultType')!r}, not a vector"
        )
    samples = []
    for item in data["result"]:
        try:
            labels, value = item["metric"], float(item["value"][1])
        except (KeyError, IndexError, TypeError, ValueError):
            raise PrometheusFailed(f"{urlsplit(url).hostname} answered a sample it cannot be read") from None
        if isinstance(labels, dict):
            samples.append((labels, value))
    return samples


def describe_prometheus(url: str, *, now: dt.datetime) -> str:
    """What the Prometheus at ``url`` says about itself and its DCGM series (raises PrometheusFailed)."""
    build = _get_json(url, "api/v1/status/buildinfo", {})
    version = str(build.get("version") or "?")[:40]
    samples = instant_query(url, f"count({UTILISATION_METRIC})", at=now)
    series = int(samples[0][1]) if samples else 0
    if not series:
        return (
            f"Prometheus {version} answered, but it has no {UTILISATION_METRIC} series now: "
            "is the DCGM exporter scraped (with its per-pod labels)?"
        )
    return f"Prometheus {version} answered: {series} {UTILISATION_METRIC} series (GPU utilisation)."


def prometheus_check(*, actor, cluster, url: str | None = None, now: dt.datetime | None = None):
    """An operator tests the cluster's Prometheus (or ``url``, before saving it): ``(works, message)``.

    ``url`` is checked as an edit would be (a refusal is a field error, :class:`ValidationFailed`).
    The check is audited (the platform connected out on the operator's word)."""
    from django.utils import timezone

    authz.require_operator(actor)
    address = clean_prometheus_url(cluster.prometheus_url if url is None else url)
    if not address:
        raise ValidationFailed(
            "No Prometheus address.", fields={FIELD: "Set the cluster's Prometheus URL first."}
        )
    try:
        works, message = True, describe_prometheus(address, now=now or timezone.now())
    except PrometheusFailed as exc:
        works, message = False, f"The check failed: {exc}."
    with transaction.atomic():
        audit_log(
            actor=actor,
            action="cluster.prometheus_check",
            target=cluster,
            details={"url": safe_url(address), "works": works, "message": message},
        )
    return works, message
