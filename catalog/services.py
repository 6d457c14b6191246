"""Every write of the catalog: one transaction each, permission checked, audit event written.

Over 600 lines, kept whole: templates, sharing and profiles all go through the permission and naming
helpers below (split by subject, templates / sharing / profiles, before it grows further).
"""

import re
from decimal import Decimal, InvalidOperation

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from catalog import profile_settings, secret_inputs, selectors
from catalog import sharing as sharing_rule
from catalog.models import (
    CatalogGeneration,
    ComputeProfile,
    EnvironmentTemplate,
    ResourceGroup,
    ServiceProfile,
    Sharing,
    SystemSharing,
    TemplateVersion,
)
from catalog.pricing import COST_FIELDS, amount_text, check_cost
from paas import authz
from paas.audit import apply_changes, audit_log
from paas.errors import Conflict, Forbidden, ValidationFailed
from tenancy.models import Organization, Project
from tenancy.validation import clean_slug

LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")


# --- permission helpers -----------------------------------------------------------------------------


def catalog_changed() -> None:
    """Bump the catalog generation inside the writing transaction (cached catalog pages key on it)."""
    updated = CatalogGeneration.objects.filter(pk=1).update(value=F("value") + 1)
    if not updated:
        CatalogGeneration.objects.get_or_create(pk=1, defaults={"value": 1})


def _require_manage(actor, project: Project | None) -> None:
    """Project items: manage_catalog on the project. System items: operators."""
    if project is None:
        authz.require_operator(actor, message="Only platform operators manage the system catalog.")
    else:
        authz.require(
            actor, "manage_catalog", project, message=f"You may not manage the catalog of {project}."
        )


def _require_action(actor, item, action: str) -> None:
    if action not in selectors.allowed_actions(actor, item):
        kind = item._meta.verbose_name
        if item.project_id is not None and not authz.has_perm(actor, "manage_catalog", item.project):
            raise Forbidden(f"This {kind} is inherited from {item.project}; it is read-only here.")
        if item.org_id is None:
            raise Forbidden(
                f"A system {kind} cannot be {action}d in a tenant"
                if action != "share"
                else f"A system {kind} cannot be shared by a tenant."
            )
        raise Forbidden(f"You may not {action} this {kind}.")


def _name_free(model, *, name: str, project: Project | None, exclude_pk=None) -> None:
    qs = (
        model.objects.filter(name=name, project=project)
        if project
        else model.objects.filter(name=name, org__isnull=True)
    )
    if exclude_pk:
        qs = qs.exclude(pk=exclude_pk)
    if qs.exists():
        where = f"in {project}" if project else "in the system catalog"
        raise ValidationFailed(
            "Invalid input.",
            fields={"name": f"A {model._meta.verbose_name} named {name!r} already exists {where}."},
        )


def _check_mapping(field: str, value, *, kubernetes_labels: bool) -> dict:
    if value in (None, ""):
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValidationFailed("Invalid input.", fields={field: "A mapping of text keys to text values."})
    if kubernetes_labels:
        bad = [k for k, v in value.items() if not LABEL_KEY.match(k) or not LABEL_VALUE.match(v)]
        if bad:
            raise ValidationFailed(
                "Invalid input.", fields={field: f"Not valid Kubernetes labels: {', '.join(bad)}."}
            )
    return value


# --- templates --------------------------------------------------------------------------------------


@transaction.atomic
def template_create(
    *, actor, project: Project | None, name: str, display_name: str = "", description: str = ""
) -> EnvironmentTemplate:
    _require_manage(actor, project)
    name = clean_slug("name", name)
    _name_free(EnvironmentTemplate, name=name, project=project)
    template = EnvironmentTemplate.objects.create(
        org=project.org if project else None,
        project=project,
        name=name,
        display_name=display_name or name,
        description=description,
        created_by=actor,
    )
    catalog_changed()
    audit_log(
        actor=actor,
        action="template.create",
        target=template,
        project=project,
        details={"scope": template.scope_label},
    )
    return template


@transaction.atomic
def template_update(
    *, actor, template: EnvironmentTemplate, display_name: str | None = None, description: str | None = None
) -> EnvironmentTemplate:
    """Edit a template's descriptive fields (they belong to no version; the name never changes)."""
    _require_action(actor, template, "edit")
    data = {}
    if display_name is not None:
        display_name = display_name.strip() or template.name
        if len(display_name) > EnvironmentTemplate._meta.get_field("display_name").max_length:
            raise ValidationFailed("The template could not be saved.", fields={"display_name": "Too long."})
        data["display_name"] = display_name
    if description is not None:
        data["description"] = description
    changes = apply_changes(template, data)
    if changes:
        template.save(update_fields=[*changes, "updated_at"])
        catalog_changed()
        audit_log(
            actor=actor,
            action="template.update",
            target=template,
            project=template.project,
            details={"changes": changes},
        )
    return template


