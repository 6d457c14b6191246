"""Every list and page whose cost must not grow with the data (issue 20), enumerated from the URL
configuration and the studio's registry: the API's lists (``/api/v1/``: a viewset's list, or a GET view
of the whole collection or of one workspace), the portal's workspace pages (arguments: a workspace and a
deployment kind) and the changelist of every ModelAdmin of the studio. Used by
tests/integration/test_query_scale.py (same number of queries at two sizes) and
tests/benchmarks/bench_pages.py (p95 at the full data set), so a new endpoint is measured by both
without editing them.
"""

import re
from dataclasses import dataclass

from django.contrib import admin
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from instances import service_views

# Routes enumerated below that are not measured, and why.
NOT_MEASURED = {
    "portal:instances:service-launch": "a catalog card's button: a redirect to service-new (measured) that "
    "needs ?profile=",
    "studio:paas.auditsettings": "one row: its changelist redirects to the change form",
}
# Pages that answer a redirect, measured all the same (what they read to choose where to).
EXPECTED_STATUS = {"portal:tenancy:home": 302}

# The ``kind`` of the portal's deployment pages measured: the data set's (its services are notebooks);
# the other kinds are the same views filtering on another type.
SERVICE_KINDS = ("notebooks",)
if not set(SERVICE_KINDS) <= set(service_views.KINDS):
    raise ImportError("SERVICE_KINDS names a deployment kind the portal does not have")


@dataclass(frozen=True)
class Endpoint:
    area: str  # api, portal, studio
    name: str  # the route's name (studio: the model's label)
    route: str  # the URL pattern, with ``{project_id}`` and ``{kind}`` to fill
    view_module: str = ""  # the view's module (the portal's PAGE_SIZE lives there)

    @property
    def id(self) -> str:
        return f"{self.area}:{self.name}"


def _walk(patterns, prefix="", namespace=""):
    for p in patterns:
        if isinstance(p, URLResolver):
            ns = f"{namespace}:{p.namespace}" if p.namespace else namespace
            yield from _walk(p.url_patterns, prefix + str(p.pattern), ns.lstrip(":"))
        elif isinstance(p, URLPattern):
            yield prefix + str(p.pattern), p, namespace


def _route(raw: str) -> str:
    route = raw.replace("^", "").replace("$", "").replace("\\Z", "")
    route = re.sub(r"<int:(\w+)>|\(\?P<(\w+)>[^)]*\)|<slug:(\w+)>|<str:(\w+)>", r"{\1\2\3\4}", route)
    return "/" + route


def _kwargs(route: str) -> set[str]:
    return set(re.findall(r"\{(\w+)\}", route))


def api_endpoints() -> list[Endpoint]:
    found = []
    for raw, pattern, _ns in _walk(get_resolver().url_patterns):
        route = _route(raw)
        if not route.startswith("/api/v1/") or not pattern.name or not _kwargs(route) <= {"project_id"}:
            continue
        callback = pattern.callback
        cls = getattr(callback, "cls", None)
        if cls is None:
            continue
        actions = getattr(callback, "actions", None)
        if actions is not None:  # a viewset route: its list only
            if actions.get("get") != "list":
                continue
        elif "get" not in {m.lower() for m in getattr(cls, "http_method_names", ())} or not hasattr(
            cls, "get"
        ):
            continue
        if route.endswith(".{format}") or "{format}" in route:
            continue
        found.append(Endpoint("api", pattern.name, route, callback.__module__))
    return sorted(found, key=lambda e: e.route)


def portal_endpoints() -> list[Endpoint]:
    found = []
    for raw, pattern, ns in _walk(get_resolver().url_patterns):
        route = _route(raw)
        if route.startswith(("/api/", "/studio/", "/webauthn/")) or not pattern.name:
            continue
        kwargs = _kwargs(route)
        if not kwargs or not kwargs <= {"project_id", "kind"} or "project_id" not in kwargs:
            continue
        view = pattern.callback
        module = getattr(view, "__module__", "")
        found.append(Endpoint("portal", f"{ns}:{pattern.name}" if ns else pattern.name, route, module))
    # the portal's home (the user's workspaces): no arguments
    found.append(Endpoint("portal", "tenancy:home", "/", "tenancy.views"))
    return sorted(found, key=lambda e: e.route)


def studio_endpoints() -> list[Endpoint]:
    found = []
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        route = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        found.append(Endpoint("studio", opts.label_lower, route, type(model_admin).__module__))
    return sorted(found, key=lambda e: e.route)


ENDPOINTS = [e for e in api_endpoints() + portal_endpoints() + studio_endpoints() if e.id not in NOT_MEASURED]


def url_of(endpoint: Endpoint, *, project_id: int, kind: str = "") -> str:
    return endpoint.route.format(project_id=project_id, kind=kind)
