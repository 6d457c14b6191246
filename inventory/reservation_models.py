"""What the platform holds on each cluster: one row per cluster (``ClusterReservation``).

A launch takes its GPUs, MIG slices, CPU and memory on the chosen cluster with one conditional UPDATE
of this row (``instances.capacity.capacity_reserve``: held + wanted <= allocatable of the cluster's
schedulable nodes, for every resource it asks for), in the launch's own transaction; a stop, a delete
and a retired standby give them back the same way (``capacity_release``). Two launches of any orgs can
therefore never both take a cluster's last GPUs: the second one's UPDATE waits for the first to commit,
re-reads the row and finds no room. The matchmaker subtracts these rows (``instances.selectors
.reservations``: one query) instead of summing every active instance on each launch.

The rule of what holds capacity, and the re-sum that checks and rebuilds these rows, live in
``instances.capacity`` (the layer that knows instances and standbys); this module only keeps the rows.
"""

from django.db import models

from inventory.models import Cluster

NON_NEGATIVE = "$.* ? (@ < 0)"  # a jsonpath finding a negative amount in a {name: amount} object


def _no_negative(field: str):
    """``NOT jsonb_path_exists(field, '$.* ? (@ < 0)')``: no amount in the JSON object is negative."""
    return models.lookups.Exact(
        models.Func(
            models.F(field),
            models.Value(NON_NEGATIVE),
            function="jsonb_path_exists",
            output_field=models.BooleanField(),
        ),
        False,
    )


class ClusterReservation(models.Model):
    """The capacity the platform's instances and warm-pool standbys hold on one cluster (their pods'
    requests, as the profiles ask them): whole GPUs per GPU product, MIG slices per profile (the bare
    profile, e.g. ``1g.10gb``), CPU and memory. Created on a cluster's first reservation with the exact
    re-sum of what holds it then; kept by conditional UPDATEs; checked by ``capacity_drift``."""

    cluster = models.OneToOneField(
        Cluster,
        verbose_name="cluster",
        primary_key=True,
        on_delete=models.CASCADE,
        related_name="reservation",
    )
    gpus = models.JSONField("GPUs held", default=dict, help_text="Whole GPUs held per GPU product.")
    mig = models.JSONField("MIG slices held", default=dict, help_text="MIG slices held per MIG profile.")
    cpu_millis = models.BigIntegerField("CPU held (millicores)", default=0)
    memory_bytes = models.BigIntegerField("memory held (bytes)", default=0)
    updated_at = models.DateTimeField("updated", auto_now=True)

    class Meta:
        verbose_name = "cluster reservation"
        verbose_name_plural = "cluster reservations"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(cpu_millis__gte=0) & models.Q(memory_bytes__gte=0),
                name="inventory_clusterreservation_scalars_non_negative",
            ),
            models.CheckConstraint(
                condition=_no_negative("gpus"), name="inventory_clusterreservation_gpus_non_negative"
            ),
            models.CheckConstraint(
                condition=_no_negative("mig"), name="inventory_clusterreservation_mig_non_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"reservations on {self.cluster_id}"