VERSION_FIELDS = ("manifests", "inputs", "outputs", "actions", "custom_resources", "kubernetes_version")


@transaction.atomic
def template_version_create(
    *,
    actor,
    template: EnvironmentTemplate,
    version: str,
    manifests: str,
    inputs=None,
    outputs=None,
    actions=None,
    custom_resources=None,
    kubernetes_version: str = "1.37.0",
) -> TemplateVersion:
    """Add a draft version (publish it to make it usable)."""
    _require_action(actor, template, "edit")
    version = clean_slug("version", version)
    if template.versions.filter(version=version).exists():
        raise ValidationFailed(
            "Invalid input.", fields={"version": f"{template.name} already has {version}."}
        )
    created = TemplateVersion.objects.create(
        template=template,
        version=version,
        manifests=manifests or "",
        inputs=inputs or [],
        outputs=outputs or [],
        actions=actions or [],
        custom_resources=custom_resources or [],
        kubernetes_version=kubernetes_version,
        created_by=actor,
    )
    catalog_changed()
    audit_log(
        actor=actor,
        action="template_version.create",
        target=created,
        project=template.project,
        details={"template": template.name, "version": version},
    )
    return created


@transaction.atomic
def template_version_update(*, actor, version: TemplateVersion, **data) -> TemplateVersion:
    _require_action(actor, version.template, "edit")
    if version.is_published:
        raise Conflict(f"{version} is published and immutable; add a new version instead.")
    unknown = set(data) - set(VERSION_FIELDS)
    if unknown:
        raise ValidationFailed("Unknown fields.", fields={k: "Unknown field." for k in unknown})
    changes = apply_changes(version, data)
    if changes:
        version.save()
        catalog_changed()
        audit_log(
            actor=actor,
            action="template_version.update",
            target=version,
            project=version.template.project,
            details={"fields": sorted(changes)},
        )
    return version


@transaction.atomic
def template_version_publish(*, actor, version: TemplateVersion) -> TemplateVersion:
    """Validate (render with defaults, parse, check every object offline) and freeze the version."""
    from catalog import templating

    _require_action(actor, version.template, "edit")
    version = TemplateVersion.objects.select_for_update().get(pk=version.pk)
    if version.is_published:
        raise Conflict(f"{version} is published already.")
    try:
        templating.check_version(
            manifests=version.manifests,
            inputs=version.inputs,
            outputs=version.outputs,
            actions=version.actions,
            custom_resources=version.custom_resources,
            kubernetes_version=version.kubernetes_version,
            allowed_custom_resources=selectors.allowed_custom_resource_kinds(),
        )
    except templating.TemplateError as exc:
        raise ValidationFailed(f"{version} cannot be published.", fields=exc.errors) from exc
    version.state, version.published_at = TemplateVersion.State.PUBLISHED, timezone.now()
    version.save(update_fields=["state", "published_at"])
    catalog_changed()
    audit_log(
        actor=actor,
        action="template_version.publish",
        target=version,
        project=version.template.project,
        details={"template": version.template.name, "version": version.version},
    )
    return version


@transaction.atomic
def template_delete(*, actor, template: EnvironmentTemplate) -> None:
    _require_action(actor, template, "delete")
    used = [
        p.name
        for model in selectors.PROFILE_MODELS
        for p in model.objects.filter(template_version__template=template)
    ]
    if used:
        raise Conflict(
            f"{template.name} backs profiles ({', '.join(sorted(used))}); delete or move them first."
        )
    catalog_changed()
    audit_log(
        actor=actor,
        action="template.delete",
        target=template,
        project=template.project,
        details={"name": template.name},
    )
    template.delete()


# --- sharing (templates and profiles) ---------------------------------------------------------------


@transaction.atomic
def item_share(*, actor, item, sharing: str, projects=(), orgs=()):
    """Project items: none, all projects or selected projects of the same org. System items
    (operators): none, all orgs or selected orgs. Sharing never crosses orgs."""
    _require_action(actor, item, "share")
    details = sharing_rule.apply(item, sharing=sharing, projects=projects, orgs=orgs)
    catalog_changed()
    audit_log(
        actor=actor,
        action=f"{item._meta.model_name}.share",
        target=item,
        org=item.org,
        project=item.project,
        details=details,
    )
    return item


