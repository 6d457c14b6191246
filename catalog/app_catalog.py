"""The application catalog: services (every write: one transaction, permission, audit) and selectors.

A catalog application is a chart or a YAML bundle (uploaded, or pulled from a repository) with its
default values and a readme, deployed in one click ("New Application From Catalog"). Three scopes,
like every integration (``catalog.models.CheckedIntegration``):

* **system** (no org, no project): platform operators; shared with all or selected organizations;
* **org** (org, no project): the org's catalog managers (``manage_catalog`` on the org: org admins, PaaS
  admins of the org); shared with all or selected projects of the org;
* **project**: ``manage_catalog`` on the project; shared with all or selected projects of the org.

Users see the *published* items visible in their project (``catalog.selectors.visible_in_project_q``).
Sharing never crosses organizations.
"""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.db.models import Q, QuerySet

from catalog import selectors
from catalog import sharing as sharing_rule
from catalog.models import (
    ArtifactSync,
    CatalogApplication,
    PackageType,
    Repository,
    Sharing,
    SystemSharing,
)
from catalog.sources import spec
from paas import authz
from paas.audit import audit_log
from paas.errors import Forbidden, ValidationFailed
from tenancy.models import Organization, Project
from tenancy.validation import clean_slug

EDITABLE_FIELDS = (
    "display_name",
    "description",
    "package_type",
    *spec.SOURCE_FIELDS,
    "readme",
    "icon_url",
    "published",
)
MAX_README_BYTES = 256 * 1024


# --- who may manage an item ---------------------------------------------------------------------------


def may_manage_scope(user, *, org: Organization | None, project: Project | None) -> bool:
    """Operators manage the system scope; ``manage_catalog`` on the org or the project the others."""
    if project is not None:
        return authz.has_perm(user, "manage_catalog", project)
    if org is not None:
        return authz.has_perm(user, "manage_catalog", org)
    return authz.is_operator(user)


def allowed_actions(user, item) -> set[str]:
    """What ``user`` may do to an item of an integration's three scopes: edit, share, delete, or nothing."""
    if may_manage_scope(user, org=item.org, project=item.project):
        return {"edit", "share", "delete"}
    return set()


def _require_manage(actor, item_or_scope, *, org=None, project=None, action="manage") -> None:
    if item_or_scope is not None:
        org, project = item_or_scope.org, item_or_scope.project
    if may_manage_scope(actor, org=org, project=project):
        return
    if project is None and org is None:
        raise Forbidden("Only platform operators manage the system's application catalog.")
    raise Forbidden(f"You may not {action} the application catalog of {project or org}.")


# --- selectors ----------------------------------------------------------------------------------------


def catalog_application_list_for(user) -> QuerySet[CatalogApplication]:
    """The catalog applications ``user`` manages (studio and the API's writes): operators the system's;
    catalog managers those of the orgs and projects they manage (an operator through a support access)."""
    base = CatalogApplication.objects.select_related("org", "project", "repository")
    if not authz.is_active_user(user):
        return base.none()
    orgs = authz.filter_for(user, "manage_catalog", Organization.objects.all()).values("pk")
    projects = selectors.managed_projects(user).values("pk")
    condition = Q(org__in=orgs, project__isnull=True) | Q(project__in=projects)
    if authz.is_operator(user):
        condition |= Q(org__isnull=True, project__isnull=True)
    return base.filter(condition)


def catalog_applications_for(project: Project) -> QuerySet[CatalogApplication]:
    """The published catalog applications ``project``'s users may deploy."""
    return (
        CatalogApplication.objects.filter(
            selectors.visible_in_project_q(CatalogApplication, project), published=True
        )
        .select_related("org", "project", "repository")
        .order_by("display_name", "pk")
    )


def _published_in_projects_q(projects: QuerySet) -> Q:
    """Published items visible in any of ``projects`` (the set form of ``visible_in_project_q``)."""
    orgs = Project.objects.filter(pk__in=projects).values("org_id")
    shared = CatalogApplication.shared_projects.through.objects.filter(project__in=projects).values(
        "catalogapplication_id"
    )
    shared_orgs = CatalogApplication.shared_orgs.through.objects.filter(organization__in=orgs).values(
        "catalogapplication_id"
    )
    return Q(published=True) & (
        Q(project__in=projects)
        | Q(org__in=orgs, sharing=Sharing.ALL)
        | Q(org__in=orgs, sharing=Sharing.SELECTED, pk__in=shared)
        | (
            Q(org__isnull=True)
            & (
                Q(system_sharing=SystemSharing.ALL)
                | Q(system_sharing=SystemSharing.SELECTED, pk__in=shared_orgs)
            )
        )
    )


