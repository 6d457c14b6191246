"""Quotas of organizations and projects (a project's never above its org's)."""

from decimal import Decimal

from django.db import transaction

from paas import authz
from paas.audit import audit_log
from paas.errors import ValidationFailed
from tenancy.models import GpuModelQuota, Quota, User


def _check_quota_limits(quota: Quota, limits: dict, gpu_models: dict[str, int] | None) -> None:
    errors: dict[str, str] = {}
    for field, value in limits.items():
        if value is not None and Decimal(str(value)) < 0:
            errors[field] = "Must be zero or more (leave empty for unlimited)."
    if gpu_models:
        for model, count in gpu_models.items():
            if not model or count is None or int(count) < 0:
                errors["gpu_models"] = "Each GPU model needs a name and a count of zero or more."
    if errors:
        raise ValidationFailed("Invalid quota.", fields=errors)
    if quota.project_id:
        org_quota = quota.project.org.quota
        for field, value in limits.items():
            ceiling = getattr(org_quota, field)
            if value is not None and ceiling is not None and Decimal(str(value)) > Decimal(str(ceiling)):
                errors[field] = f"Cannot exceed the organization's limit of {ceiling}."
            if value is None and ceiling is not None:
                errors[field] = f"The organization is limited to {ceiling}; set a limit of at most that."
        org_models = {row.gpu_model: row.gpus for row in org_quota.gpu_models.all()}
        for model, count in (gpu_models or {}).items():
            if model in org_models and int(count) > org_models[model]:
                errors["gpu_models"] = (
                    f"{model}: cannot exceed the organization's limit of {org_models[model]}."
                )
    if errors:
        raise ValidationFailed("The quota exceeds the organization's quota.", fields=errors)


@transaction.atomic
def quota_update(*, actor: User, quota: Quota, gpu_models: dict[str, int] | None = None, **limits) -> Quota:
    """Set limits (``None`` = unlimited). Org quotas: operators. Project quotas: org admins."""
    unknown = set(limits) - set(Quota.LIMIT_FIELDS)
    if unknown:
        raise ValidationFailed("Unknown quota fields.", fields={name: "Unknown field." for name in unknown})
    if quota.org_id:
        authz.require_operator(actor, message="Only platform operators set an organization's quota.")
    else:
        authz.require(
            actor, "administer_organization", quota.project.org, message="Only org admins set project quotas."
        )
    quota = (
        Quota.objects.select_for_update(of=("self",)).select_related("org", "project__org").get(pk=quota.pk)
    )
    _check_quota_limits(quota, limits, gpu_models)
    before = {field: _plain(getattr(quota, field)) for field in Quota.LIMIT_FIELDS}
    before["gpu_models"] = {row.gpu_model: row.gpus for row in quota.gpu_models.all()}
    for field, value in limits.items():
        setattr(quota, field, value)
    quota.save()
    if gpu_models is not None:
        quota.gpu_models.exclude(gpu_model__in=list(gpu_models)).delete()
        for model, count in gpu_models.items():
            GpuModelQuota.objects.update_or_create(
                quota=quota, gpu_model=model, defaults={"gpus": int(count)}
            )
    after = {field: _plain(getattr(quota, field)) for field in Quota.LIMIT_FIELDS}
    after["gpu_models"] = {row.gpu_model: row.gpus for row in quota.gpu_models.all()}
    changes = {key: [before[key], after[key]] for key in after if before[key] != after[key]}
    if changes:
        audit_log(
            actor=actor,
            action="quota.update",
            target=quota,
            org=quota.owning_org,
            project=quota.project,
            details={"changes": changes},
        )
    return quota


def _plain(value):
    return str(value) if isinstance(value, Decimal) else value
