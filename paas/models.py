"""Cross-cutting records: the audit trail (and how kubectl reads reach it), personal API tokens and worker
heartbeats."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from paas.context import Client
from paas.fields import EncryptedTextField


class AuditEvent(models.Model):
    """One state change, append-only and hash-chained.

    Events form one chain per organization (``chain`` = org id; 0 for platform-level events such as
    operator actions outside any org or a user's own API tokens). ``seq`` counts 1, 2, ... inside a chain
    and ``hash`` covers the event's content and the previous event's hash, so altering, removing or
    reordering a row breaks the chain (``manage.py audit_verify``). On PostgreSQL triggers refuse
    UPDATE, DELETE and TRUNCATE on this table; each chain's head is also checkpointed, signed, outside
    the database (paas/checkpoints.py), so a cut tail or a re-hashed chain is found too.

    An event is written *unsealed* (``seq``, ``prev_hash`` and ``hash`` empty: NULL, "", NULL) in the
    transaction of the change it records, and *sealed* (given its place in the chain) right after that
    commits (paas/audit.py): the one UPDATE the triggers let through sets exactly those three columns,
    once.

    Org, project and actor are plain ids without foreign-key constraints: the trail outlives what it
    describes, and a cascade must never reach it.
    """

    chain = models.BigIntegerField("chain", db_index=True)
    seq = models.BigIntegerField("sequence", null=True, blank=True)  # empty until sealed
    created_at = models.DateTimeField("time", default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name="actor",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    actor_repr = models.CharField("actor name", max_length=254, blank=True)
    org = models.ForeignKey(
        "tenancy.Organization",
        verbose_name="organization",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    project = models.ForeignKey(
        "tenancy.Project",
        verbose_name="project",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    client = models.CharField("client", max_length=16, choices=Client.choices)
    action = models.CharField("action", max_length=64, db_index=True)
    target_type = models.CharField("target type", max_length=64)
    target_id = models.CharField("target id", max_length=64, blank=True)
    target_repr = models.CharField("target", max_length=255, blank=True)
    details = models.JSONField("details", default=dict, blank=True)
    request_id = models.CharField("request id", max_length=64, blank=True)
    # The cluster a kubectl request went to (a plain id: paas knows no clusters; hashed only when set,
    # so the chains written before it existed still verify).
    cluster_id = models.BigIntegerField("cluster id", null=True, blank=True)
    prev_hash = models.CharField("previous hash", max_length=64, blank=True)  # "" until sealed
    hash = models.CharField("hash", max_length=64, unique=True, null=True, blank=True)

    class Meta:
        verbose_name = "audit event"
        verbose_name_plural = "audit events"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["chain", "seq"], name="paas_auditevent_chain_seq_unique"),
            models.CheckConstraint(
                condition=models.Q(seq__isnull=True, prev_hash="", hash__isnull=True)
                | (models.Q(seq__isnull=False, hash__isnull=False) & ~models.Q(prev_hash="")),
                name="paas_auditevent_sealed_whole",
            ),
        ]
        indexes = [
            models.Index(fields=["org", "created_at"], name="paas_audit_org_time_idx"),
            models.Index(fields=["project", "created_at"], name="paas_audit_project_time_idx"),
            models.Index(
                fields=["cluster_id", "created_at"],
                name="paas_audit_cluster_time_idx",
                condition=models.Q(cluster_id__isnull=False),
            ),
            # The sealers' work list: a handful of rows at any time, however long the trail.
            models.Index(
                fields=["chain", "id"], name="paas_audit_unsealed_idx", condition=models.Q(seq__isnull=True)
            ),
        ]

    def __str__(self) -> str:
        actor = self.actor_repr or "system"
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {actor} {self.action} {self.target_repr}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not kwargs.get("force_insert"):
            raise RuntimeError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise RuntimeError("Audit events are append-only.")


class KubectlReads(models.TextChoices):
    """How the kubectl proxy's reads (get, list, watch, discovery) reach the audit trail. Writes are
    always recorded one by one."""

    ALL = "all", "Record every read"
    SAMPLE = "sample", "Record 1 read in N"
    SUMMARY = "summary", "Summarise reads (one event per user, instance, verb, resource and namespace)"


class AuditSettings(models.Model):
    """The operators' audit settings: one row (pk 1), changed only through
    ``paas.audit_settings.audit_settings_update`` (audited)."""

    kubectl_reads = models.CharField(
        "kubectl reads", max_length=16, choices=KubectlReads.choices, default=KubectlReads.ALL
    )
    kubectl_sample_every = models.PositiveIntegerField(
        "sample 1 read in",
        default=10,
        help_text="With sampling: one read in this many is recorded (2 to 1000).",
    )
    updated_at = models.DateTimeField("updated", auto_now=True)

    class Meta:
        verbose_name = "audit settings"
        verbose_name_plural = "audit settings"

    def __str__(self) -> str:
        return "Audit settings"


class TokenScope(models.TextChoices):
    """What an API token may do; each scope's rule is in ``paas.api.scopes``. A narrower scope is a new
    choice here and a rule there (``billing:read``: the provider's billing system reads the billing
    API, nothing else)."""

    READ_WRITE = "read-write", "Read and write"
    READ_ONLY = "read-only", "Read only"
    BILLING_READ = "billing:read", "Billing read (the billing API only, read only)"


class ApiToken(models.Model):
    """A personal API token: shown once at creation, stored only as a SHA-256 digest.

    The presented token is ``gpaas_<prefix>_<secret>``; ``prefix`` finds the row, the digest of the whole
    token is compared in constant time. Tokens always expire and can be revoked. ``scope`` bounds what a
    request made with the token may do, whatever its user's roles allow.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name="user", on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField("name", max_length=100)
    scope = models.CharField(
        "scope", max_length=32, choices=TokenScope.choices, default=TokenScope.READ_WRITE
    )
    prefix = models.CharField("prefix", max_length=12, unique=True)
    digest = models.CharField("digest", max_length=64)
    created_at = models.DateTimeField("created", auto_now_add=True)
    expires_at = models.DateTimeField("expires")
    last_used_at = models.DateTimeField("last used", null=True, blank=True)
    revoked_at = models.DateTimeField("revoked", null=True, blank=True)

    class Meta:
        verbose_name = "API token"
        verbose_name_plural = "API tokens"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["user", "name"], name="paas_apitoken_user_name_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.name} (gpaas_{self.prefix}_…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and self.expires_at > timezone.now()


class WorkerHeartbeat(models.Model):
    """The last time a worker cluster ran its heartbeat schedule; /readyz reads the newest one."""

    cluster = models.CharField("worker cluster", max_length=100, unique=True)
    seen_at = models.DateTimeField("last seen")

    class Meta:
        verbose_name = "worker heartbeat"
        verbose_name_plural = "worker heartbeats"

    def __str__(self) -> str:
        return f"{self.cluster} @ {self.seen_at:%H:%M:%S}"


class SinkKind(models.TextChoices):
    SYSLOG = "syslog", "Syslog (RFC 5424 over TLS, RFC 5425 framing)"
    HTTPS = "https", "HTTPS JSON webhook (HMAC-SHA256 signature)"
    SPLUNK_HEC = "splunk_hec", "Splunk HTTP Event Collector"


class AuditSink(models.Model):
    """A SIEM the audit trail streams to (paas/audit_stream.py delivers, paas/audit_sinks.py manages).

    ``org`` NULL: the platform's events (chain 0), set by operators; else that org's chain, set by its
    admins. ``cursor`` is the last ``seq`` of the chain the receiver accepted: delivery resumes after
    it, in order, at least once. ``consecutive_failures`` counts failed attempts since the last
    success; at ``unhealthy_after`` the sink is shown unhealthy, and it keeps being retried (with the
    backoff, capped at ``backoff_max_seconds``) until it catches up.
    """

    org = models.ForeignKey(
        "tenancy.Organization",
        verbose_name="organization",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="audit_sinks",
        help_text="Empty: the platform's events (operators only).",
    )
    name = models.CharField("name", max_length=100)
    kind = models.CharField("kind", max_length=16, choices=SinkKind.choices)
    url = models.CharField(
        "address",
        max_length=500,
        help_text="syslog: tls://host:port (6514 by default); HTTPS and Splunk HEC: the https:// URL "
        "events are posted to (Splunk: …/services/collector/event).",
    )
    ca_pem = models.TextField(
        "CA certificate (PEM)",
        blank=True,
        help_text="The CA the receiver's certificate must chain to (pinned). Empty: the system's trusted "
        "CAs. The certificate is always verified, host name included.",
    )
    # The HMAC key of a webhook or the token of a Splunk HEC; encrypted under the org's key.
    secret = EncryptedTextField("secret")
    sourcetype = models.CharField("Splunk sourcetype", max_length=100, default="gpupaas:audit", blank=True)
    enabled = models.BooleanField("enabled", default=True)
    batch_size = models.PositiveIntegerField("batch size", default=100)
    backoff_initial_seconds = models.PositiveIntegerField("first retry after (seconds)", default=5)
    backoff_max_seconds = models.PositiveIntegerField("longest retry interval (seconds)", default=300)
    unhealthy_after = models.PositiveIntegerField("unhealthy after (failures)", default=5)
    cursor = models.BigIntegerField("delivered up to seq", default=0)
    consecutive_failures = models.PositiveIntegerField("consecutive failures", default=0)
    next_attempt_at = models.DateTimeField("next attempt", null=True, blank=True)
    last_delivery_at = models.DateTimeField("last delivery", null=True, blank=True)
    last_error = models.TextField("last error", blank=True)
    last_error_at = models.DateTimeField("last error at", null=True, blank=True)
    created_at = models.DateTimeField("created", auto_now_add=True)
    updated_at = models.DateTimeField("updated", auto_now=True)

    # View: whoever sees the org's audit trail; change: its admins (operators: the platform's sinks).
    authz_parents = {
        "view_auditsink": [("org", "view_audit")],
        "change_auditsink": [("org", "administer_organization")],
        "delete_auditsink": [("org", "administer_organization")],
    }
    secret_org_field = "org"  # noqa: S105 - per-org data keys (paas/keyring.py): the secret is the org's

    class Meta:
        verbose_name = "audit sink"
        verbose_name_plural = "audit sinks"
        ordering = ["org_id", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["org", "name"], name="paas_auditsink_org_name_unique", nulls_distinct=False
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def chain(self) -> int:
        return self.org_id if self.org_id is not None else 0

    @property
    def health(self) -> str:
        """``disabled``, ``unhealthy`` (``unhealthy_after`` failures in a row), ``failing`` (fewer) or
        ``healthy``."""
        if not self.enabled:
            return "disabled"
        if self.consecutive_failures >= max(1, self.unhealthy_after):
            return "unhealthy"
        return "failing" if self.consecutive_failures else "healthy"


from paas.keyring_models import KeyState, OrgDataKey  # noqa: E402,F401  (a model of this app)


class Brand(models.Model):
    """White-label branding: the platform's brand (``org`` NULL, one row) and optional per-org brands
    (a reseller's customers see the reseller's brand). Written only through ``paas.branding`` (which
    validates colours, contrast, images and the email sender; audited); read through its selectors.

    Images are small and kept here (bytes, the type found from their magic bytes, a SHA-256 digest
    that names them in their address, so they can be cached for good)."""

    org = models.ForeignKey(
        "tenancy.Organization",
        verbose_name="organization",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="Empty: the platform's brand. Else the brand this organization's people see.",
    )
    product_name = models.CharField("product name", max_length=60, default="GPU PaaS")
    portal_name = models.CharField("portal name", max_length=60, default="Developer hub")
    studio_name = models.CharField("studio name", max_length=60, default="PaaS Studio")
    color_background = models.CharField("background colour", max_length=7, default="#ffffff")
    color_text = models.CharField("text colour", max_length=7, default="#373c44")
    color_primary = models.CharField("primary colour", max_length=7, default="#0b5cad")
    color_primary_text = models.CharField("text on the primary colour", max_length=7, default="#ffffff")
    logo = models.BinaryField("logo", null=True, blank=True, editable=False)
    logo_type = models.CharField("logo type", max_length=40, blank=True, editable=False)
    logo_digest = models.CharField("logo digest", max_length=64, blank=True, editable=False)
    favicon = models.BinaryField("favicon", null=True, blank=True, editable=False)
    favicon_type = models.CharField("favicon type", max_length=40, blank=True, editable=False)
    favicon_digest = models.CharField("favicon digest", max_length=64, blank=True, editable=False)
    support_email = models.CharField("support email", max_length=254, blank=True)
    support_url = models.CharField("support page", max_length=500, blank=True)
    email_from_name = models.CharField("email sender name", max_length=100, blank=True)
    email_from_address = models.CharField("email sender address", max_length=254, blank=True)
    email_footer = models.TextField("email footer", max_length=1000, blank=True)
    updated_at = models.DateTimeField("updated", auto_now=True)

    class Meta:
        verbose_name = "brand"
        verbose_name_plural = "brands"
        ordering = [models.F("org").asc(nulls_first=True)]
        constraints = [
            models.UniqueConstraint(
                models.functions.Coalesce("org", models.Value(0)),
                name="paas_brand_one_per_org",
                violation_error_message="There is one brand per organization, and one for the platform.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.product_name} ({self.org if self.org_id else 'platform'})"
