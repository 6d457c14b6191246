"""The kubectl proxy's credentials: issued with a kubeconfig, checked at every request.

A credential binds one user to one compute instance, expires, can be revoked, and is stored only as a
digest. :func:`grant_for` is the only way the proxy reaches an instance: it authenticates the token and
checks, at that moment, that the user is active and still holds ``use_instance`` on a ready instance,
so a removed collaborator is cut off at their next request.
"""

import functools
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import yaml
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from instances.models import ComputeInstance, KubeCredential, User
from instances.states import State
from paas import authz
from paas.audit import audit_log
from paas.errors import Conflict

TOKEN_PREFIX = "gpk_"  # noqa: S105 - a public marker, not a secret
VIA_KUBECONFIG = "kubeconfig"
VIA_SHELL = "shell"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def proxy_base_url() -> str:
    """Where kubeconfigs point: ``PAAS_KUBE_PROXY_URL``, by default the platform's own base URL."""
    return (getattr(settings, "PAAS_KUBE_PROXY_URL", "") or settings.PAAS_BASE_URL).rstrip("/")


def instance_server(instance_id: int, *, base: str | None = None) -> str:
    return f"{(base or proxy_base_url()).rstrip('/')}/k8s/instances/{instance_id}"


def _new_token() -> tuple[str, str]:
    prefix = secrets.token_hex(6)
    return prefix, f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"


def credential_issue(
    *, actor, instance: ComputeInstance, via: str = VIA_KUBECONFIG, ttl: timedelta | None = None
) -> tuple[KubeCredential, str]:
    """A new credential for ``actor`` on ``instance`` (checked and audited by the caller's service); the
    clear token is returned here and never again."""
    ttl = ttl or timedelta(minutes=settings.PAAS_KUBECONFIG_TTL_MINUTES)
    prefix, token = _new_token()
    credential = KubeCredential.objects.create(
        user=actor,
        instance=instance,
        prefix=prefix,
        digest=_digest(token),
        via=via,
        expires_at=timezone.now() + ttl,
    )
    return credential, token


def proxy_kubeconfig(*, instance: ComputeInstance, user, token: str, base: str | None = None) -> str:
    """A kubeconfig for the platform's proxy: its server is the instance's proxy URL, its user the
    credential's token; the namespace is the instance's. Nothing of the cluster's is in it."""
    server = instance_server(instance.pk, base=base)
    cluster: dict = {"server": server}
    ca_file = getattr(settings, "PAAS_KUBE_PROXY_CA_FILE", "")
    if ca_file and server.startswith("https://"):
        import base64
        from pathlib import Path

        cluster["certificate-authority-data"] = base64.b64encode(Path(ca_file).read_bytes()).decode()
    name = f"paas-{instance.name}"
    context = f"{user.username}@{instance.name}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": user.username, "user": {"token": token}}],
        "contexts": [
            {
                "name": context,
                "context": {"cluster": name, "user": user.username, "namespace": instance.namespace},
            }
        ],
        "current-context": context,
        "preferences": {},
    }
    return yaml.safe_dump(config, sort_keys=False)


def _require_usable(actor, instance: ComputeInstance) -> None:
    authz.require(
        actor,
        "use_instance",
        instance,
        message="Only the owner and collaborators of this instance get a kubeconfig.",
    )
    if instance.state != State.READY:
        raise Conflict(f"{instance.name} is {instance.state}; a kubeconfig is issued once it is ready.")


@transaction.atomic
def kubeconfig_issue(*, actor, instance: ComputeInstance) -> str:
    """A kubeconfig for the platform's proxy with a new short-lived credential of ``actor`` on
    ``instance`` (audited; the token is shown in it once and stored only as a digest)."""
    _require_usable(actor, instance)
    credential, token = credential_issue(actor=actor, instance=instance)
    audit_log(
        actor=actor,
        action="instance.kubeconfig",
        target=instance,
        project=instance.project,
        details={
            "credential": credential.label,
            "expires_at": credential.expires_at.isoformat(),
            "server": instance_server(instance.pk),
        },
    )
    return proxy_kubeconfig(instance=instance, user=actor, token=token)


@transaction.atomic
def credential_revoke(*, actor, credential: KubeCredential) -> KubeCredential:
    """Revoke a credential (its user, or anyone who may change the instance); audited. The next request
    made with it is refused, and its open streams are closed at their next check."""
    instance = credential.instance
    if credential.user_id != actor.pk:
        authz.require(actor, "change_computeinstance", instance, message="You cannot revoke this credential.")
    credential = KubeCredential.objects.select_for_update().select_related("user").get(pk=credential.pk)
    if credential.revoked_at is None:  # (revoked twice at once: one revocation, one audit event)
        credential.revoked_at = timezone.now()
        credential.save(update_fields=["revoked_at"])
        audit_log(
            actor=actor,
            action="instance.kubeconfig_revoke",
            target=instance,
            project=instance.project,
            details={"credential": credential.label, "user": credential.user.email},
        )
    return credential