def catalog_application_visible_for(user) -> QuerySet[CatalogApplication]:
    """What ``user`` may read: the items they manage and the published ones visible in a project they
    may see (the API's list; ``?project=`` narrows it to ``catalog_applications_for``)."""
    base = CatalogApplication.objects.select_related("org", "project", "repository")
    if not authz.is_active_user(user):
        return base.none()
    projects = authz.filter_for(user, "view_project", Project.objects.all()).values("pk")
    managed = catalog_application_list_for(user).values("pk")
    return base.filter(Q(pk__in=managed) | _published_in_projects_q(projects))


def repositories_for_scope(*, org: Organization | None, project: Project | None) -> QuerySet[Repository]:
    """The repositories an item of this scope may pull from: for a project item those visible in the
    project; for an org item the org's own and the system ones shared with the org; for a system item
    the system ones."""
    if project is not None:
        return Repository.objects.filter(selectors.visible_in_project_q(Repository, project))
    system = Q(org__isnull=True)
    if org is None:
        return Repository.objects.filter(system)
    shared = Repository.shared_orgs.through.objects.filter(organization=org).values("repository_id")
    return Repository.objects.filter(
        Q(org=org, project__isnull=True)
        | (
            system
            & (Q(system_sharing=SystemSharing.ALL) | Q(system_sharing=SystemSharing.SELECTED, pk__in=shared))
        )
    )


def repository_choices_for(user) -> QuerySet[Repository]:
    """The repositories a catalog manager may pick for an item: those of the projects and orgs they
    manage, their orgs' repositories shared with all projects, and the system ones shared with their
    orgs (which of them the item's scope may use is checked when saving); for operators also the system
    ones (for the system's items)."""
    if not authz.is_active_user(user):
        return Repository.objects.none()
    projects = selectors.managed_projects(user).values("pk")
    managed_orgs = authz.filter_for(user, "manage_catalog", Organization.objects.all()).values("pk")
    orgs = Organization.objects.filter(
        Q(pk__in=managed_orgs) | Q(pk__in=Project.objects.filter(pk__in=projects).values("org_id"))
    ).values("pk")
    shared = Repository.shared_orgs.through.objects.filter(organization__in=orgs).values("repository_id")
    condition = (
        Q(project__in=projects)
        | Q(org__in=managed_orgs)
        | Q(org__in=orgs, sharing=Sharing.ALL)
        | Q(org__isnull=True, system_sharing=SystemSharing.ALL)
        | Q(org__isnull=True, system_sharing=SystemSharing.SELECTED, pk__in=shared)
    )
    if authz.is_operator(user):
        condition |= Q(org__isnull=True)
    return Repository.objects.filter(condition)


# --- validation ---------------------------------------------------------------------------------------


def _check_source(data: dict, *, org, project) -> None:
    """The source of a catalog application, as a whole (the merged state after an update): the rules
    of every application's source (``catalog.sources.spec``), with the repositories of the item's scope."""
    if data.get("package_type") == PackageType.YAML and (data.get("chart") or data.get("chart_version")):
        raise ValidationFailed(
            "Invalid catalog application.",
            fields={"chart": ["Only Helm charts have a chart and a chart version."]},
        )
    repository = data.get("repository")
    spec.clean(
        package_type=data.get("package_type"),
        repositories=repositories_for_scope(org=org, project=project),
        # another org's repository reads exactly like a missing one (the API's own words for a missing id)
        missing=f'Invalid pk "{getattr(repository, "pk", repository)}" - object does not exist.',
        **{field: data.get(field) for field in spec.SOURCE_FIELDS},
    )


def _check_text(data: dict) -> None:
    errors = {}
    if len((data.get("readme") or "").encode()) > MAX_README_BYTES:
        errors["readme"] = [f"At most {MAX_README_BYTES // 1024} KiB."]
    icon = data.get("icon_url") or ""
    if icon:
        try:
            URLValidator(schemes=["https", "http"])(icon)
        except DjangoValidationError:
            errors["icon_url"] = ["An https:// (or http://) address."]
    if len(data.get("display_name") or "") > 200:
        errors["display_name"] = ["At most 200 characters."]
    if errors:
        raise ValidationFailed("Invalid catalog application.", fields=errors)


def _name_free(name: str, *, org, project, exclude_pk=None) -> None:
    if project is not None:
        qs, where = CatalogApplication.objects.filter(project=project), f"in {project}"
    elif org is not None:
        qs, where = CatalogApplication.objects.filter(org=org, project__isnull=True), f"in {org}"
    else:
        qs, where = CatalogApplication.objects.filter(org__isnull=True), "in the system catalog"
    if qs.filter(name=name).exclude(pk=exclude_pk).exists():
        raise ValidationFailed(
            "Invalid catalog application.",
            fields={"name": f"A catalog application named {name!r} already exists {where}."},
        )


