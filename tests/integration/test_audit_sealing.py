"""Audit events chained after commit (paas/audit.py): written in the change's transaction, sealed
(seq, prev_hash, hash) by a short transaction of their own on commit or by the periodic sealer; and
the bulk import of already-chained trails."""

from datetime import timedelta

import pytest
from django.utils import timezone

from paas import audit
from paas.models import AuditEvent

pytestmark = pytest.mark.django_db


def _entries(n: int, *, project_id=None):
    start = timezone.now() - timedelta(days=30)
    for i in range(n):
        yield audit.Entry(
            action="instance.launch",
            actor_id=None,
            actor_repr="generator",
            target_type="instances.computeinstance",
            target_id=i,
            target_repr=f"instance-{i}",
            details={"i": i, "gpus": [1, 2]},
            project_id=project_id,
            created_at=start + timedelta(seconds=i),
            client="cli",
        )


def test_imported_events_continue_the_chain_and_verify(world, django_capture_on_commit_callbacks):
    org = world.a.org
    before = list(AuditEvent.objects.filter(chain=org.pk).order_by("seq").values_list("seq", flat=True))
    with django_capture_on_commit_callbacks(execute=True):
        written = audit.audit_import_sealed(
            chain=org.pk, entries=_entries(2500, project_id=world.a.project.pk), batch_size=1000
        )
    assert written == 2500
    seqs = list(AuditEvent.objects.filter(chain=org.pk).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(before) + 2501))
    imported = AuditEvent.objects.get(chain=org.pk, seq=len(before) + 7)
    assert (imported.org_id, imported.project_id, imported.details) == (
        org.pk,
        world.a.project.pk,
        {"i": 6, "gpus": [1, 2]},
    )
    result = audit.audit_verify()
    assert result.ok, result.broken
    assert org.pk not in result.unanchored  # checkpointed on commit


def test_import_into_the_platform_chain_and_an_empty_chain(db, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        assert audit.audit_import_sealed(chain=audit.PLATFORM_CHAIN, entries=_entries(3)) == 3
        assert audit.audit_import_sealed(chain=987654, entries=_entries(2)) == 2
        assert audit.audit_import_sealed(chain=987654, entries=[]) == 0
    assert set(AuditEvent.objects.filter(chain=987654).values_list("seq", "org_id")) == {
        (1, 987654),
        (2, 987654),
    }
    assert set(AuditEvent.objects.filter(chain=0).values_list("org_id", flat=True)) == {None}
    assert audit.audit_verify().ok
