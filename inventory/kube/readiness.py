"""Waiting for a namespace's workloads to be ready, and for a namespace to be gone: by watching.

:func:`wait_ready` lists each kind it judges once (that gives both the objects and the list's
``resourceVersion``), and if anything is not ready it watches the kinds that are not, one after the
other, each from the ``resourceVersion`` of its own list, with the server-side ``timeoutSeconds`` of
what is left of the deadline. A watch from a list's version replays every change made since that list,
so watching kind B after kind A became ready misses nothing that happened to B meanwhile; each event
updates that kind's objects and the kind is judged again, so the wait ends on the event that makes it
ready (no sleep, no poll interval). The kinds that workloads make (pods, claims) are listed again
after a wait for an earlier kind: the first list may predate a Deployment's second pod, and a replayed
watch may be judged ready on the first pod's event before the second pod's. A wait of any length
costs one list per kind, two more lists after a wait, and one watch per kind that was waiting. A watch
whose version the server no longer keeps (410 Gone) lists that kind again and goes on from the new
version. On timeout one more full pass of lists says what is not ready.
"""

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes import watch as k8s_watch
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic.exceptions import ResourceNotFoundError, ResourceNotUniqueError

from inventory.kube.clients import TIMEOUT, _dynamic, _resource, _unreachable, api_client
from inventory.kube.reads import _EPOCH, _pod_problem, _shorten, custom_resource_note

Notes = tuple[list[str], list[str]]  # (notes about what is ready, notes about what is not)


def _claim_events(core: k8s.CoreV1Api, namespace: str) -> dict[str, list[tuple[str, str]]]:
    """(reason, message) of the events about each claim, oldest first (why a claim is not bound)."""
    items = core.list_namespaced_event(
        namespace, field_selector="involvedObject.kind=PersistentVolumeClaim", _request_timeout=TIMEOUT
    ).items
    items.sort(key=lambda e: e.last_timestamp or e.event_time or e.metadata.creation_timestamp or _EPOCH)
    by_claim: dict[str, list[tuple[str, str]]] = {}
    for event in items:
        by_claim.setdefault(event.involved_object.name, []).append((event.reason or "", event.message or ""))
    return by_claim


# --- one judge per kind: the objects of that kind (typed models, in name order) -> notes -----------------


def _accounts(items, _context) -> Notes:
    ok = bool(items)
    note = "ServiceAccount default: " + ("present" if ok else "not created yet")
    return ([note], []) if ok else ([], [note])


def _quotas(items, _context) -> Notes:
    ready, waiting = [], []
    for quota in items:
        hard = dict(quota.spec.hard or {}) if quota.spec else {}
        computed = quota.status is not None and set(hard) <= set(quota.status.hard or {})
        text = f"ResourceQuota {quota.metadata.name}: " + ("in force" if computed else "not computed yet")
        (ready if computed else waiting).append(text)
    return ready, waiting


def _replicated(kind: str):
    def judge(items, _context) -> Notes:
        ready, waiting = [], []
        for item in items:
            status = item.status
            wanted = 1 if item.spec.replicas is None else item.spec.replicas
            ready_count = (status.ready_replicas or 0) if status else 0
            updated = (status.updated_replicas or 0) if status else 0
            observed = bool(status) and (status.observed_generation or 0) >= (item.metadata.generation or 0)
            ok = observed and ready_count == wanted and updated >= wanted
            failure = next(
                (
                    c.message
                    for c in (status.conditions or [] if status else [])
                    if c.type == "ReplicaFailure" and c.status == "True"
                ),
                None,
            )
            detail = f" ({_shorten(failure)})" if failure and not ok else ""
            text = f"{kind} {item.metadata.name}: {ready_count}/{wanted} ready{detail}"
            (ready if ok else waiting).append(text)
        return ready, waiting

    return judge