def snapshot(item: CatalogApplication) -> dict:
    """The item as data for audit details (uploaded files by name and size only)."""
    data = {f: getattr(item, f) for f in EDITABLE_FIELDS if f not in {"files", "repository", "readme"}}
    data["files"] = {name: len(text) for name, text in (item.files or {}).items()}
    data["repository"] = item.repository.name if item.repository_id else None
    data["readme"] = f"{len(item.readme)} characters"
    return data


# --- services -----------------------------------------------------------------------------------------


@transaction.atomic
def catalog_application_create(
    *, actor, org: Organization | None = None, project: Project | None = None, name: str, **data
) -> CatalogApplication:
    """Add an application to the catalog of a project, an org (``org`` without ``project``) or the
    system (neither: operators). Unpublished unless ``published``."""
    if project is not None:
        if org is not None and org.pk != project.org_id:
            raise ValidationFailed("Invalid scope.", fields={"org": "The project belongs to another org."})
        org = project.org
    _require_manage(actor, None, org=org, project=project, action="add to")
    unknown = set(data) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValidationFailed("Unknown fields.", fields={k: "Unknown field." for k in sorted(unknown)})
    name = clean_slug("name", name)
    _name_free(name, org=org, project=project)
    data = {"sync": ArtifactSync.UPLOAD, "files": {}} | data
    data["display_name"] = data.get("display_name") or name
    _check_text(data)
    _check_source(data, org=org, project=project)
    item = CatalogApplication.objects.create(org=org, project=project, name=name, created_by=actor, **data)
    audit_log(
        actor=actor,
        action="catalogapplication.create",
        target=item,
        org=org,
        project=project,
        details={"scope": item.scope_label, **snapshot(item)},
    )
    return item


@transaction.atomic
def catalog_application_update(*, actor, item: CatalogApplication, **data) -> CatalogApplication:
    """Edit an item (the unique name and the scope never change). Deployed applications keep the
    source they were deployed from (their revisions hold a copy)."""
    item = CatalogApplication.objects.select_for_update().get(pk=item.pk)
    _require_manage(actor, item, action="edit")
    if "name" in data and data.pop("name") != item.name:
        raise ValidationFailed(
            "The unique name cannot be changed.", fields={"name": "Cannot be changed after creation."}
        )
    unknown = set(data) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValidationFailed("Unknown fields.", fields={k: "Unknown field." for k in sorted(unknown)})
    if data.get("sync") == ArtifactSync.REPOSITORY:
        data.setdefault("files", {})  # switching to a repository drops the upload
    if data.get("sync") == ArtifactSync.UPLOAD:
        data.setdefault("repository", None)
    merged = {f: getattr(item, f) for f in EDITABLE_FIELDS} | data
    merged["display_name"] = merged.get("display_name") or item.name
    _check_text(merged)
    if set(data) & {"package_type", *spec.SOURCE_FIELDS}:
        _check_source(merged, org=item.org, project=item.project)
    before = snapshot(item)
    for field in data:
        setattr(item, field, merged[field])
    item.display_name = merged["display_name"]
    item.save()
    after = snapshot(item)
    changes = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
    if changes:
        audit_log(
            actor=actor,
            action="catalogapplication.update",
            target=item,
            org=item.org,
            project=item.project,
            details={"changes": changes},
        )
    return item


def catalog_application_publish(*, actor, item: CatalogApplication, published: bool = True):
    """Publish (users see it in their catalogs) or withdraw an item."""
    return catalog_application_update(actor=actor, item=item, published=published)


@transaction.atomic
def catalog_application_share(
    *, actor, item: CatalogApplication, sharing: str, projects=(), orgs=()
) -> CatalogApplication:
    """A project or org item: with none, all or selected projects of its org. A system item
    (operators): with none, all or selected orgs. Sharing never crosses orgs."""
    item = CatalogApplication.objects.select_for_update().get(pk=item.pk)
    _require_manage(actor, item, action="share")
    details = sharing_rule.apply(item, sharing=sharing, projects=projects, orgs=orgs)
    audit_log(
        actor=actor,
        action="catalogapplication.share",
        target=item,
        org=item.org,
        project=item.project,
        details=details,
    )
    return item


@transaction.atomic
def catalog_application_delete(*, actor, item: CatalogApplication) -> None:
    """The item leaves every catalog at once; applications deployed from it keep running (their
    ``catalog_item`` is cleared, their revisions hold the source)."""
    _require_manage(actor, item, action="delete from")
    audit_log(
        actor=actor,
        action="catalogapplication.delete",
        target=item,
        org=item.org,
        project=item.project,
        details={"name": item.name, "snapshot": snapshot(item)},
    )
    item.delete()