def revoke_lost(*, instance: ComputeInstance, user_ids=None, reason: str = "") -> int:
    """Revoke the credentials on ``instance`` whose users cannot use it now (access changed: a role,
    the membership, the account or the org went). The proxy refuses them at once anyway; revoked, they
    stay dead when the access comes back (a reactivated account downloads a new kubeconfig). Audited
    in the access change's transaction."""
    live = KubeCredential.objects.filter(
        instance=instance, revoked_at__isnull=True, expires_at__gt=timezone.now()
    ).select_related("user")
    if user_ids is not None:
        live = live.filter(user_id__in=list(user_ids))
    lost = [c for c in live if not (c.user.is_active and authz.has_perm(c.user, "use_instance", instance))]
    if not lost:
        return 0
    KubeCredential.objects.filter(pk__in=[c.pk for c in lost]).update(revoked_at=timezone.now())
    audit_log(
        actor=None,
        action="instance.kubeconfig_revoke",
        target=instance,
        project=instance.project,
        details={
            "credentials": sorted(c.label for c in lost),
            "users": sorted({c.user.email for c in lost}),
            "via": reason or "access changed",
        },
    )
    return len(lost)


@dataclass(frozen=True)
class Grant:
    """What one authenticated proxy request may do: act as ``service_account`` in ``namespace`` of the
    cluster, on behalf of ``user``. Carries what the audit record needs."""

    credential_id: int
    via: str
    user_id: int
    user_repr: str
    instance_id: int
    instance_name: str
    namespace: str
    service_account: str
    org_id: int
    project_id: int
    cluster_id: int
    cluster_name: str
    cluster_key: str  # a digest of the cluster's kubeconfig: the proxy's session for it (upstream.py)
    expires_at: datetime

    @property
    def impersonate_user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"


def _parse(token: str) -> str | None:
    if not token.startswith(TOKEN_PREFIX):
        return None
    try:
        _, prefix, _secret = token.split("_", 2)
    except ValueError:
        return None
    return prefix if 0 < len(prefix) <= 16 else None


# What the per-request check reads, and nothing more (an instance's snapshot and placement are wide and
# decoded on load): one query through the credential's relations.
@functools.cache
def _grant_sql() -> str:
    """One read for a presented credential: the credential, its user, instance and cluster (table and
    column names from the models' metadata; the prefix is a parameter). Raw, because the proxy runs it
    on every request and the ORM would compile it afresh each time."""
    from inventory.models import Cluster
    from tenancy.models import User

    c, u, i, k = (m._meta for m in (KubeCredential, User, ComputeInstance, Cluster))

    def col(meta, name: str) -> str:
        return meta.get_field(name).column

    columns = [
        *(f"c.{col(c, n)}" for n in ("id", "digest", "via", "revoked_at", "expires_at", "last_used_at")),
        *(f"u.{col(u, n)}" for n in ("id", "is_active", "is_superuser", "email", "username")),
        *(f"i.{col(i, n)}" for n in ("id", "name", "namespace", "state", "org", "project", "cluster")),
        *(f"k.{col(k, n)}" for n in ("name", "kubeconfig")),
    ]
    return (
        f"SELECT {', '.join(columns)} FROM {c.db_table} c "
        f"JOIN {u.db_table} u ON u.{u.pk.column} = c.{col(c, 'user')} "
        f"JOIN {i.db_table} i ON i.{i.pk.column} = c.{col(c, 'instance')} "
        f"LEFT JOIN {k.db_table} k ON k.{k.pk.column} = i.{col(i, 'cluster')} "
        f"WHERE c.{col(c, 'prefix')} = %s"
    )


def grant_for(*, token: str, instance_id: int) -> Grant | None:
    """The grant of a proxy request presenting ``token`` for instance ``instance_id``, or ``None`` (the
    proxy answers 401 and says nothing more). Checked now: the token's digest, expiry and revocation,
    that it was issued for this instance, that its user is active and still holds ``use_instance`` on
    it (org and user not deactivated), and that the instance is ready.

    Nothing is cached between requests (a revocation or a removed role refuses the very next one): one
    raw query reads the credential with its user, instance and cluster, and :func:`paas.authz.holds`
    asks in one more whether the user holds ``use_instance`` on the instance now, its org active (the
    rule of ``authz.has_perm``)."""
    from instances import baseline

    prefix = _parse(token)
    if prefix is None:
        return None
    with connection.cursor() as cursor:
        cursor.execute(_grant_sql(), [prefix])
        row = cursor.fetchone()
    if row is None:
        return None
    (cred_id, digest, via, revoked_at, expires_at, last_used_at,
     user_id, user_active, superuser, email, username,
     inst_id, inst_name, namespace, state, org_id, project_id, cluster_id,
     cluster_name, sealed_kubeconfig) = row  # fmt: skip
    if not hmac.compare_digest(digest, _digest(token)):
        return None
    now = timezone.now()
    if revoked_at is not None or expires_at <= now:
        return None
    if inst_id != instance_id or not user_active or state != State.READY or cluster_id is None:
        return None
    user = User(pk=user_id, is_active=user_active, is_superuser=superuser, username=username)
    if not authz.holds(user, "use_instance", ComputeInstance, inst_id):  # (now, nothing cached)
        return None
    if last_used_at is None or now - last_used_at > timedelta(minutes=1):
        KubeCredential.objects.filter(pk=cred_id).update(last_used_at=now)
    return Grant(
        credential_id=cred_id,
        via=via,
        user_id=user_id,
        user_repr=email or username,
        instance_id=inst_id,
        instance_name=inst_name,
        namespace=namespace,
        service_account=baseline.service_account_name(username),
        org_id=org_id,
        project_id=project_id,
        cluster_id=cluster_id,
        cluster_name=cluster_name,
        # A digest of the stored (encrypted) kubeconfig: a new kubeconfig, or a re-encryption, gets the
        # proxy a new session; nothing is decrypted per request.
        cluster_key=hashlib.sha256(sealed_kubeconfig.encode()).hexdigest()[:32],
        expires_at=expires_at,
    )
