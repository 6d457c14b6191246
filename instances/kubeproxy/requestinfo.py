"""What a Kubernetes API request does, read from its method and path the way the API server reads it
(``k8s.io/apiserver/pkg/endpoints/request.RequestInfoFactory``): the verb, API group, resource,
subresource, namespace and name that the audit trail records."""

from dataclasses import dataclass
from urllib.parse import parse_qs

READ_VERBS = frozenset({"get", "list", "watch"})
#: Subresources that open a session into a workload (a GET upgraded to a WebSocket, or a proxied
#: request): never a read for the audit, whatever their verb, so never sampled or summarised away.
SESSION_SUBRESOURCES = frozenset({"exec", "attach", "portforward", "proxy"})

_METHOD_VERBS = {
    "POST": "create",
    "GET": "get",
    "HEAD": "get",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}


@dataclass(frozen=True)
class RequestInfo:
    method: str
    path: str
    verb: str
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    resource_request: bool = False

    @property
    def is_read(self) -> bool:
        """A read (get, list, watch, or a non-resource GET such as discovery): sampled or summarised
        by the operator's setting. Everything else (and exec, attach, port-forward and proxy, though
        their verb may be get) is recorded one by one."""
        return is_read(self.verb, self.subresource)


def is_read(verb: str, subresource: str = "") -> bool:
    return verb in READ_VERBS and subresource not in SESSION_SUBRESOURCES


def parse(method: str, path: str, query: str = "") -> RequestInfo:
    """The request's info; ``path`` is the Kubernetes API path (after ``/k8s/instances/<id>``)."""
    method = method.upper()
    parts = [p for p in path.split("/") if p]
    verb = _METHOD_VERBS.get(method, method.lower())
    if not parts or parts[0] not in ("api", "apis"):
        return RequestInfo(method=method, path=path, verb=verb)  # discovery, /version, /openapi...
    if parts[0] == "api":
        group, rest = "", parts[2:]  # /api/v1/...
    else:
        if len(parts) < 3:
            return RequestInfo(method=method, path=path, verb=verb)  # group discovery
        group, rest = parts[1], parts[3:]
    if not rest:
        return RequestInfo(method=method, path=path, verb=verb, api_group=group)
    params = parse_qs(query)
    if rest[0] == "watch":  # the deprecated /watch/ prefix
        verb, rest = "watch", rest[1:]
    namespace = ""
    if len(rest) >= 2 and rest[0] == "namespaces":
        if len(rest) == 2:  # the namespace object itself
            resource, name = "namespaces", rest[1]
            return _finish(method, path, verb, group, resource, "", "", name, params)
        namespace, rest = rest[1], rest[2:]
    resource = rest[0] if rest else ""
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    return _finish(method, path, verb, group, resource, subresource, namespace, name, params)


def _finish(method, path, verb, group, resource, subresource, namespace, name, params) -> RequestInfo:
    if verb == "get" and not name:
        verb = "list"
    if verb in ("get", "list") and params.get("watch", [""])[0] in ("true", "1"):
        verb = "watch"
    if verb == "delete" and not name:
        verb = "deletecollection"
    return RequestInfo(
        method=method,
        path=path,
        verb=verb,
        api_group=group,
        resource=resource,
        subresource=subresource,
        namespace=namespace,
        name=name,
        resource_request=True,
    )
