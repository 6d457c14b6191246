"""The system catalog shipped with the platform (catalog/system_catalog/catalog.yaml), loaded through
the same services an operator uses: templates are created, validated and published; profiles and the
application catalog's applications are created and shared with every organization; the custom resource
kinds its templates create are put on the operators' allow-list. Idempotent: what exists already is
left as it is."""

from pathlib import Path

import yaml
from django.db import transaction

from catalog import app_catalog, custom_resources, services
from catalog.models import (
    CatalogApplication,
    ComputeProfile,
    EnvironmentTemplate,
    ServiceProfile,
    SystemSharing,
    TemplateVersion,
)
from catalog.pricing import COST_FIELDS
from paas.errors import ValidationFailed

CATALOG = Path(__file__).resolve().parent / "system_catalog" / "catalog.yaml"

# The profile fields catalog.yaml may set directly (the template version, prices and storage are
# resolved by the loader).
COMPUTE_KEYS = set(services.COMPUTE_FIELDS) - {"template_version", *COST_FIELDS}
SERVICE_KEYS = set(services.SERVICE_FIELDS) - {"template_version", "datacenter", *COST_FIELDS}
#: The keys of a profile's ``cost:`` block (all optional): the profile's cost fields.
COST_KEYS = {
    "currency": "cost_currency",
    "amount": "cost_amount",
    "period": "cost_period",
    "billing_model": "cost_billing_model",
    "stopped_amount": "cost_stopped_amount",
}


def cost_fields(item: dict) -> dict:
    """A catalog.yaml profile's ``cost:`` block as the profile's cost fields (the services check them);
    an unknown key is refused rather than ignored (a typo would price a profile at zero)."""
    cost = item.get("cost") or {}
    if not isinstance(cost, dict):
        raise ValidationFailed(f"{item.get('name')}: cost is a mapping.", fields={"cost": "A mapping."})
    unknown = sorted(set(cost) - set(COST_KEYS))
    if unknown:
        raise ValidationFailed(
            f"{item.get('name')}: unknown cost keys {', '.join(unknown)}.",
            fields={"cost": f"Only {', '.join(COST_KEYS)}."},
        )
    return {COST_KEYS[key]: str(value) for key, value in cost.items()}


def load(*, actor, path: Path = CATALOG) -> list[str]:
    spec = yaml.safe_load(path.read_text())
    report: list[str] = []
    versions: dict[tuple[str, str], TemplateVersion] = {}
    with transaction.atomic():
        # The custom resources the shipped templates create: loading the system catalog is an
        # operator's act, and allowing these kinds is part of it (each addition audited).
        for item in spec.get("allowed_custom_resources", []):
            if custom_resources.allowed_custom_resource_ensure(
                actor=actor, group=item["group"], kind=item["kind"], description=item.get("description", "")
            ):
                report.append(f"allowed custom resource {item['kind']} ({item['group']})")
        for item in spec.get("templates", []):
            template = EnvironmentTemplate.objects.filter(org__isnull=True, name=item["name"]).first()
            if template is None:
                template = services.template_create(
                    actor=actor,
                    project=None,
                    name=item["name"],
                    display_name=item.get("display_name", ""),
                    description=item.get("description", ""),
                )
                services.item_share(actor=actor, item=template, sharing=SystemSharing.ALL)
                report.append(f"template {template.name}")
            for spec_version in item.get("versions", []):
                version = template.versions.filter(version=spec_version["version"]).first()
                if version is None:
                    version = services.template_version_create(
                        actor=actor,
                        template=template,
                        version=spec_version["version"],
                        manifests=(path.parent / spec_version["manifests"]).read_text(),
                        inputs=spec_version.get("inputs") or [],
                        outputs=spec_version.get("outputs") or [],
                        actions=spec_version.get("actions") or [],
                        custom_resources=spec_version.get("custom_resources") or [],
                        kubernetes_version=str(spec_version.get("kubernetes_version", "1.37.0")),
                    )
                if not version.is_published:
                    version = services.template_version_publish(actor=actor, version=version)
                    report.append(f"  published {version}")
                versions[(template.name, version.version)] = version
        for item in spec.get("compute_profiles", []):
            if ComputeProfile.objects.filter(org__isnull=True, name=item["name"]).exists():
                continue
            profile = services.profile_create(
                actor=actor,
                model=ComputeProfile,
                project=None,
                name=item["name"],
                template_version=versions[(item["template"], item["version"])],
                resource_groups=item["resource_groups"],
                **cost_fields(item),
                **{k: v for k, v in item.items() if k in COMPUTE_KEYS},
            )
            services.item_share(actor=actor, item=profile, sharing=SystemSharing.ALL)
            report.append(f"compute profile {profile.name}")
        for item in spec.get("service_profiles", []):
            if ServiceProfile.objects.filter(org__isnull=True, name=item["name"]).exists():
                continue
            profile = services.profile_create(
                actor=actor,
                model=ServiceProfile,
                project=None,
                name=item["name"],
                template_version=versions[(item["template"], item["version"])],
                **cost_fields(item),
                **{k: v for k, v in item.items() if k in SERVICE_KEYS},
            )
            services.item_share(actor=actor, item=profile, sharing=SystemSharing.ALL)
            report.append(f"service profile {profile.name}")
        for item in spec.get("applications", []):
            if CatalogApplication.objects.filter(org__isnull=True, name=item["name"]).exists():
                continue
            files = {
                Path(name).name: (path.parent / "applications" / name).read_text() for name in item["files"]
            }
            application = app_catalog.catalog_application_create(
                actor=actor,
                name=item["name"],
                display_name=item.get("display_name", ""),
                description=item.get("description", ""),
                package_type=item["package_type"],
                files=files,
                values=item.get("values", ""),
                readme=item.get("readme", ""),
                published=True,
            )
            app_catalog.catalog_application_share(actor=actor, item=application, sharing=SystemSharing.ALL)
            report.append(f"catalog application {application.name}")
    return report