# --- profiles ---------------------------------------------------------------------------------------

COMMON_FIELDS = (
    "display_name",
    "description",
    "template_version",
    "labels",
    "annotations",
    "icon_url",
    "readme",
    "published",
)
COMPUTE_FIELDS = (
    *COMMON_FIELDS,
    "flavor",
    "allocation_strategy",
    "warm_pool_size",
    *COST_FIELDS,
    "input_values",
)
SERVICE_FIELDS = (
    *COMMON_FIELDS,
    "service_type",
    "datacenter",
    "datacenter_exposed",
    "datacenter_overridable",
    "storage_exposed",
    "storage_overridable",
    "extra_config",
    "input_settings",
    "output_settings",
    "action_settings",
    *COST_FIELDS,
)


def _fields_of(model) -> tuple[str, ...]:
    return COMPUTE_FIELDS if model is ComputeProfile else SERVICE_FIELDS


def _check_template_version(version: TemplateVersion | None, project: Project | None) -> None:
    if version is None:
        raise ValidationFailed("Invalid input.", fields={"template_version": "Choose a template version."})
    if not version.is_published:
        raise ValidationFailed(
            "Invalid input.", fields={"template_version": f"{version} is not published yet."}
        )
    if (
        project is not None
        and not EnvironmentTemplate.objects.filter(
            selectors.visible_in_project_q(EnvironmentTemplate, project), pk=version.template_id
        ).exists()
    ):
        raise ValidationFailed(
            "Invalid input.",
            fields={
                "template_version": f"The template {version.template.name!r} is not shared with {project}."
            },
        )


def _check_groups(groups: list[dict]) -> list[dict]:
    if not groups:
        raise ValidationFailed(
            "Invalid input.",
            fields={"resource_groups": "A compute profile needs at least one resource group."},
        )
    cleaned, errors = [], []
    for index, group in enumerate(groups, start=1):
        try:
            gpu_count, mig_count = int(group.get("gpu_count") or 0), int(group.get("mig_count") or 0)
            cpu = Decimal(str(group.get("cpu_cores", group.get("cpu", 0))))
            memory, storage = int(group.get("memory_gib") or 0), int(group.get("storage_gib") or 0)
        except (TypeError, ValueError, InvalidOperation):
            errors.append(f"Group {index}: counts, CPU and sizes must be numbers.")
            continue
        gpu_model, mig_profile = (
            (group.get("gpu_model") or "").strip(),
            (group.get("mig_profile") or "").strip(),
        )
        if min(gpu_count, mig_count, memory, storage) < 0 or cpu <= 0 or memory <= 0:
            errors.append(
                f"Group {index}: CPU and memory must be more than zero, counts and storage not negative."
            )
        if gpu_count and mig_count:
            errors.append(f"Group {index}: whole GPUs or MIG slices, not both.")
        if gpu_count and not gpu_model:
            errors.append(
                f"Group {index}: name the GPU model (nvidia.com/gpu.product) of its {gpu_count} GPUs."
            )
        if mig_count and not re.match(
            r"^\d+g\.\d+gb$", mig_profile.removeprefix("nvidia.com/").removeprefix("mig-")
        ):
            errors.append(f"Group {index}: a MIG slice is named like 1g.10gb.")
        cleaned.append(
            {
                "gpu_model": gpu_model if gpu_count else "",
                "gpu_count": gpu_count,
                "mig_profile": mig_profile.removeprefix("nvidia.com/").removeprefix("mig-")
                if mig_count
                else "",
                "mig_count": mig_count,
                "cpu_cores": cpu,
                "memory_gib": memory,
                "storage_gib": storage,
            }
        )
    if errors:
        raise ValidationFailed("Invalid resource groups.", fields={"resource_groups": errors})
    return cleaned


def _check_compute(data: dict) -> None:
    errors = {}
    if data.get("allocation_strategy") == ComputeProfile.Allocation.WARM_POOL and not data.get(
        "warm_pool_size"
    ):
        errors["warm_pool_size"] = "A warm pool needs a desired capacity of at least 1."
    if data.get("allocation_strategy") == ComputeProfile.Allocation.ON_DEMAND and data.get("warm_pool_size"):
        errors["warm_pool_size"] = "On-demand profiles keep no warm pool (0)."
    check_cost(data, errors)
    version: TemplateVersion = data["template_version"]
    unknown = set(data.get("input_values") or {}) - set(version.input_names())
    if unknown:
        errors["input_values"] = f"Not inputs of {version}: {', '.join(sorted(unknown))}."
    if errors:
        raise ValidationFailed("Invalid compute profile.", fields=errors)


