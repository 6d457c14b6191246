"""The web shell's service functions (synchronous; the consumer calls them through ``db.in_thread``).

A session is a ``KubeCredential`` with ``via="shell"``: issued when the shell opens (checked: the user
holds ``use_instance`` on a ready instance; at most ``PAAS_SHELL_MAX_PER_USER`` live shells), living at
most ``PAAS_SHELL_MAX_SECONDS``, revoked when the shell closes. Opening, each command line (refused
ones too, with the rule and the reason) and closing are in the tenant's audit trail.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from instances import selectors
from instances.kubeproxy import credentials
from instances.models import ComputeInstance, KubeCredential
from instances.states import State
from paas import authz
from paas.audit import audit_log
from paas.errors import Conflict, NotFound
from tenancy.models import User


@dataclass(frozen=True)
class Session:
    credential_id: int
    credential_label: str
    token: str
    kubeconfig: str
    instance_id: int
    instance_name: str
    namespace: str
    user_id: int
    expires_at_ts: float


def shell_instance(*, actor, instance_id) -> ComputeInstance:
    """The instance whose shell ``actor`` may open: forbidden and missing alike (NotFound); not ready
    is a Conflict that says so."""
    instance = selectors.instance_get_for(actor, instance_id)
    if not authz.has_perm(actor, "use_instance", instance):
        raise NotFound("No such instance.")
    if instance.state != State.READY or instance.cluster_id is None:
        raise Conflict(f"{instance.name} is {instance.state}; its shell opens once it is ready.")
    return instance


def live_shells(user_id: int):
    return KubeCredential.objects.filter(
        user_id=user_id, via=credentials.VIA_SHELL, revoked_at__isnull=True, expires_at__gt=timezone.now()
    )


@transaction.atomic
def shell_open(*, actor, instance_id, base_url: str | None = None) -> Session:
    """A new shell session: its credential (the session's length at most) and kubeconfig; audited."""
    if not actor.is_authenticated or not actor.is_active:
        raise NotFound("No such instance.")
    instance = shell_instance(actor=actor, instance_id=instance_id)
    User.objects.select_for_update().filter(pk=actor.pk).first()  # one opening at a time per user
    limit = settings.PAAS_SHELL_MAX_PER_USER
    if live_shells(actor.pk).count() >= limit:
        raise Conflict(f"You have {limit} shells open already (PAAS_SHELL_MAX_PER_USER); close one first.")
    credential, token = credentials.credential_issue(
        actor=actor,
        instance=instance,
        via=credentials.VIA_SHELL,
        ttl=timedelta(seconds=settings.PAAS_SHELL_MAX_SECONDS),
    )
    label = credential.label
    audit_log(
        actor=actor,
        action="instance.shell_open",
        target=instance,
        project=instance.project,
        details={"credential": label, "expires_at": credential.expires_at.isoformat()},
    )
    kubeconfig = credentials.proxy_kubeconfig(instance=instance, user=actor, token=token, base=base_url)
    return Session(
        credential_id=credential.pk,
        credential_label=label,
        token=token,
        kubeconfig=kubeconfig,
        instance_id=instance.pk,
        instance_name=instance.name,
        namespace=instance.namespace,
        user_id=actor.pk,
        expires_at_ts=credential.expires_at.timestamp(),
    )


def _scope(session: Session) -> tuple[User | None, ComputeInstance | None]:
    return (
        User.objects.filter(pk=session.user_id).first(),
        ComputeInstance.objects.select_related("project__org").filter(pk=session.instance_id).first(),
    )


@transaction.atomic
def shell_command(*, session: Session, line: str, refusal_code: str = "", refusal: str = "") -> None:
    """Audit one command line the user entered (run or refused)."""
    actor, instance = _scope(session)
    if actor is None or instance is None:  # deleted meanwhile: nothing to record it against
        return
    details = {"line": line[:4096], "credential": session.credential_label, "allowed": not refusal_code}
    if refusal_code:
        details |= {"refusal": refusal_code, "reason": refusal}
    audit_log(
        actor=actor,
        action="instance.shell_command",
        target=instance,
        project=instance.project,
        details=details,
    )


@transaction.atomic
def shell_close(*, session: Session, reason: str, commands: int) -> None:
    """End the session: its credential revoked (the proxy refuses it from now), the close audited."""
    actor, instance = _scope(session)
    KubeCredential.objects.filter(pk=session.credential_id, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    if actor is None or instance is None:
        return
    audit_log(
        actor=actor,
        action="instance.shell_close",
        target=instance,
        project=instance.project,
        details={"credential": session.credential_label, "reason": reason, "commands": commands},
    )
