"""The writes of the cluster guardrails (``inventory.guardrails``): install them on a cluster and record
what it enforces; refuse clusters that cannot enforce them. Called by ``inventory.services`` at
registration and at every refresh, and by the deployer before a namespace is made."""

from django.db import transaction
from django.utils import timezone

from inventory import guardrails, kube
from inventory.models import Cluster
from paas.audit import audit_log
from paas.errors import ValidationFailed


def clean_ingress_domain(domain: str) -> str:
    try:
        return guardrails.check_ingress_domain(domain)
    except ValueError as exc:
        raise ValidationFailed("Invalid ingress domain.", fields={"ingress_domain": str(exc)}) from exc


IMPERSONATION_REFUSED = (
    "The platform's credential may not impersonate ServiceAccounts (verb 'impersonate' on "
    "'serviceaccounts' in every namespace), so the kubectl proxy could not forward users' requests as "
    "their instance's ServiceAccount. Bind it a ClusterRole allowing that (docs/operations.md)."
)


def impersonation_refusal(kubeconfig: str) -> str:
    """Why the kubectl proxy cannot serve this cluster with this credential, or "" when it can: the
    proxy forwards each request as the user's per-instance ServiceAccount (``Impersonate-User``), so the
    platform's identity must be allowed to impersonate ServiceAccounts in every namespace. Raises
    :class:`kube.KubeUnreachable` when the API server does not answer."""
    allowed = kube.can_i(kubeconfig, verb="impersonate", resource="serviceaccounts")
    return "" if allowed else IMPERSONATION_REFUSED


def require_guardrails_support(kubeconfig: str, *, field: str) -> None:
    """Refuse a cluster whose API server is too old to enforce the guardrails, or whose credential may
    not impersonate ServiceAccounts (the kubectl proxy needs it). Unreachable: the refresh checks later."""
    try:
        version = kube.server_version(kubeconfig)
    except (kube.KubeUnreachable, kube.KubeconfigInvalid):
        return  # not reachable now: the refresh checks the version and records why it cannot install
    reason = guardrails.unsupported_reason(version)
    if reason:
        raise ValidationFailed(
            "The cluster cannot enforce the platform's guardrails.", fields={field: reason}
        )
    try:
        refusal = impersonation_refusal(kubeconfig)
    except kube.KubeUnreachable:
        return  # no answer to the review now: the refresh records it
    if refusal:
        raise ValidationFailed("The cluster cannot serve the kubectl proxy.", fields={field: refusal})


_GUARDRAIL_KEYS = (
    "version",
    "rules",
    "mutating_defaults",
    "sandbox_default_for_pods",
    "platform_identity",
    "ingress_domain",
    "error",
    "proxy_error",
)


def cluster_guardrails_sync(*, cluster_id: int) -> Cluster:
    """Install the current guardrails on the cluster (server-side apply), delete every other
    platform-managed admission policy or binding (older versions, rules no longer wanted), and record
    what the cluster enforces. Runs at every refresh; a change of the record is audited."""
    cluster = Cluster.objects.get(pk=cluster_id)
    kubeconfig = cluster.kubeconfig.reveal()
    previous = dict(cluster.guardrails or {})
    record: dict = {"checked_at": timezone.now().isoformat()}
    reason = guardrails.unsupported_reason(cluster.kubernetes_version)
    if reason:
        record.update(version="", rules=[], mutating_defaults=False, error=reason)
    else:
        try:
            identity = kube.whoami(kubeconfig)
            mutating = guardrails.mutating_supported(cluster.kubernetes_version) and kube.serves(
                kubeconfig, guardrails.API_VERSION, "MutatingAdmissionPolicy"
            )
            sandbox = guardrails.SANDBOX_RUNTIME_CLASS if cluster.offers_sandbox_runtime else None
            bare_pods = bool(sandbox) and guardrails.runtime_class_defaultable(
                kube.runtime_class(kubeconfig, sandbox)
            )
            proxy_error = impersonation_refusal(kubeconfig)
            domain = guardrails.ingress_domain(cluster)
            objects = guardrails.manifests(
                platform_identity=identity,
                ingress_domain=domain,
                sandbox_runtime_class=sandbox,
                mutating_defaults=mutating,
                sandbox_default_for_pods=bare_pods,
            )
            kube.ensure_objects(kubeconfig, objects)
            removed = kube.prune(
                kubeconfig,
                kinds=guardrails.POLICY_KINDS,
                label_selector=f"{guardrails.LABEL_MANAGED_BY}={guardrails.MANAGED_BY}",
                keep=guardrails.names(objects),
            )
        except (kube.KubeUnreachable, kube.ApplyError) as exc:
            record.update({k: previous.get(k) for k in _GUARDRAIL_KEYS if k in previous})
            record["error"] = f"Could not install the guardrails: {exc}"[:1000]
        else:
            record.update(
                version=guardrails.GUARDRAILS_VERSION,
                rules=guardrails.enforced_rules(sandbox=bool(sandbox), mutating=mutating),
                mutating_defaults=mutating,
                sandbox_default_for_pods=bool(mutating and bare_pods),
                platform_identity=identity,
                ingress_domain=domain,
                error="",
                proxy_error=proxy_error,  # the kubectl proxy cannot serve the cluster while this is set
            )
            if removed:
                record["removed"] = removed[:50]
    with transaction.atomic():
        cluster = Cluster.objects.select_for_update().get(pk=cluster_id)
        Cluster.objects.filter(pk=cluster_id).update(guardrails=record)
        before = {k: previous.get(k) for k in _GUARDRAIL_KEYS}
        after = {k: record.get(k) for k in _GUARDRAIL_KEYS}
        if before != after:
            audit_log(
                actor=None,
                action="cluster.guardrails",
                target=cluster,
                org=cluster.dedicated_org,
                details={"from": before, "to": after, "removed": record.get("removed", [])},
            )
        cluster.refresh_from_db()
    return cluster
