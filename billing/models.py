"""Metering, chargeback rates and budgets.

* A **meter** is what billing keeps of one compute or service instance: who launched it where, from
  which profile, at which price (the launch snapshot's cost metadata), with what resources. It is
  created the first time the instance changes state and copies everything it needs, so that deleting
  the instance, its profile or its workspace later never changes a period already billed.
* An **interval** is a stretch of billable time of a meter: *running*, *stopped* (storage only) or
  *deleting* (storage only). Intervals open and close in the transaction of the instance's state change
  (``instances.signals.instance_state_changed``), so running time is exact to the second.
* A **usage record** is a meter's usage in one clock hour (UTC), rolled up from the intervals by a
  schedule; re-running the roll-up of an hour rewrites the same rows.
* A **cost profile** gives a cluster's chargeback rates (per GPU-hour by model, per MIG-slice-hour, per
  CPU-hour, per GiB-hour of memory and of storage) from a date on; a change adds a new one, so past
  hours keep the rates they were charged at.
* A **budget** is a monthly amount for an org or one of its workspaces, with alerts at 50, 75, 90 and
  100 percent (each sent once per month) and an optional hard stop on launches.
"""

from django.db import models
from django.db.models import Q

from instances.models import ComputeInstance, ServiceInstance
from inventory.models import Cluster
from tenancy.models import Organization, Project, User

MONEY = {"max_digits": 18, "decimal_places": 6}


