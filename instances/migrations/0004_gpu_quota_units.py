"""GPU quotas count MIG slices: every instance gets its usage in 28ths of a GPU (``gpu_units``) and
the GPU models that may host its MIG slices (``mig_parents``), filled here for existing instances
(from the nodes of the cluster each one was placed on)."""

from django.db import migrations, models


def fill(apps, schema_editor):
    from inventory import mig
    from inventory.matchmaker import normalize_mig_profile

    ComputeInstance = apps.get_model("instances", "ComputeInstance")
    Node = apps.get_model("inventory", "Node")
    offered: dict[int, dict[str, set[str]]] = {}
    for cluster_id, product, allocatable in Node.objects.exclude(gpu_product="").values_list(
        "cluster_id", "gpu_product", "allocatable_mig"
    ):
        for resource, count in (allocatable or {}).items():
            if count:
                offered.setdefault(cluster_id, {}).setdefault(normalize_mig_profile(resource), set()).add(
                    product
                )
    for instance in ComputeInstance.objects.only("pk", "gpus", "mig_slices", "cluster_id").iterator():
        slices = instance.mig_slices or {}
        parents = {
            profile: sorted(offered.get(instance.cluster_id, {}).get(profile, ()))
            for profile in slices
            if offered.get(instance.cluster_id, {}).get(profile)
        }
        ComputeInstance.objects.filter(pk=instance.pk).update(
            gpu_units=mig.gpu_units(gpus=instance.gpus, mig_slices=slices), mig_parents=parents
        )


class Migration(migrations.Migration):
    dependencies = [
        ("instances", "0003_collaborator_invitations"),
        ("inventory", "0002_inventory_sync_schedule"),
    ]

    operations = [
        migrations.AddField(
            model_name="computeinstance",
            name="gpu_units",
            field=models.PositiveIntegerField(
                default=0,
                help_text="28ths of a GPU: a whole GPU counts 28, a MIG slice its fraction (1g.10gb = 1/7 = 4).",
                verbose_name="GPU quota units",
            ),
        ),
        migrations.AddField(
            model_name="computeinstance",
            name="mig_parents",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text="Per MIG profile, the GPU models that may host its slices (what per-model limits count).",
                verbose_name="MIG parent GPU models",
            ),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