def _daemon_sets(items, _context) -> Notes:
    ready, waiting = [], []
    for item in items:
        wanted = (item.status.desired_number_scheduled or 0) if item.status else 0
        ready_count = (item.status.number_ready or 0) if item.status else 0
        status = item.status
        observed = bool(status) and (status.observed_generation or 0) >= (item.metadata.generation or 0)
        ok = observed and ready_count == wanted
        (ready if ok else waiting).append(f"DaemonSet {item.metadata.name}: {ready_count}/{wanted} ready")
    return ready, waiting


def _jobs(items, _context) -> Notes:
    ready, waiting = [], []
    for job in items:
        conditions = {c.type: c for c in (job.status.conditions or [])} if job.status else {}
        failed = conditions.get("Failed")
        if failed is not None and failed.status == "True":
            why = f"{failed.reason}: {failed.message or ''}"
            waiting.append(f"Job {job.metadata.name}: failed ({why})")
        else:
            complete = "Complete" in conditions and conditions["Complete"].status == "True"
            ready.append(f"Job {job.metadata.name}: " + ("complete" if complete else "running"))
    return ready, waiting


def _pods(items, _context) -> Notes:
    ready, waiting = [], []
    for pod in items:
        owners = {ref.kind for ref in (pod.metadata.owner_references or []) if ref.controller}
        phase = pod.status.phase if pod.status else "Unknown"
        if pod.metadata.deletion_timestamp or "Job" in owners:
            continue  # going away, or judged by its Job
        if phase == "Failed" and owners:
            continue  # a leftover (e.g. evicted) its controller replaces; the controller is judged
        conditions = {c.type: c.status for c in (pod.status.conditions or [])} if pod.status else {}
        ok = phase == "Succeeded" or (phase == "Running" and conditions.get("Ready") == "True")
        state = "Ready" if ok and phase == "Running" else "not Ready" if phase == "Running" else ""
        problem = "" if ok else _pod_problem(pod)
        text = f"Pod {pod.metadata.name}: {phase} {state}".rstrip() + (f" ({problem})" if problem else "")
        (ready if ok else waiting).append(text)
    return ready, waiting


def _claims(items, context) -> Notes:
    ready, waiting = [], []
    pending = [c for c in items if (c.status.phase if c.status else "Pending") != "Bound"]
    events = _claim_events(context["core"], context["namespace"]) if pending else {}
    for claim in items:
        phase = claim.status.phase if claim.status else "Pending"
        name = claim.metadata.name
        if phase == "Bound":
            ready.append(f"PersistentVolumeClaim {name}: Bound")
            continue
        reasons = events.get(name, [])
        selected = (claim.metadata.annotations or {}).get("volume.kubernetes.io/selected-node")
        if not selected and reasons and reasons[-1][0] == "WaitForFirstConsumer":
            # A WaitForFirstConsumer class binds when a pod uses the claim; that pod is judged above.
            ready.append(f"PersistentVolumeClaim {name}: {phase} (waits for its first consumer)")
            continue
        why = f" ({_shorten(reasons[-1][1])})" if reasons and reasons[-1][1] else ""
        waiting.append(f"PersistentVolumeClaim {name}: {phase}, not bound{why}")
    return ready, waiting


def _custom(items, _context) -> Notes:
    ready, waiting = [], []
    for item in items:
        ok, text = custom_resource_note(item)
        (ready if ok else waiting).append(text)
    return ready, waiting


