"""Usage counters: what the active instances of a scope hold, kept up to date in the transaction of
every state change that moves resources (``instances.counters``), so that a launch decides against its
limits with one conditional statement instead of re-summing instances under a lock."""

from django.db import models
from django.db.models import Q

from tenancy.models import Organization, Project, User

#: The counted amounts (what a quota or a per-user limit bounds).
AMOUNTS = ("gpu_units", "cpu_millis", "memory_gib", "storage_gib", "instances")


class UsageCounter(models.Model):
    """The usage of one scope: an org (``project`` and ``user`` empty), a workspace (``project``), a
    user in an org (``user``) or a user in a workspace (both). ``gpu_model`` empty: the totals; set:
    the GPU units that count against a per-model limit of that model (whole GPUs of it and MIG slices
    whose parent may be of it; ``mig:<profile>`` holds slices whose parent nobody knows, which count
    against every model offering that slice). Rows are created on demand by the first change."""

    org = models.ForeignKey(
        Organization, verbose_name="organization", on_delete=models.CASCADE, related_name="usage_counters"
    )
    project = models.ForeignKey(
        Project,
        verbose_name="workspace",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="usage_counters",
    )
    user = models.ForeignKey(
        User, verbose_name="user", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    gpu_model = models.CharField("GPU model", max_length=120, blank=True, default="")
    gpu_units = models.BigIntegerField("GPU units (28ths of a GPU)", default=0)
    cpu_millis = models.BigIntegerField("CPU (millicores)", default=0)
    memory_gib = models.BigIntegerField("memory (GiB)", default=0)
    storage_gib = models.BigIntegerField("storage (GiB)", default=0)
    instances = models.BigIntegerField("instances", default=0)

    class Meta:
        verbose_name = "usage counter"
        verbose_name_plural = "usage counters"
        ordering = ["org_id", "project_id", "user_id", "gpu_model"]
        constraints = [
            models.UniqueConstraint(
                fields=["org", "project", "user", "gpu_model"],
                nulls_distinct=False,
                name="instances_usagecounter_scope_unique",
            ),
            *(
                models.CheckConstraint(
                    condition=Q(**{f"{amount}__gte": 0}), name=f"instances_usagecounter_{amount}_not_negative"
                )
                for amount in AMOUNTS
            ),
        ]

    def __str__(self) -> str:
        scope = "/".join(str(x) for x in (self.org_id, self.project_id, self.user_id) if x is not None)
        return f"usage {scope}{' ' + self.gpu_model if self.gpu_model else ''}"


class UsageCounterCheck(models.Model):
    """One run of the drift check (``instances.counters.counters_check``): the usage counters and the
    clusters' capacity reservations compared with a re-sum of the instances. The newest one is what the
    studio home and the ``paas_usage_counter_drift`` gauge show; older ones are pruned."""

    checked_at = models.DateTimeField("checked", auto_now_add=True)
    drift = models.JSONField("drift", default=list, blank=True, help_text="One line per differing row.")
    fixed = models.BooleanField("repaired", default=False)

    class Meta:
        verbose_name = "usage counter check"
        verbose_name_plural = "usage counter checks"
        ordering = ["-checked_at", "-pk"]
        indexes = [models.Index(fields=["-checked_at"], name="instances_usagecheck_recent")]

    def __str__(self) -> str:
        return f"usage check {self.checked_at:%Y-%m-%d %H:%M}: {len(self.drift)} drifting"


class WarmPoolUsage(models.Model):
    """What one warm pool's standby instances hold against its pool quota (``WarmPool.max_gpus``): the
    GPU units of its standbys in ``STANDBY_HOLDING`` (``instances.pool_quota``). The loop takes with one
    conditional UPDATE against the quota; a claim and a standby's deletion give back, in the
    transaction of their state change; the drift check compares it with a re-sum of the standbys.
    A row of its own, not a column of the pool: the loop holds the pool's row for its whole pass, and a
    claim must not wait for that."""

    pool = models.OneToOneField(
        "instances.WarmPool",
        verbose_name="warm pool",
        primary_key=True,
        on_delete=models.CASCADE,
        related_name="usage",
    )
    gpu_units = models.BigIntegerField("GPU units (28ths of a GPU)", default=0, db_default=0)
    updated_at = models.DateTimeField("updated", auto_now=True)

    class Meta:
        verbose_name = "warm pool usage"
        verbose_name_plural = "warm pool usage"
        constraints = [
            models.CheckConstraint(
                condition=Q(gpu_units__gte=0), name="instances_warmpoolusage_gpu_units_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"usage of pool {self.pool_id}: {self.gpu_units} GPU units"
