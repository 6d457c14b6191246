"""Partial indexes on the rows that hold a sealed secret (the key pages' counts: paas.keyring.holds_sealed),
built CONCURRENTLY: the instances, runs and services tables are the largest, and a plain CREATE INDEX
would block their writers (launches, deploys) while it is built (hence a non-atomic migration)."""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ('instances', '0012_usage_counter_check'),
    ]

    operations = [
        AddIndexConcurrently(
            model_name='computeinstance',
            index=models.Index(condition=models.Q(models.Func(models.F('snapshot'), models.Value('lax $.**.encrypted'), function='jsonb_path_exists', output_field=models.BooleanField())), fields=['org'], name='instances_ci_sealed_org'),
        ),
        AddIndexConcurrently(
            model_name='run',
            index=models.Index(condition=models.Q(models.Func(models.F('variables'), models.Value('lax $.**.encrypted'), function='jsonb_path_exists', output_field=models.BooleanField())), fields=['instance'], name='instances_run_sealed'),
        ),
        AddIndexConcurrently(
            model_name='serviceinstance',
            index=models.Index(condition=models.Q(models.Func(models.F('snapshot'), models.Value('lax $.**.encrypted'), function='jsonb_path_exists', output_field=models.BooleanField()), models.Func(models.F('input_values'), models.Value('lax $.**.encrypted'), function='jsonb_path_exists', output_field=models.BooleanField()), _connector='OR'), fields=['org'], name='instances_svc_sealed_org'),
        ),
    ]
