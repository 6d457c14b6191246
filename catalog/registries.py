"""Container registries: every write (one transaction each, permission checked, audit event written).

Scopes (``catalog.models.CheckedIntegration``): **system** (operators; shared with orgs by
``system_sharing``/``shared_orgs``), **org** (``manage_catalog`` on the org: org admins and PaaS admins;
visible to the org's projects by ``sharing`` all/selected), **project** (``manage_catalog`` on the
project; shared with the org's other projects by ``sharing``). Only admins: a registry's credential is
delivered into tenants' namespaces, where the tenants can read it.

* The endpoint (``host[:port][/path]``, no scheme, no user info) passes the outbound-address policy
  (``paas.outbound.check_url``) when saved, and again at every connection (``catalog.registry_check``).
* The credential is write-only: an empty value keeps it, ``clear_credential`` removes it; any change
  of what is delivered (credential, username, endpoint, provider) bumps ``credential_version``, which
  the delivered Secrets carry.
* ``catalog.signals.registry_changed`` is sent inside the transaction of every change that affects
  delivery (created, credential, sharing, deleted, token), naming the projects that saw the registry
  before or see it after; ``instances`` re-syncs their compute instances' pull secrets on commit.
* Amazon ECR: the access key is exchanged for a 12-hour registry token (:func:`registry_token_refresh`),
  at once on commit of a change and by the ``registry tokens`` schedule before it expires.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django_q.tasks import async_task

from catalog import registry_check as talk
from catalog import sharing as sharing_rule
from catalog.models import ContainerRegistry, Sharing, SystemSharing
from catalog.signals import registry_changed
from paas import authz, outbound
from paas.audit import audit_log
from paas.errors import ValidationFailed
from paas.secrets import Secret, UnreadableSecret
from tenancy.models import Organization, Project
from tenancy.validation import clean_slug

log = logging.getLogger(__name__)

FIELDS = ("display_name", "description", "provider", "scheme", "endpoint", "username")
#: Fields whose change changes what is delivered (with the credential): they bump credential_version.
DELIVERED = ("provider", "endpoint", "username")
ENDPOINT = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?(/[A-Za-z0-9._/-]*)?$")
REFRESH_TASK = "catalog.registry_tasks.registry_token_refresh"


def _stored(secret: Secret) -> str | None:
    """The stored credential in clear; None for one whose org keys were destroyed (any new one differs)."""
    return None if isinstance(secret, UnreadableSecret) else secret.reveal()


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed("Invalid input.", fields={field: message})


# --- permission and visibility --------------------------------------------------------------------------


def require_manage(actor, *, org: Organization | None, project: Project | None) -> None:
    """System: operators. Org: manage_catalog on the org. Project: manage_catalog on the project."""
    if org is None and project is None:
        authz.require_operator(actor, message="Only platform operators manage system container registries.")
    elif project is None:
        authz.require(actor, "manage_catalog", org, message=f"You may not manage the registries of {org}.")
    else:
        authz.require(
            actor, "manage_catalog", project, message=f"You may not manage the registries of {project}."
        )


def projects_seeing(registry: ContainerRegistry) -> set[int]:
    """Ids of the projects that see ``registry`` (``catalog.selectors.visible_in_project_q``'s rule)."""
    if registry.org_id is None:
        if registry.system_sharing == SystemSharing.ALL:
            return set(Project.objects.values_list("pk", flat=True))
        if registry.system_sharing == SystemSharing.SELECTED:
            return set(
                Project.objects.filter(org__in=registry.shared_orgs.all()).values_list("pk", flat=True)
            )
        return set()
    seen = {registry.project_id} if registry.project_id else set()
    if registry.sharing == Sharing.ALL:
        seen |= set(Project.objects.filter(org_id=registry.org_id).values_list("pk", flat=True))
    elif registry.sharing == Sharing.SELECTED:
        seen |= set(registry.shared_projects.filter(org_id=registry.org_id).values_list("pk", flat=True))
    return seen


def _changed(registry: ContainerRegistry, reason: str, before: set[int]) -> None:
    registry_changed.send(
        sender=ContainerRegistry,
        registry_id=registry.pk,
        reason=reason,
        project_ids=sorted(before | projects_seeing(registry)),
    )


# --- validation -------------------------------------------------------------------------------------------


def _clean(data: dict, *, current: ContainerRegistry | None = None) -> dict:
    cleaned = {k: v for k, v in data.items() if k in FIELDS}
    for key, value in cleaned.items():
        cleaned[key] = (value or "").strip() if isinstance(value, str) or value is None else value
    merged = {f: getattr(current, f) for f in FIELDS} if current else {}
    merged.update(cleaned)
    provider = merged.get("provider") or ""
    if provider not in ContainerRegistry.Provider.values:
        raise _invalid("provider", f"Choose one of: {', '.join(ContainerRegistry.Provider.values)}.")
    scheme = merged.get("scheme") or ContainerRegistry.Scheme.HTTPS
    if scheme not in ContainerRegistry.Scheme.values:
        raise _invalid("scheme", "Choose https or http.")
    endpoint = merged.get("endpoint") or ""
    if not endpoint and provider == ContainerRegistry.Provider.DOCKERHUB:
        endpoint = talk.DOCKER_HUB_HOST
    if "://" in endpoint or "@" in endpoint:
        raise _invalid("endpoint", "The registry's host[:port][/path], without a scheme or user name.")
    if not ENDPOINT.match(endpoint):
        raise _invalid("endpoint", "Expected host[:port][/path], e.g. registry.example.com:5000/team.")
    if provider == ContainerRegistry.Provider.ECR:
        if not talk.ecr_region(endpoint):
            raise _invalid("endpoint", "Amazon ECR: <account id>.dkr.ecr.<region>.amazonaws.com.")
        if scheme != ContainerRegistry.Scheme.HTTPS:
            raise _invalid("scheme", "Amazon ECR is reached over HTTPS.")
    outbound.check_url(f"{scheme}://{endpoint}", purpose="container registry", field="endpoint")
    cleaned.update(provider=provider, scheme=scheme, endpoint=endpoint)
    if "display_name" in cleaned or current is None:
        cleaned["display_name"] = cleaned.get("display_name") or (current.name if current else "")
    return cleaned


def _check_credential(registry: ContainerRegistry) -> None:
    if registry.credential and not registry.username:
        message = (
            "Amazon ECR: the access key id of a pull-only IAM user."
            if registry.provider == ContainerRegistry.Provider.ECR
            else "Needed with a password or token (for a token: the user name the registry expects)."
        )
        raise _invalid("username", message)


def _name_free(name: str, *, org, project, exclude_pk=None) -> None:
    if project is not None:
        qs = ContainerRegistry.objects.filter(project=project, name=name)
        where = f"in {project}"
    elif org is not None:
        qs = ContainerRegistry.objects.filter(org=org, project__isnull=True, name=name)
        where = f"in {org}"
    else:
        qs = ContainerRegistry.objects.filter(org__isnull=True, name=name)
        where = "among the system registries"
    if qs.exclude(pk=exclude_pk).exists():
        raise _invalid("name", f"A container registry named {name!r} already exists {where}.")


def _set_sharing(registry: ContainerRegistry, data: dict) -> dict | None:
    """Apply ``sharing``/``shared_projects`` (org and project scopes) or ``system_sharing``/
    ``shared_orgs`` (system) from ``data``; returns what changed for the audit, or None."""
    if registry.org_id is None:
        if "sharing" in data or "shared_projects" in data:
            raise _invalid("sharing", "A system registry is shared with organizations (system sharing).")
        if "system_sharing" not in data and "shared_orgs" not in data:
            return None
        sharing, orgs = data.get("system_sharing", registry.system_sharing), data.get("shared_orgs")
        return sharing_rule.apply(registry, sharing=sharing, orgs=orgs, fields=_SHARING_FIELDS)
    if "system_sharing" in data or "shared_orgs" in data:
        raise _invalid("system_sharing", "Only system registries are shared with organizations.")
    if "sharing" not in data and "shared_projects" not in data:
        return None
    sharing, projects = data.get("sharing", registry.sharing), data.get("shared_projects")
    return sharing_rule.apply(registry, sharing=sharing, projects=projects, fields=_SHARING_FIELDS)


_SHARING_FIELDS = {"system_sharing": "system_sharing", "orgs": "shared_orgs", "projects": "shared_projects"}


def _audit(actor, action: str, registry: ContainerRegistry, details: dict) -> None:
    audit_log(
        actor=actor,
        action=f"containerregistry.{action}",
        target=registry,
        org=registry.org,
        project=registry.project,
        details=details,
    )


def _refresh_on_commit(registry: ContainerRegistry) -> None:
    if registry.provider == ContainerRegistry.Provider.ECR and registry.credential:
        registry_id = registry.pk
        transaction.on_commit(lambda: async_task(REFRESH_TASK, registry_id))


# --- services ---------------------------------------------------------------------------------------------


@transaction.atomic
def registry_create(
    *,
    actor,
    name: str,
    provider: str,
    endpoint: str = "",
    org: Organization | None = None,
    project: Project | None = None,
    credential: str = "",
    **data,
) -> ContainerRegistry:
    """Create a registry in the system (no org, no project), an org or a project scope. ``data``: the
    other fields (display_name, description, scheme, username) and the sharing (``sharing`` +
    ``shared_projects``, or for system registries ``system_sharing`` + ``shared_orgs``)."""
    if project is not None:
        org = project.org
    require_manage(actor, org=org, project=project)
    name = clean_slug("name", name)
    unknown = set(data) - set(FIELDS) - {"sharing", "shared_projects", "system_sharing", "shared_orgs"}
    if unknown:
        raise ValidationFailed(f"Unknown fields: {', '.join(sorted(unknown))}.")
    cleaned = _clean({**data, "provider": provider, "endpoint": endpoint})
    _name_free(name, org=org, project=project)
    registry = ContainerRegistry(org=org, project=project, name=name, created_by=actor, **cleaned)
    registry.display_name = registry.display_name or name
    registry.credential = Secret(credential or "")
    _check_credential(registry)
    registry.save()
    sharing = _set_sharing(registry, data)
    _audit(
        actor,
        "create",
        registry,
        {
            "provider": registry.provider,
            "endpoint": registry.endpoint,
            "has_credential": bool(registry.credential),
            **(sharing or {}),
        },
    )
    _changed(registry, "created", set())
    _refresh_on_commit(registry)
    return registry


@transaction.atomic
def registry_update(
    *,
    actor,
    registry: ContainerRegistry,
    credential: str | None = None,
    clear_credential: bool = False,
    **data,
) -> ContainerRegistry:
    """Change fields and sharing. ``credential``: empty or None keeps it (write-only); a new value
    replaces it; ``clear_credential`` removes it. The name and the scope never change."""
    registry = ContainerRegistry.objects.select_for_update().get(pk=registry.pk)
    require_manage(actor, org=registry.org, project=registry.project)
    if "name" in data and data["name"] != registry.name:
        raise _invalid("name", "The name cannot be changed.")
    data.pop("name", None)
    unknown = set(data) - set(FIELDS) - {"sharing", "shared_projects", "system_sharing", "shared_orgs"}
    if unknown:
        raise ValidationFailed(f"Unknown fields: {', '.join(sorted(unknown))}.")
    before = projects_seeing(registry)
    cleaned = _clean({k: v for k, v in data.items() if k in FIELDS}, current=registry)
    changes = {k: v for k, v in cleaned.items() if getattr(registry, k) != v}
    for key, value in changes.items():
        setattr(registry, key, value)
    credential_changed = False
    if clear_credential and registry.credential:
        registry.credential, credential_changed = Secret(""), True
    elif credential and (not registry.credential or credential != _stored(registry.credential)):
        registry.credential, credential_changed = Secret(credential), True
    _check_credential(registry)
    delivered = credential_changed or any(k in changes for k in DELIVERED)
    fields = [*changes, "updated_at"]
    if delivered:
        registry.credential_version += 1
        fields += ["credential_version", "credential"]
        if registry.provider == ContainerRegistry.Provider.ECR or "provider" in changes:
            registry.token, registry.token_expires_at = Secret(""), None  # a new key needs a new token
            fields += ["token", "token_expires_at"]
    if changes or credential_changed:
        registry.save(update_fields=sorted(set(fields)))
    sharing = _set_sharing(registry, data)
    details = {k: str(v) for k, v in changes.items() if k != "description"}
    if credential_changed:
        details["credential"] = "removed" if clear_credential else "replaced"
    if delivered:
        details["credential_version"] = registry.credential_version
    if sharing is not None:
        details.update(sharing)
    if details or "description" in changes:
        _audit(actor, "update", registry, details)
    if delivered:
        _changed(registry, "credential", before)
        _refresh_on_commit(registry)
    elif sharing is not None:
        _changed(registry, "sharing", before)
    return registry


@transaction.atomic
def registry_share(
    *, actor, registry: ContainerRegistry, sharing: str, projects=(), orgs=()
) -> ContainerRegistry:
    """Share an org or project registry with none, all or selected projects of its org; a system
    registry (operators) with none, all or selected orgs."""
    if registry.org_id is None:
        return registry_update(actor=actor, registry=registry, system_sharing=sharing, shared_orgs=list(orgs))
    return registry_update(actor=actor, registry=registry, sharing=sharing, shared_projects=list(projects))


@transaction.atomic
def registry_delete(*, actor, registry: ContainerRegistry) -> None:
    """Delete the registry; its pull secrets leave every namespace on commit (``registry_changed``)."""
    registry = ContainerRegistry.objects.select_for_update().get(pk=registry.pk)
    require_manage(actor, org=registry.org, project=registry.project)
    before = projects_seeing(registry)
    _audit(actor, "delete", registry, {"endpoint": registry.endpoint})
    registry_id = registry.pk
    registry.delete()
    registry_changed.send(
        sender=ContainerRegistry, registry_id=registry_id, reason="deleted", project_ids=sorted(before)
    )


def registry_check(*, actor, registry: ContainerRegistry) -> ContainerRegistry:
    """Check the endpoint and credential now (``catalog.registry_check.check``: ``/v2/`` with the
    token flow; Amazon ECR's token exchange), store the outcome and audit it. The network part runs
    outside any transaction (bounded timeouts)."""
    require_manage(actor, org=registry.org, project=registry.project)
    if registry.provider == ContainerRegistry.Provider.ECR and registry.credential:
        registry_token_refresh(registry_id=registry.pk)
        registry.refresh_from_db()
    ok, message = talk.check(registry)
    with transaction.atomic():
        ContainerRegistry.objects.filter(pk=registry.pk).update(
            checked_at=timezone.now(), check_ok=ok, check_message=message
        )
        registry.refresh_from_db()
        _audit(actor, "check", registry, {"ok": ok, "message": message})
    return registry


def registry_token_refresh(*, registry_id: int) -> bool:
    """Exchange an Amazon ECR registry's access key for a new registry token and store it (the task
    body of ``catalog.registry_tasks``). A token for an older credential (changed meanwhile) is thrown
    away. Returns whether a token was stored; a failure is stored as the registry's check result."""
    registry = ContainerRegistry.objects.filter(
        pk=registry_id, provider=ContainerRegistry.Provider.ECR
    ).first()
    if registry is None or not registry.credential:
        return False
    version = registry.credential_version
    try:
        token, expires = talk.ecr_token(registry)
        failure = ""
    except talk.CheckFailed as exc:
        token, expires, failure = "", None, f"The token refresh failed: {exc}."
    with transaction.atomic():
        registry = ContainerRegistry.objects.select_for_update().filter(pk=registry_id).first()
        if registry is None or registry.credential_version != version:
            return False
        if failure:
            registry.checked_at, registry.check_ok, registry.check_message = timezone.now(), False, failure
            registry.save(update_fields=["checked_at", "check_ok", "check_message"])
            _audit(None, "token_refresh", registry, {"ok": False, "message": failure})
            log.warning("Container registry %s: %s", registry_id, failure)
            return False
        before = projects_seeing(registry)
        registry.token, registry.token_expires_at = Secret(token), expires
        registry.save(update_fields=["token", "token_expires_at"])
        _audit(None, "token_refresh", registry, {"ok": True, "expires_at": expires.isoformat()})
        _changed(registry, "token", before)
    return True


def registries_due_for_refresh() -> list[ContainerRegistry]:
    """Amazon ECR registries with a credential whose token is missing or expires within the margin."""
    horizon = timezone.now() + timedelta(seconds=settings.PAAS_REGISTRY_TOKEN_REFRESH_MARGIN)
    due = ContainerRegistry.objects.filter(provider=ContainerRegistry.Provider.ECR).filter(
        Q(token_expires_at__isnull=True) | Q(token_expires_at__lt=horizon)
    )
    return [registry for registry in due.order_by("pk") if registry.credential]
