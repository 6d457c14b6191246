"""Per-object status: whether each of a list of objects in a namespace is ready, why not, and the
events of the ones that are not (with the events of a workload's ReplicaSets and pods: that is where a
quota refusal or an image pull failure shows). Also which kinds the cluster serves namespaced.

Used for applications (``instances.application_deployer``): their objects are whatever the user's YAML
or chart holds, so every object is judged on its own, by kind (a workload by its replicas, a pod by its
phase and Ready condition, a claim by being bound, a Job by not having failed, a custom resource as its
operator reports it; any other object by existing)."""

from datetime import UTC, datetime
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic.exceptions import ResourceNotFoundError, ResourceNotUniqueError

from inventory.kube.clients import TIMEOUT, _dynamic, _resource, _unreachable, api_client
from inventory.kube.reads import _EPOCH, _shorten, custom_resource_note

EVENTS_PER_OBJECT = 10
_WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job")


def scopes(kubeconfig: str, kinds: list[tuple[str, str]]) -> dict[tuple[str, str], str | None]:
    """``(apiVersion, kind) -> "Namespaced" | "Cluster"`` as the cluster serves it; None: not served."""
    found: dict[tuple[str, str], str | None] = {}
    with api_client(kubeconfig) as api:
        try:
            dynamic = _dynamic(api)
            for api_version, kind in kinds:
                try:
                    resource = _resource(dynamic, api_version, kind)
                except (ResourceNotFoundError, ResourceNotUniqueError):
                    found[(api_version, kind)] = None
                    continue
                found[(api_version, kind)] = "Namespaced" if resource.namespaced else "Cluster"
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise _unreachable(exc) from exc
    return found


def _get(obj: Any, *path: str, default: Any = None) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return default
        obj = obj.get(key)
    return default if obj is None else obj


def _pod_note(pod: dict) -> tuple[bool, str]:
    status = pod.get("status") or {}
    phase = status.get("phase") or "Unknown"
    conditions = {c.get("type"): c for c in status.get("conditions") or [] if isinstance(c, dict)}
    ready = _get(conditions, "Ready", "status") == "True"
    if phase == "Succeeded" or (phase == "Running" and ready):
        return True, phase
    scheduled = conditions.get("PodScheduled") or {}
    if scheduled.get("status") == "False":
        return False, _shorten(f"{scheduled.get('reason', '')}: {scheduled.get('message', '')}".strip(": "))
    for container in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        waiting = _get(container, "state", "waiting") or {}
        if waiting.get("reason"):
            detail = f"{container.get('name')}: {waiting['reason']} {waiting.get('message') or ''}"
            return False, _shorten(detail.strip())
    return False, f"{phase}, not ready"


def _judge(obj: dict) -> tuple[bool, str]:
    """Whether one object (as read from the API server) is ready, and a short message."""
    kind, spec, status = obj.get("kind"), obj.get("spec") or {}, obj.get("status") or {}
    observed = (status.get("observedGeneration") or 0) >= (_get(obj, "metadata", "generation") or 0)
    if kind in ("Deployment", "StatefulSet", "ReplicaSet"):
        wanted = 1 if spec.get("replicas") is None else spec["replicas"]
        ready = status.get("readyReplicas") or 0
        failure = next(
            (
                c.get("message")
                for c in status.get("conditions") or []
                if c.get("type") == "ReplicaFailure" and c.get("status") == "True"
            ),
            None,
        )
        updated = status.get("updatedReplicas", wanted if kind == "ReplicaSet" else 0) or 0
        total = status.get("replicas") or 0
        # A rollout in progress (old and new pods side by side, or new ones not available) is not ready.
        rolling = kind != "ReplicaSet" and (total > wanted or (status.get("unavailableReplicas") or 0) > 0)
        ok = observed and ready >= wanted and updated >= wanted and not rolling
        text = f"{ready}/{wanted} ready" + (f", {updated} up to date" if updated < wanted else "")
        text += f", rolling out ({total} pods)" if rolling else ""
        return ok, text + (f" ({_shorten(failure)})" if failure and not ok else "")
    if kind == "DaemonSet":
        wanted, ready = status.get("desiredNumberScheduled") or 0, status.get("numberReady") or 0
        return observed and ready >= wanted, f"{ready}/{wanted} ready"
    if kind == "Job":
        conditions = {c.get("type"): c for c in status.get("conditions") or []}
        failed = conditions.get("Failed") or {}
        if failed.get("status") == "True":
            return False, _shorten(f"failed ({failed.get('reason', '')}: {failed.get('message', '')})")
        complete = _get(conditions, "Complete", "status") == "True"
        return True, "complete" if complete else "running"
    if kind == "Pod":
        return _pod_note(obj)
    if kind == "PersistentVolumeClaim":
        phase = status.get("phase") or "Pending"
        return phase == "Bound", phase
    group = (obj.get("apiVersion") or "").rpartition("/")[0]
    if "." in group and not group.endswith(".k8s.io"):  # a custom resource: as its operator reports it
        ok, text = custom_resource_note(obj)
        return ok, text.split(": ", 1)[-1]
    return True, "present"


