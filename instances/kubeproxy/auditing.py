"""Every request the kubectl proxy forwards, in the tenant's audit trail, without the chain lock.

The proxy writes a :class:`~instances.models.ProxyRequestLog` row with a plain insert: a write (any
verb but get, list and watch) before it is forwarded, its response code after; a read after its
response. ``flush`` chains the pending rows into the org's audit trail in batches (one chain lock per
batch, never per request), so kubectl calls never queue behind launches.
"""

from dataclasses import dataclass, field

from django.utils import timezone

from instances.kubeproxy.credentials import Grant
from instances.kubeproxy.db import in_thread
from instances.kubeproxy.requestinfo import RequestInfo
from instances.models import ProxyRequestLog


@dataclass
class Record:
    grant: Grant
    info: RequestInfo
    command: str
    request_id: str
    started_at: object = field(default_factory=timezone.now)
    row_id: int | None = None


def _row(record: Record, status: int | None) -> ProxyRequestLog:
    grant, info = record.grant, record.info
    return ProxyRequestLog(
        created_at=record.started_at,
        org_id=grant.org_id,
        project_id=grant.project_id,
        instance_id=grant.instance_id,
        instance_name=grant.instance_name,
        cluster_id=grant.cluster_id,
        cluster_name=grant.cluster_name,
        user_id=grant.user_id,
        user_repr=grant.user_repr,
        client=grant.via,
        method=info.method,
        verb=info.verb,
        api_group=info.api_group[:255],
        resource=info.resource[:255],
        subresource=info.subresource[:64],
        namespace=info.namespace[:255],
        name=info.name[:255],
        path=info.path[:2048],
        command=record.command[:1024],
        status=status,
        request_id=record.request_id[:64],
    )


def _insert(record: Record, status: int | None) -> int:
    return ProxyRequestLog.objects.bulk_create([_row(record, status)])[0].pk


def _set_status(row_id: int, status: int) -> None:
    ProxyRequestLog.objects.filter(pk=row_id).update(status=status)


async def start(grant: Grant, info: RequestInfo, *, command: str, request_id: str) -> Record:
    """Called before the request is forwarded: a write is recorded now (so a crash after forwarding it
    cannot lose it)."""
    record = Record(grant=grant, info=info, command=command, request_id=request_id)
    if not info.is_read:
        record.row_id = await in_thread(_insert)(record, None)
    return record


async def done(record: Record, status: int) -> None:
    """Called once the response code is known (or the stream was refused or failed: 502)."""
    if record.row_id is not None:
        await in_thread(_set_status)(record.row_id, status)
    else:
        await in_thread(_insert)(record, status)