def _validate_profile(model, data: dict, project: Project | None, groups, storages) -> list[dict] | None:
    data["labels"] = _check_mapping("labels", data.get("labels"), kubernetes_labels=True)
    data["annotations"] = _check_mapping("annotations", data.get("annotations"), kubernetes_labels=False)
    _check_template_version(data.get("template_version"), project)
    if model is ComputeProfile:
        _check_compute(data)
        return _check_groups(groups) if groups is not None else None
    errors: dict = {}
    check_cost(data, errors)
    if errors:
        raise ValidationFailed("Invalid service profile.", fields=errors)
    profile_settings.check_service(data, storages)
    return None


def _write_groups(profile: ComputeProfile, groups: list[dict]) -> None:
    profile.resource_groups.all().delete()
    ResourceGroup.objects.bulk_create(
        [ResourceGroup(profile=profile, position=i, **g) for i, g in enumerate(groups)]
    )


def profile_snapshot(profile) -> dict:
    """The profile as data (for audit details and for instances' launch snapshots)."""
    data = {f: getattr(profile, f) for f in _fields_of(type(profile))}
    data["template_version"] = str(profile.template_version)
    data["cost_amount"] = amount_text(profile.cost_amount)
    data["cost_stopped_amount"] = amount_text(profile.cost_stopped_amount)
    if "input_values" in data:
        data["input_values"] = secret_inputs.masked(data["input_values"])  # audit details show no secret
    if isinstance(profile, ComputeProfile):
        data["resource_groups"] = [
            {
                "gpu_model": g.gpu_model,
                "gpu_count": g.gpu_count,
                "mig_profile": g.mig_profile,
                "mig_count": g.mig_count,
                "cpu_cores": str(g.cpu_cores),
                "memory_gib": g.memory_gib,
                "storage_gib": g.storage_gib,
            }
            for g in profile.resource_groups.all()
        ]
    else:
        data["datacenter"] = profile.datacenter.name if profile.datacenter_id else None
        data["storages"] = sorted(s.name for s in profile.storages.all())
    return data


@transaction.atomic
def profile_create(
    *, actor, model, project: Project | None, name: str, resource_groups=None, storages=None, **data
):
    """Create a compute or service profile in a project (or, for operators, the system catalog)."""
    _require_manage(actor, project)
    name = clean_slug("name", name)
    _name_free(model, name=name, project=project)
    unknown = set(data) - set(_fields_of(model))
    if unknown:
        raise ValidationFailed("Unknown fields.", fields={k: "Unknown field." for k in unknown})
    data.setdefault("display_name", name)
    defaults = {f.name: f.get_default() for f in model._meta.concrete_fields if f.name in _fields_of(model)}
    data = {k: v for k, v in defaults.items() if k != "template_version"} | data
    groups = _validate_profile(
        model, data, project, resource_groups if model is ComputeProfile else None, storages
    )
    if "input_values" in data:  # secret-typed inputs are stored encrypted
        data["input_values"] = secret_inputs.seal(
            data["template_version"].inputs, data["input_values"], org_id=project.org_id if project else None
        )
    profile = model.objects.create(
        org=project.org if project else None, project=project, name=name, created_by=actor, **data
    )
    if groups is not None:
        _write_groups(profile, groups)
    if storages:
        profile.storages.set(storages)
    catalog_changed()
    audit_log(
        actor=actor,
        action=f"{model._meta.model_name}.create",
        target=profile,
        project=project,
        org=profile.org,
        details={"scope": profile.scope_label, "template_version": str(profile.template_version)},
    )
    return profile


