"""Helm charts in OCI registries, fetched by us through the distribution API (never by helm):
``/v2/<name>/tags/list`` for the versions, the manifest, then the chart layer's blob, its digest
checked. Authentication follows the registry's challenge: ``WWW-Authenticate: Bearer realm=...``
(the Docker token flow: the credential goes, as basic auth, only to the realm the registry names, and
the short-lived token back to the registry) or ``Basic``. Every connection goes through the
outbound-address policy.

``oci://host[:port]/path``: the chart is the URL's path, plus ``/<chart>`` when the source names one.
HTTPS always, except for a registry on a loopback address (plain HTTP, as Docker treats 127.0.0.0/8;
only where the outbound policy allows loopback at all: the suite and the demo).
"""

from __future__ import annotations

import hashlib
import json
import re
from urllib.parse import urlencode, urlsplit

from catalog.sources import http
from catalog.sources.errors import FetchFailed, PackageRefused
from paas import outbound

HELM_CHART_LAYER = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
MANIFEST_TYPES = "application/vnd.oci.image.manifest.v1+json"
_NAME = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="x",service="y"`` -> ("bearer", {"realm": "x", "service": "y"})."""
    scheme, _, rest = (header or "").strip().partition(" ")
    params = dict(re.findall(r'(\w+)="([^"]*)"', rest))
    return scheme.lower(), params


class Registry:
    """One OCI registry reached for one repository (its credential, CA and the policy)."""

    def __init__(self, repository):
        self.repository = repository
        parts = urlsplit((repository.url or "").strip())
        if parts.scheme.lower() != "oci" or not parts.hostname:
            raise PackageRefused({"repository": ["an OCI repository address is oci://host[:port]/path"]})
        self.host = parts.hostname
        self.netloc = parts.netloc.rpartition("@")[2]
        self.path = parts.path.strip("/")
        literal = outbound.literal_address(self.host)
        loopback = self.host == "localhost" or (literal is not None and literal.is_loopback)
        self.scheme = "http" if loopback else "https"
        self.pool = http.pool_manager(repository, purpose="OCI registry")
        self.tokens: dict[str, str] = {}

    @property
    def base(self) -> str:
        return f"{self.scheme}://{self.netloc}"

    def name_for(self, chart: str = "") -> str:
        name = "/".join(p for p in (self.path, chart.strip("/")) if p)
        if not name or not _NAME.match(name):
            raise PackageRefused({"chart": [f"{name or '(empty)'!r} is not an OCI repository name"]})
        return name

    def _credential_headers(self) -> dict[str, str]:
        repository = self.repository
        credential = http.credential_of(repository)
        if repository.auth in ("basic", "token") and credential:
            import base64

            raw = f"{repository.username or ''}:{credential}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}
        return {}

    def _token(self, params: dict[str, str], what: str) -> str:
        realm = params.get("realm", "")
        if urlsplit(realm).scheme not in ("https", "http"):
            raise FetchFailed(f"{what}: the registry names a token service that is not http(s)")
        key = params.get("scope", "")
        if key in self.tokens:
            return self.tokens[key]
        query = {k: v for k, v in params.items() if k in ("service", "scope")}
        url = realm + ("&" if "?" in realm else "?") + urlencode(query)
        answer = http.get(
            self.pool, url, what=f"{what}: the token service", headers=self._credential_headers()
        )
        try:
            document = json.loads(answer.data)
            token = document.get("token") or document.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise FetchFailed(f"{what}: the token service gave no token")
        self.tokens[key] = token
        return token

    def get(self, path: str, *, what: str, accept: str = "", limit: int = http.MAX_DOCUMENT_BYTES, follow=0):
        """GET ``/v2/...`` answering the registry's challenge once; FetchFailed naming what failed."""
        url = f"{self.base}{path}"
        headers = {"Accept": accept} if accept else {}
        if (
            self.repository.auth == "token"
            and http.credential_of(self.repository)
            and not self.repository.username
        ):
            headers["Authorization"] = f"Bearer {http.credential_of(self.repository)}"
        answer = http.get(
            self.pool, url, what=what, headers=headers, limit=limit, allow=(200, 401), follow=follow
        )
        if answer.status == 401:
            scheme, params = parse_challenge(answer.headers.get("WWW-Authenticate", ""))
            if scheme == "bearer" and params.get("realm"):
                headers["Authorization"] = f"Bearer {self._token(params, what)}"
            elif scheme == "basic" and self._credential_headers():
                headers.update(self._credential_headers())
            else:
                raise FetchFailed(f"{what} ({http.safe_url(url)}): {http.status_reason(401)}")
            answer = http.get(self.pool, url, what=what, headers=headers, limit=limit, follow=follow)
        return answer

    def ping(self) -> None:
        self.get("/v2/", what=f"OCI registry {self.base}")

    def tags(self, name: str) -> list[str]:
        answer = self.get(f"/v2/{name}/tags/list", what=f"OCI repository {self.netloc}/{name}")
        try:
            tags = json.loads(answer.data).get("tags") or []
        except (ValueError, AttributeError):
            raise FetchFailed(f"OCI repository {self.netloc}/{name}: the tag list is not JSON") from None
        return [t for t in tags if isinstance(t, str)]

    def chart(self, name: str, tag: str, limit: int) -> tuple[bytes, str]:
        """The chart archive of ``name:tag`` and its digest (checked)."""
        what = f"OCI chart {self.netloc}/{name}:{tag}"
        manifest = self.get(f"/v2/{name}/manifests/{tag}", what=what, accept=MANIFEST_TYPES)
        try:
            layers = json.loads(manifest.data).get("layers") or []
        except (ValueError, AttributeError):
            raise PackageRefused({"chart": [f"{what}: the manifest is not JSON"]}) from None
        charts = [
            layer
            for layer in layers
            if isinstance(layer, dict) and layer.get("mediaType") == HELM_CHART_LAYER
        ]
        if len(charts) != 1 or not isinstance(charts[0].get("digest"), str):
            raise PackageRefused({"chart": [f"{what}: not a Helm chart (no chart layer in its manifest)"]})
        digest = charts[0]["digest"]
        algorithm, _, expected = digest.partition(":")
        if algorithm != "sha256" or not re.fullmatch(r"[0-9a-f]{64}", expected):
            raise PackageRefused({"chart": [f"{what}: unsupported digest {digest[:80]!r}"]})
        blob = self.get(f"/v2/{name}/blobs/{digest}", what=what, limit=limit, follow=3)
        if hashlib.sha256(blob.data).hexdigest() != expected:
            raise FetchFailed(f"{what}: the chart's content does not match its digest")
        return blob.data, digest