@dataclass
class _Kind:
    """One kind being judged: how to list (and watch) it, its judge, and what was last seen of it."""

    lister: Callable  # a typed ``list_namespaced_*`` method, or a dynamic resource's ``get``
    kwargs: dict
    judge: Callable[[list, dict], Notes]
    typed: bool = True
    made_by_controllers: bool = False  # pods and claims: workloads make more of them while judged
    items: dict[str, Any] = field(default_factory=dict)  # name -> object
    version: str = ""  # the resourceVersion the objects are current at

    def notes(self, context: dict) -> Notes:
        return self.judge([self.items[name] for name in sorted(self.items)], context)

    def _name(self, obj) -> str:
        return obj.metadata.name if self.typed else obj["metadata"]["name"]

    def list(self) -> None:
        result = self.lister(_request_timeout=TIMEOUT, **self.kwargs)
        if self.typed:
            self.items = {item.metadata.name: item for item in result.items}
            self.version = result.metadata.resource_version or ""
        else:
            data = result.to_dict()
            self.items = {item["metadata"]["name"]: item for item in data.get("items") or []}
            self.version = (data.get("metadata") or {}).get("resourceVersion") or ""

    def watch(self, context: dict, deadline: float) -> bool:
        """Watch from :attr:`version` until the kind is ready (True) or the deadline (False)."""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            watcher = k8s_watch.Watch()
            stream = watcher.stream(
                self.lister,
                resource_version=self.version,
                timeout_seconds=max(1, math.ceil(remaining)),
                allow_watch_bookmarks=True,
                _request_timeout=(TIMEOUT[0], remaining + TIMEOUT[1]),
                **({} if self.typed else {"serialize": False}),  # a dynamic resource: raw events
                **self.kwargs,
            )
            try:
                for event in stream:
                    kind, obj, raw = event["type"], event["object"], event["raw_object"]
                    self.version = (raw.get("metadata") or {}).get("resourceVersion") or self.version
                    if kind == "BOOKMARK":
                        continue
                    name = self._name(obj)
                    if kind == "DELETED":
                        self.items.pop(name, None)
                    else:
                        self.items[name] = obj
                    if not self.notes(context)[1]:
                        return True
                    if time.monotonic() >= deadline:
                        return False
            except ApiException as exc:
                if exc.status != 410:
                    raise
                self.list()  # the server no longer keeps that version: list again, watch from there
                if not self.notes(context)[1]:
                    return True
            finally:
                stream.close()
            # The server ended the watch (its timeoutSeconds): go on from the last version seen.


def _kinds(api, core, namespace: str, label_selector: str, custom_kinds) -> tuple[list[_Kind], list[str]]:
    """The kinds :func:`wait_ready` judges, in the order their notes are given; and the custom kinds the
    cluster does not serve (each a note of what is waiting)."""
    apps, batch = k8s.AppsV1Api(api), k8s.BatchV1Api(api)
    selected = {"namespace": namespace, **({"label_selector": label_selector} if label_selector else {})}
    kinds = [
        _Kind(
            core.list_namespaced_service_account,
            {"namespace": namespace, "field_selector": "metadata.name=default"},
            _accounts,
        ),
        _Kind(core.list_namespaced_resource_quota, selected, _quotas),
        _Kind(apps.list_namespaced_deployment, selected, _replicated("Deployment")),
        _Kind(apps.list_namespaced_stateful_set, selected, _replicated("StatefulSet")),
        _Kind(apps.list_namespaced_daemon_set, selected, _daemon_sets),
        _Kind(batch.list_namespaced_job, selected, _jobs),
        _Kind(core.list_namespaced_pod, selected, _pods, made_by_controllers=True),
        _Kind(core.list_namespaced_persistent_volume_claim, selected, _claims, made_by_controllers=True),
    ]
    unserved = []
    if custom_kinds:
        dynamic = _dynamic(api)
        for api_version, kind in custom_kinds:
            try:
                resource = _resource(dynamic, api_version, kind)
            except (ResourceNotFoundError, ResourceNotUniqueError):
                unserved.append(
                    f"{kind}: the cluster does not serve {api_version} (is its operator installed?)"
                )
                continue
            kwargs = {"namespace": namespace, "label_selector": label_selector or None}
            kinds.append(_Kind(resource.get, kwargs, _custom, typed=False))
    return kinds, unserved


def _judge(kinds: list[_Kind], context: dict, unserved: list[str]) -> Notes:
    ready: list[str] = []
    waiting: list[str] = []
    for kind in kinds:
        kind_ready, kind_waiting = kind.notes(context)
        ready += kind_ready
        waiting += kind_waiting
    return ready, waiting + unserved