@transaction.atomic
def profile_update(
    *, actor, profile, resource_groups=None, storages=None, org: Organization | None = None, **data
):
    """Edit a profile. Only new launches see the change (instances keep their snapshot).

    A tenant editing a system profile edits its own copy for ``org`` (created on the first edit); the
    system original is untouched. The unique name never changes.
    """
    model = type(profile)
    if "name" in data and data.pop("name") != profile.name:
        raise ValidationFailed(
            "The unique name cannot be changed.", fields={"name": "Cannot be changed after creation."}
        )
    unknown = set(data) - set(_fields_of(model))
    if unknown:
        raise ValidationFailed("Unknown fields.", fields={k: "Unknown field." for k in unknown})
    _require_action(actor, profile, "edit")
    if profile.org_id is None and not authz.is_operator(actor):
        profile = _tenant_copy(actor, profile, org)
    current = {f: getattr(profile, f) for f in _fields_of(model)}
    merged = current | data
    groups = _validate_profile(
        model,
        merged,
        profile.project,
        resource_groups if model is ComputeProfile else None,
        storages if storages is not None else None,
    )
    if "input_values" in merged and ("input_values" in data or "template_version" in data):
        data["input_values"] = merged["input_values"] = secret_inputs.seal(
            merged["template_version"].inputs,
            merged["input_values"],
            org_id=profile.org_id,
            previous=current["input_values"],
        )
    before = profile_snapshot(profile)
    apply_changes(profile, {k: merged[k] for k in data})
    profile.save()
    if groups is not None:
        _write_groups(profile, groups)
    if storages is not None and model is ServiceProfile:
        profile.storages.set(storages)
    after = profile_snapshot(profile)
    changes = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
    if changes:
        catalog_changed()
        audit_log(
            actor=actor,
            action=f"{model._meta.model_name}.update",
            target=profile,
            project=profile.project,
            org=profile.org,
            details={"changes": changes},
        )
    return profile


def _copy_profile(profile, *, actor, **overrides):
    """A new, unshared profile with the same configuration (resource groups, storage) and ``overrides``."""
    model = type(profile)
    copy = model.objects.get(pk=profile.pk)
    groups = list(copy.resource_groups.all()) if model is ComputeProfile else []
    storages = list(copy.storages.all()) if model is ServiceProfile else []
    copy.pk, copy.id, copy._state.adding = None, None, True
    copy.sharing, copy.system_sharing, copy.created_by = Sharing.NONE, SystemSharing.NONE, actor
    for field, value in overrides.items():
        setattr(copy, field, value)
    copy.save()
    ResourceGroup.objects.bulk_create(
        [ResourceGroup(profile=copy, **{f: getattr(g, f) for f in GROUP_FIELDS}) for g in groups]
    )
    if storages:
        copy.storages.set(storages)
    return copy


GROUP_FIELDS = (
    "position",
    "gpu_model",
    "gpu_count",
    "mig_profile",
    "mig_count",
    "cpu_cores",
    "memory_gib",
    "storage_gib",
)


def _tenant_copy(actor, system_profile, org: Organization | None):
    """The org's copy of a system profile, created from the original on the first edit."""
    if org is None:
        orgs = list(authz.filter_for(actor, "manage_catalog", Organization.objects.all())[:2])
        if len(orgs) != 1:
            raise ValidationFailed(
                "Say which organization's copy to edit.", fields={"org": "Choose the org."}
            )
        org = orgs[0]
    authz.require(actor, "manage_catalog", org, message=f"You may not manage the catalog of {org}.")
    model = type(system_profile)
    copy = model.objects.filter(org=org, origin=system_profile).first()
    if copy:
        return copy
    copy = _copy_profile(system_profile, actor=actor, org=org, project=None, origin_id=system_profile.pk)
    catalog_changed()
    audit_log(
        actor=actor,
        action=f"{model._meta.model_name}.tenant_copy",
        target=copy,
        org=org,
        details={"origin": system_profile.name},
    )
    return copy


@transaction.atomic
def profile_clone(
    *,
    actor,
    profile,
    target_project: Project,
    name: str,
    display_name: str = "",
    description: str | None = None,
):
    """Copy a profile within its project or into another project (same configuration, new name).

    Fails with a clear message when the backing template is not shared with the target project.
    """
    _require_action(actor, profile, "clone")
    _require_manage(actor, target_project)
    model = type(profile)
    name = clean_slug("name", name)
    _name_free(model, name=name, project=target_project)
    _check_template_version(profile.template_version, target_project)
    clone = _copy_profile(
        profile,
        actor=actor,
        org=target_project.org,
        project=target_project,
        origin_id=None,
        name=name,
        display_name=display_name or profile.display_name,
        description=profile.description if description is None else description,
    )
    catalog_changed()
    audit_log(
        actor=actor,
        action=f"{model._meta.model_name}.clone",
        target=clone,
        project=target_project,
        details={"from": f"{profile.scope_label}/{profile.name}"},
    )
    return clone


@transaction.atomic
def profile_delete(*, actor, profile) -> None:
    """Irreversible: the profile leaves every catalog at once. Launched instances keep their snapshot."""
    _require_action(actor, profile, "delete")
    catalog_changed()
    audit_log(
        actor=actor,
        action=f"{profile._meta.model_name}.delete",
        target=profile,
        project=profile.project,
        org=profile.org,
        details={"name": profile.name, "snapshot": profile_snapshot(profile)},
    )
    profile.delete()
