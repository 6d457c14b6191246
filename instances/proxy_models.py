"""The kubectl proxy's records: the short-lived credentials its kubeconfigs carry, and the requests it
has forwarded but not yet chained into the audit trail.

A :class:`KubeCredential` is the platform's own credential for one user on one compute instance: the
kubeconfig downloaded from the portal or the API points at the platform's proxy
(``/k8s/instances/<id>/``) with this token, never at the cluster. It is stored as a SHA-256 digest,
expires, can be revoked, and is worth nothing once its user loses the instance's permission (checked
at every request). :class:`ProxyRequestLog` rows are written by the proxy without taking the org's
audit-chain lock; ``instances.kubeproxy.auditing`` chains them into the tenant's trail in batches.
"""

from django.conf import settings
from django.db import models


class KubeCredential(models.Model):
    """A kubeconfig's token for the platform's Kubernetes API proxy, bound to a user and an instance.

    The presented token is ``gpk_<prefix>_<secret>``; ``prefix`` finds the row and the digest of the
    whole token is compared in constant time. Only the digest is kept.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name="user",
        on_delete=models.CASCADE,
        related_name="kube_credentials",
    )
    instance = models.ForeignKey(
        "instances.ComputeInstance",
        verbose_name="compute instance",
        on_delete=models.CASCADE,
        related_name="kube_credentials",
    )
    prefix = models.CharField("prefix", max_length=16, unique=True)
    digest = models.CharField("digest", max_length=64)
    via = models.CharField(
        "issued for", max_length=16, default="kubeconfig", help_text="kubeconfig (a download) or shell."
    )
    created_at = models.DateTimeField("created", auto_now_add=True)
    expires_at = models.DateTimeField("expires")
    revoked_at = models.DateTimeField("revoked", null=True, blank=True)
    last_used_at = models.DateTimeField("last used", null=True, blank=True)

    class Meta:
        verbose_name = "kubectl credential"
        verbose_name_plural = "kubectl credentials"
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["instance", "user"], name="instances_kubecred_inst_user"),
            models.Index(fields=["expires_at"], name="instances_kubecred_expires"),
        ]

    def __str__(self) -> str:
        return f"{self.label}_… ({self.user_id} on {self.instance_id})"

    @property
    def label(self) -> str:
        """How the audit trail and the pages name it: the token's public part, never its secret."""
        return f"gpk_{self.prefix}"


class ProxyRequestLog(models.Model):
    """One request forwarded by the kubectl proxy, waiting to be chained into the org's audit trail.

    Written by the proxy with a plain insert (no audit-chain lock, so kubectl calls never queue behind
    launches); moved into ``paas.AuditEvent`` in batches by ``instances.kubeproxy.auditing.flush`` and
    then deleted. Plain ids: the trail outlives what it describes.
    """

    created_at = models.DateTimeField("time", db_index=True)
    org_id = models.BigIntegerField("organization id")
    project_id = models.BigIntegerField("project id")
    instance_id = models.BigIntegerField("instance id")
    instance_name = models.CharField("instance", max_length=255)
    cluster_id = models.BigIntegerField("cluster id")
    cluster_name = models.CharField("cluster", max_length=255)
    user_id = models.BigIntegerField("user id")
    user_repr = models.CharField("user", max_length=254)
    client = models.CharField("client", max_length=16, help_text="kubectl (a kubeconfig) or shell.")
    method = models.CharField("HTTP method", max_length=16)
    verb = models.CharField("verb", max_length=32)
    api_group = models.CharField("API group", max_length=255, blank=True)
    resource = models.CharField("resource", max_length=255, blank=True)
    subresource = models.CharField("subresource", max_length=64, blank=True)
    namespace = models.CharField("namespace", max_length=255, blank=True)
    name = models.CharField("name", max_length=255, blank=True)
    path = models.CharField("path", max_length=2048)
    command = models.CharField("kubectl command", max_length=1024, blank=True)
    status = models.PositiveSmallIntegerField("response code", null=True, blank=True)
    request_id = models.CharField("request id", max_length=64, blank=True)

    class Meta:
        verbose_name = "proxied request (pending audit)"
        verbose_name_plural = "proxied requests (pending audit)"
        ordering = ["pk"]

    def __str__(self) -> str:
        return f"{self.verb} {self.resource} {self.name} ({self.status})"
