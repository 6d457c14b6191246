"""Instance limits per user (``tenancy.limit_models``): set, change and remove an org's or a workspace's.

Org admins set both scopes in their org. Operators set an organization's own limit (as they set its
quota) and nothing of a workspace's: a workspace is inside the tenant (an operator with an
administrative support access holds what an org admin holds, and may). A workspace's limit may not be
looser than its organization's: the stricter always applies, and a looser one would only mislead.
"""

from django.db import IntegrityError, transaction

from paas import authz
from paas.audit import audit_log
from paas.errors import Conflict, Forbidden, ValidationFailed
from tenancy.models import InstanceLimit, Organization, Project, User

#: Far above any real policy; keeps the numbers in the database's integer and the messages readable.
MAX_VALUE = 100_000

LABELS = {
    "max_active_instances_per_user": "active instances per user",
    "max_gpus_per_user": "GPUs per user",
}


def _require_may_set(actor: User, org: Organization, project: Project | None) -> None:
    if project is not None:
        authz.require(
            actor,
            "administer_organization",
            project.org,
            message="Only org admins set a workspace's instance limits.",
        )
    elif not (authz.is_operator(actor) or authz.has_perm(actor, "administer_organization", org)):
        raise Forbidden("Only org admins and platform operators set an organization's instance limits.")


def _clean(values: dict) -> dict:
    """The limits as integers (None = no limit), or a ValidationFailed naming each bad field."""
    errors: dict[str, str] = {}
    unknown = set(values) - set(InstanceLimit.LIMIT_FIELDS)
    for name in sorted(unknown):
        errors[name] = "Unknown field."
    cleaned = {}
    for field in InstanceLimit.LIMIT_FIELDS:
        if field not in values:
            continue
        value = values[field]
        if value is None or value == "":
            cleaned[field] = None
        elif isinstance(value, bool) or not isinstance(value, int):
            errors[field] = "A whole number of zero or more, or empty for no limit."
        elif value < 0:
            errors[field] = "Must be zero or more (leave empty for no limit)."
        elif value > MAX_VALUE:
            errors[field] = f"At most {MAX_VALUE} (leave empty for no limit)."
        else:
            cleaned[field] = value
    if errors:
        raise ValidationFailed("Invalid instance limit.", fields=errors)
    return cleaned


def _check_against_org(org: Organization, project: Project | None, limits: dict) -> None:
    """A workspace's limit is at most its organization's (each limit the org sets; an empty one leaves
    the workspace's users to the organization's)."""
    if project is None:
        return
    org_row = InstanceLimit.objects.filter(org=org, project__isnull=True).first()
    if org_row is None:
        return
    errors = {}
    for field, value in limits.items():
        ceiling = getattr(org_row, field)
        if ceiling is not None and value is not None and value > ceiling:
            errors[field] = f"Cannot exceed the organization's limit of {ceiling} {LABELS[field]}."
    if errors:
        raise ValidationFailed("The workspace's limit is looser than the organization's.", fields=errors)


def _locked(limit: InstanceLimit) -> InstanceLimit:
    rows = InstanceLimit.objects.select_for_update(of=("self",)).select_related("org", "project")
    return rows.get(pk=limit.pk)


def _audit(actor, limit: InstanceLimit, action: str, details: dict) -> None:
    audit_log(actor=actor, action=action, target=limit, org=limit.org, project=limit.project, details=details)


@transaction.atomic
def instance_limit_set(
    *, actor: User, org: Organization | None = None, project: Project | None = None, **limits
) -> InstanceLimit:
    """Set the instance limits of ``org`` (no ``project``) or of ``project`` (a workspace of ``org``),
    creating the policy row or changing the one there is. Fields not given keep their value (none on a
    new row: no limit)."""
    if project is not None:
        if org is not None and project.org_id != org.pk:
            raise ValidationFailed(
                "Invalid instance limit.", fields={"project": f"This workspace is not in {org.name}."}
            )
        org = project.org
    if org is None:
        raise ValidationFailed("Invalid instance limit.", fields={"org": "Choose the organization."})
    _require_may_set(actor, org, project)
    limits = _clean(limits)
    rows = InstanceLimit.objects.select_for_update(of=("self",))
    rows = rows.filter(project=project) if project is not None else rows.filter(org=org, project__isnull=True)
    existing = rows.first()
    if existing is not None:
        return _update(actor, existing, limits)
    full = {field: limits.get(field) for field in InstanceLimit.LIMIT_FIELDS}
    _check_against_org(org, project, full)
    try:
        with transaction.atomic():
            limit = InstanceLimit.objects.create(org=org, project=project, updated_by=actor, **full)
    except IntegrityError as exc:  # a concurrent first set of the same scope
        raise Conflict("This scope's instance limit was just set by someone else; reload and retry.") from exc
    changes = {field: [None, value] for field, value in full.items() if value is not None}
    _audit(actor, limit, "instance_limit.set", {"changes": changes})
    return limit


@transaction.atomic
def instance_limit_update(*, actor: User, limit: InstanceLimit, **limits) -> InstanceLimit:
    """Change some limits of an existing policy row (fields not given keep their value)."""
    _require_may_set(actor, limit.org, limit.project)
    limits = _clean(limits)
    limit = _locked(limit)
    return _update(actor, limit, limits)


def _update(actor: User, limit: InstanceLimit, limits: dict) -> InstanceLimit:
    after = {field: limits.get(field, getattr(limit, field)) for field in InstanceLimit.LIMIT_FIELDS}
    _check_against_org(limit.org, limit.project, after)
    before = {field: getattr(limit, field) for field in InstanceLimit.LIMIT_FIELDS}
    changes = {field: [before[field], value] for field, value in after.items() if before[field] != value}
    if changes:
        for field, value in after.items():
            setattr(limit, field, value)
        limit.updated_by = actor
        limit.save()
        _audit(actor, limit, "instance_limit.set", {"changes": changes})
    return limit


@transaction.atomic
def instance_limit_delete(*, actor: User, limit: InstanceLimit) -> None:
    """Remove a policy row: its scope has no limit of its own any more (an org's still bounds its
    workspaces' users)."""
    _require_may_set(actor, limit.org, limit.project)
    limit = _locked(limit)
    _audit(
        actor,
        limit,
        "instance_limit.delete",
        {field: getattr(limit, field) for field in InstanceLimit.LIMIT_FIELDS},
    )
    limit.delete()