@contextmanager
def _waiting() -> Iterator[None]:
    """The API server's refusals and lost connections as the cluster being unreachable; a wait's own
    ``TimeoutError`` (an ``OSError``, but not a connection's: it names what is not ready) as it is."""
    try:
        yield
    except TimeoutError:
        raise
    except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
        raise _unreachable(exc) from exc


def wait_ready(
    kubeconfig,
    namespace: str,
    *,
    timeout: float = 60,
    poll: float = 0.5,
    label_selector: str = "",
    custom_resources=(),
) -> list[str]:
    """Wait until the namespace's workloads are ready; return readiness notes.

    Ready means: the ``default`` ServiceAccount exists and every ResourceQuota is computed (pods are
    admitted only then); every Deployment and StatefulSet has ``replicas`` ready and up to date,
    every DaemonSet its desired pods ready; no Job has failed; every other pod is Running and Ready
    or Succeeded; every PersistentVolumeClaim is Bound (an unbound one is named with the reason its
    events give, e.g. a missing StorageClass), except one of a WaitForFirstConsumer class that no pod
    uses yet (it binds with its first pod, which is judged as a pod).
    Raises ``TimeoutError`` naming what is not ready after ``timeout`` seconds. With ``label_selector``
    only the workloads, pods and claims it matches are judged (one service's objects in a namespace).
    ``custom_resources`` (a template's declarations: ``{"apiVersion", "kind"}`` dicts or pairs) are
    judged too, as their operators report them (:func:`custom_resource_note`).

    Waits by watching (the module's docstring): one list per kind, then one watch per kind that is
    not ready yet. ``poll`` is only how long to pause before trying again after a custom kind the
    cluster does not serve (its operator may be being installed): that cannot be watched.
    """
    custom_kinds = [
        (item["apiVersion"], item["kind"]) if isinstance(item, dict) else tuple(item)
        for item in custom_resources
    ]
    deadline = time.monotonic() + timeout
    with api_client(kubeconfig) as api:
        core = k8s.CoreV1Api(api)
        context = {"core": core, "namespace": namespace}
        with _waiting():
            while True:
                kinds, unserved = _kinds(api, core, namespace, label_selector, custom_kinds)
                for kind in kinds:
                    kind.list()
                watched = False
                for kind in kinds:
                    if watched and kind.made_by_controllers:
                        # Listed before an earlier kind was waited for, while its workloads made more
                        # (a Deployment's second pod): judged on what is there now, so that the notes
                        # name every pod, and a new pod that is not ready yet is waited for.
                        kind.list()
                    if kind.notes(context)[1]:
                        watched = True
                        if not kind.watch(context, deadline):
                            break  # the deadline passed with this kind not ready
                ready, waiting = _judge(kinds, context, unserved)
                if not waiting:
                    return ready
                if time.monotonic() >= deadline:
                    if watched and not unserved:  # what is not ready now (the kinds not watched are old)
                        for kind in kinds:
                            kind.list()
                        ready, waiting = _judge(kinds, context, unserved)
                        if not waiting:
                            return ready
                    raise TimeoutError(
                        f"Not ready in namespace {namespace} after {timeout:g}s: " + "; ".join(waiting)
                    )
                # Only a custom kind the cluster does not serve gets here (every other kind was watched
                # to readiness): look again in a moment.
                time.sleep(min(poll, max(0.0, deadline - time.monotonic())))


def wait_namespace_gone(kubeconfig, name: str, *, timeout: float = 120) -> None:
    """Wait until the namespace no longer exists, by watching it (one list, one watch). Raises
    ``TimeoutError`` when it still exists after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    with api_client(kubeconfig) as api:
        core = k8s.CoreV1Api(api)
        kind = _Kind(
            core.list_namespace,
            {"field_selector": f"metadata.name={name}"},
            lambda items, _context: ([], ["exists"]) if items else (["gone"], []),
        )
        with _waiting():
            kind.list()
            if kind.items and not kind.watch({}, deadline):
                raise TimeoutError(f"Namespace {name} still exists after {timeout:.0f} s.")