def _selector(obj: dict) -> str:
    labels = _get(obj, "spec", "selector", "matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _moment(text: str) -> datetime:
    """An event's time as an aware datetime, whichever way it is written: the API server writes
    ``lastTimestamp`` to the second ("...:54Z") and ``eventTime`` to the microsecond ("...:54.758642Z"),
    which as strings do not sort in time order."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return _EPOCH
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # (never compared naive with aware)


def _event_rows(items: list[dict]) -> dict[tuple[str, str], list[dict]]:
    by_object: dict[tuple[str, str], list[dict]] = {}
    for event in items:
        involved = event.get("involvedObject") or {}
        series = event.get("series") or {}
        last = (
            series.get("lastObservedTime")
            or event.get("lastTimestamp")
            or event.get("eventTime")
            or event.get("firstTimestamp")
            or _get(event, "metadata", "creationTimestamp")
            or _EPOCH.isoformat()
        )
        by_object.setdefault((involved.get("kind", ""), involved.get("name", "")), []).append(
            {
                "object": f"{involved.get('kind', '')}/{involved.get('name', '')}",
                "type": event.get("type") or "",
                "reason": event.get("reason") or "",
                "message": _shorten(event.get("message") or "", 500),
                "count": series.get("count") or event.get("count") or 1,
                "last": str(last),
            }
        )
    for rows in by_object.values():
        rows.sort(key=lambda row: _moment(row["last"]))
    return by_object


def recent(events: list[dict], limit: int = EVENTS_PER_OBJECT) -> list[dict]:
    """The ``limit`` most recent of ``events``, warnings kept before the others (they say why an
    object is not ready, and a scheduling failure can share its second with a rollout's many routine
    events), oldest first."""
    kept = sorted(events, key=lambda e: (e["type"] == "Warning", _moment(e["last"])))[-limit:]
    return sorted(kept, key=lambda e: _moment(e["last"]))


def object_status(kubeconfig: str, namespace: str, refs: list[dict]) -> list[dict]:
    """Per ``{apiVersion, kind, name}`` of ``refs``, in order: ``{apiVersion, kind, name, ready, message,
    events}``; ``events`` (as :func:`recent` picks them, each ``{object, type, reason, message, count,
    last}``) only for objects that are not ready: their own, and for a workload those of the ReplicaSets
    and pods its selector matches. A missing object is not ready ("not found")."""
    rows: list[dict] = []
    with api_client(kubeconfig) as api:
        try:
            dynamic = _dynamic(api)
            events_api = _resource(dynamic, "v1", "Event")
            events: dict[tuple[str, str], list[dict]] | None = None
            for ref in refs:
                row = {**{k: ref[k] for k in ("apiVersion", "kind", "name")}, "ready": False, "events": []}
                try:
                    resource = _resource(dynamic, ref["apiVersion"], ref["kind"])
                    obj = resource.get(name=ref["name"], namespace=namespace).to_dict()
                except (ResourceNotFoundError, ResourceNotUniqueError):
                    rows.append(row | {"message": f"the cluster does not serve {ref['apiVersion']}"})
                    continue
                except ApiException as exc:
                    if exc.status != 404:
                        raise
                    rows.append(row | {"message": "not found"})
                    continue
                ok, message = _judge(obj)
                row |= {"ready": ok, "message": message}
                if not ok:
                    if events is None:
                        listed = events_api.get(namespace=namespace, _request_timeout=TIMEOUT).to_dict()
                        events = _event_rows(listed.get("items") or [])
                    related = [(ref["kind"], ref["name"])]
                    selector = _selector(obj) if ref["kind"] in _WORKLOADS else ""
                    if selector:
                        for kind in ("ReplicaSet", "Pod"):
                            listed = _resource(
                                dynamic, "apps/v1" if kind == "ReplicaSet" else "v1", kind
                            ).get(namespace=namespace, label_selector=selector)
                            related += [
                                (kind, item["metadata"]["name"]) for item in listed.to_dict()["items"]
                            ]
                    row["events"] = recent([e for key in related for e in events.get(key, [])])
                rows.append(row)
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise _unreachable(exc) from exc
    return rows