class Meter(models.Model):
    """Billing's copy of one compute or service instance: identity, price and resources."""

    class Kind(models.TextChoices):
        COMPUTE = "compute", "Compute instance"
        SERVICE = "service", "Service instance"

    kind = models.CharField("kind", max_length=8, choices=Kind.choices)
    compute_instance = models.ForeignKey(
        ComputeInstance,
        verbose_name="compute instance",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="For a service, the compute instance it runs on. Empty once the instance row is gone.",
    )
    service_instance = models.ForeignKey(
        ServiceInstance,
        verbose_name="service instance",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    instance_key = models.CharField(
        "instance key",
        max_length=40,
        unique=True,
        help_text="compute:<id> or service:<id>: the instance metered, kept when its row is gone.",
    )
    name = models.CharField("instance name", max_length=63)
    org = models.ForeignKey(
        Organization, verbose_name="organization", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    org_name = models.CharField("organization name", max_length=200)
    project = models.ForeignKey(
        Project, verbose_name="workspace", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    project_name = models.CharField("workspace name", max_length=200)
    owner = models.ForeignKey(
        User, verbose_name="launched by", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    owner_repr = models.CharField("launched by (name)", max_length=254)
    profile_id = models.BigIntegerField("profile id", null=True, blank=True)
    profile_name = models.CharField("profile", max_length=200)
    cluster = models.ForeignKey(
        Cluster, verbose_name="cluster", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    cluster_name = models.CharField("cluster name", max_length=63, blank=True)
    namespace = models.CharField("namespace", max_length=63, blank=True)
    # The price of the launch snapshot (catalog.pricing).
    currency = models.CharField("currency", max_length=3)
    amount = models.DecimalField("price", max_digits=12, decimal_places=4)
    unit = models.CharField("price unit", max_length=8)
    billing_model = models.CharField("billing model", max_length=16)
    stopped_amount = models.DecimalField("price while stopped", max_digits=12, decimal_places=4)
    # Resources (a compute instance's totals; a service's use of its compute instance).
    gpus = models.PositiveIntegerField("GPUs", default=0)
    gpu_units = models.PositiveIntegerField("GPU quota units", default=0)
    gpus_by_model = models.JSONField("GPUs by model", default=dict, blank=True)
    mig_slices = models.JSONField("MIG slices", default=dict, blank=True)
    cpu_millis = models.PositiveBigIntegerField("CPU (millicores)", default=0)
    memory_gib = models.DecimalField("memory (GiB)", max_digits=12, decimal_places=3, default=0)
    storage_gib = models.DecimalField("storage (GiB)", max_digits=12, decimal_places=3, default=0)
    created_at = models.DateTimeField(
        "launched", help_text="The instance's launch (reserved terms start here)."
    )
    ended_at = models.DateTimeField("deleted", null=True, blank=True)

    class Meta:
        verbose_name = "meter"
        verbose_name_plural = "meters"
        ordering = ["pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind="compute", service_instance__isnull=True) | Q(kind="service"),
                name="billing_meter_compute_has_no_service",
            ),
            models.CheckConstraint(
                condition=Q(ended_at__isnull=True) | Q(ended_at__gte=models.F("created_at")),
                name="billing_meter_ends_after_launch",
            ),
        ]
        indexes = [
            models.Index(fields=["org", "id"], name="billing_meter_org_id"),
            models.Index(fields=["created_at", "ended_at"], name="billing_meter_lifetime"),
        ]

    def __str__(self) -> str:
        return f"{self.project_name}/{self.name} ({self.get_kind_display().lower()})"


class Interval(models.Model):
    """A stretch of billable time of a meter; ``ended_at`` empty while it lasts."""

    class Kind(models.TextChoices):
        RUNNING = "running", "Running"
        STOPPED = "stopped", "Stopped (storage only)"
        DELETING = "deleting", "Deleting (storage only)"

    meter = models.ForeignKey(Meter, verbose_name="meter", on_delete=models.CASCADE, related_name="intervals")
    kind = models.CharField("kind", max_length=8, choices=Kind.choices)
    started_at = models.DateTimeField("from")
    ended_at = models.DateTimeField("until", null=True, blank=True)

    class Meta:
        verbose_name = "billable interval"
        verbose_name_plural = "billable intervals"
        ordering = ["meter", "started_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["meter"], condition=Q(ended_at__isnull=True), name="billing_interval_one_open"
            ),
            models.CheckConstraint(
                condition=Q(ended_at__isnull=True) | Q(ended_at__gte=models.F("started_at")),
                name="billing_interval_ends_after_start",
            ),
        ]
        indexes = [
            models.Index(fields=["meter", "started_at"], name="billing_interval_meter_start"),
            models.Index(fields=["started_at"], name="billing_interval_start"),
            models.Index(fields=["ended_at"], name="billing_interval_end"),
        ]

    def __str__(self) -> str:
        return f"{self.meter}: {self.kind} from {self.started_at:%Y-%m-%d %H:%M:%S}"


class UsageRecord(models.Model):
    """A meter's usage in one clock hour (UTC), rolled up from its intervals."""

    meter = models.ForeignKey(Meter, verbose_name="meter", on_delete=models.CASCADE, related_name="usage")
    hour = models.DateTimeField("hour", help_text="The hour's start (UTC).")
    running_seconds = models.PositiveIntegerField("running (s)", default=0)
    stopped_seconds = models.PositiveIntegerField("stopped (s)", default=0)
    deleting_seconds = models.PositiveIntegerField("deleting (s)", default=0)
    existing_seconds = models.PositiveIntegerField(
        "existing (s)", default=0, help_text="Launched and not deleted: what a reserved term bills."
    )
    gpu_seconds = models.PositiveBigIntegerField("GPU-seconds", default=0)
    gpu_seconds_by_model = models.JSONField("GPU-seconds by model", default=dict, blank=True)
    cost = models.DecimalField("cost (list price)", **MONEY, default=0)
    currency = models.CharField("currency", max_length=3)
    chargeback_cost = models.DecimalField(
        "chargeback cost", **MONEY, null=True, blank=True, help_text="Empty: the cluster has no cost profile."
    )
    chargeback_currency = models.CharField("chargeback currency", max_length=3, blank=True)
    gpu_utilisation = models.FloatField(
        "GPU utilisation",
        null=True,
        blank=True,
        help_text="Mean GPU utilisation (0..1) over the hour from the cluster's Prometheus; empty: unknown.",
    )
    idle_gpu_seconds = models.PositiveBigIntegerField(
        "idle GPU-seconds", null=True, blank=True, help_text="Allocated but unused; empty: unknown."
    )
    rolled_up_at = models.DateTimeField("rolled up", auto_now=True)

    class Meta:
        verbose_name = "usage record"
        verbose_name_plural = "usage records"
        ordering = ["hour", "meter"]
        constraints = [
            models.UniqueConstraint(fields=["meter", "hour"], name="billing_usage_one_per_meter_hour"),
        ]
        indexes = [models.Index(fields=["hour"], name="billing_usage_hour")]

    def __str__(self) -> str:
        return f"{self.meter} at {self.hour:%Y-%m-%d %H:00}"


class RollupState(models.Model):
    """How far the hourly roll-up has got: every hour before ``complete_until`` is rolled up (one row)."""

    name = models.CharField("name", max_length=32, unique=True, default="hourly")
    complete_until = models.DateTimeField("complete until", null=True, blank=True)
    updated_at = models.DateTimeField("updated", auto_now=True)

    class Meta:
        verbose_name = "roll-up state"
        verbose_name_plural = "roll-up state"

    def __str__(self) -> str:
        return f"{self.name}: {self.complete_until}"


class CostProfile(models.Model):
    """A cluster's chargeback rates from ``effective_from`` on (until the next one's)."""

    cluster = models.ForeignKey(
        Cluster, verbose_name="cluster", on_delete=models.CASCADE, related_name="cost_profiles"
    )
    effective_from = models.DateTimeField("effective from")
    currency = models.CharField("currency", max_length=3, default="USD")
    gpu_hour = models.JSONField(
        "per GPU-hour, by model", default=dict, blank=True, help_text='e.g. {"A100-SXM4-40GB": "2.5000"}'
    )
    mig_slice_hour = models.JSONField(
        "per MIG-slice-hour, by profile", default=dict, blank=True, help_text='e.g. {"1g.10gb": "0.4000"}'
    )
    cpu_hour = models.DecimalField("per CPU-hour", max_digits=12, decimal_places=6, default=0)
    memory_gib_hour = models.DecimalField(
        "per GiB-hour of memory", max_digits=12, decimal_places=6, default=0
    )
    storage_gib_hour = models.DecimalField(
        "per GiB-hour of storage", max_digits=12, decimal_places=6, default=0
    )
    created_by = models.ForeignKey(
        User, verbose_name="created by", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField("created", auto_now_add=True)

    class Meta:
        verbose_name = "cost profile"
        verbose_name_plural = "cost profiles"
        ordering = ["cluster", "-effective_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["cluster", "effective_from"], name="billing_costprofile_one_per_start"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.cluster} from {self.effective_from:%Y-%m-%d %H:%M}"


class Budget(models.Model):
    """A monthly budget of an org (``project`` empty) or of one of its workspaces."""

    THRESHOLDS = (50, 75, 90, 100)

    org = models.ForeignKey(
        Organization, verbose_name="organization", on_delete=models.CASCADE, related_name="budgets"
    )
    project = models.ForeignKey(
        Project,
        verbose_name="workspace",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="budgets",
    )
    amount = models.DecimalField("monthly amount", max_digits=14, decimal_places=2)
    currency = models.CharField("currency", max_length=3, default="USD")
    hard_stop = models.BooleanField(
        "hard stop",
        default=False,
        help_text="Refuse new launches once the month's spend reaches the budget (prepaid).",
    )
    created_by = models.ForeignKey(
        User, verbose_name="created by", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField("created", auto_now_add=True)
    updated_at = models.DateTimeField("updated", auto_now=True)

    class Meta:
        verbose_name = "budget"
        verbose_name_plural = "budgets"
        ordering = ["org", "project"]
        constraints = [
            models.UniqueConstraint(
                fields=["org"], condition=Q(project__isnull=True), name="billing_budget_one_per_org"
            ),
            models.UniqueConstraint(fields=["project"], name="billing_budget_one_per_project"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="billing_budget_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.project or self.org}: {self.amount} {self.currency} a month"


class BudgetAlert(models.Model):
    """A threshold a budget's spend crossed in a month: sent once (email and portal)."""

    budget = models.ForeignKey(Budget, verbose_name="budget", on_delete=models.CASCADE, related_name="alerts")
    period = models.DateField("month", help_text="The first day of the month.")
    threshold = models.PositiveSmallIntegerField("threshold (%)")
    spend = models.DecimalField("spend so far", **MONEY)
    projected = models.DecimalField("projected month-end spend", **MONEY)
    created_at = models.DateTimeField("raised", auto_now_add=True)
    emailed_at = models.DateTimeField("emailed", null=True, blank=True)

    class Meta:
        verbose_name = "budget alert"
        verbose_name_plural = "budget alerts"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["budget", "period", "threshold"], name="billing_alert_once_per_month"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.budget}: {self.threshold}% of {self.period:%Y-%m}"
