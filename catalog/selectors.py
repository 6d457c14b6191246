"""Permission-filtered reads of the catalog.

``catalog_for`` is *the* catalog a project sees (studio, portal and API all use it): its own profiles,
those shared with all projects of its org or with it, and the system catalog shared with its org
(a tenant's edited copy replacing the system original), published only. One query with subqueries,
whatever the number of profiles, projects and shares.
"""

from django.db.models import Exists, JSONField, Model, OuterRef, Q, QuerySet, Subquery
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce

from catalog.models import (
    AllowedCustomResource,
    CatalogGeneration,
    ComputeProfile,
    EnvironmentTemplate,
    Profile,
    ResourceGroup,
    ServiceProfile,
    Sharing,
    SystemSharing,
    TemplateVersion,
)
from paas import authz
from tenancy.models import Organization, Project
from tenancy.selectors import administers_any_org

PROFILE_MODELS = (ComputeProfile, ServiceProfile)


def _shared_to_projects(model: type[Model], projects) -> Q:
    through = model.shared_projects.through
    ids = through.objects.filter(project__in=projects).values(f"{model._meta.model_name}_id")
    return Q(sharing=Sharing.SELECTED, pk__in=ids)


def _system_shared_to_orgs(model: type[Model], orgs) -> Q:
    through = model.shared_orgs.through
    ids = through.objects.filter(organization__in=orgs).values(f"{model._meta.model_name}_id")
    return Q(org__isnull=True) & (
        Q(system_sharing=SystemSharing.ALL) | Q(system_sharing=SystemSharing.SELECTED, pk__in=ids)
    )


def visible_in_project_q(model: type[Model], project: Project) -> Q:
    """Items of ``model`` that ``project`` sees (published or not; ``catalog_for`` adds that).

    Own items; items of the same org shared with all projects or with this one (for integrations,
    org-scoped items too: shared with all projects or selected ones); the system catalog shared with the
    org (for profiles: unless the org has its own copy, which is visible instead).
    Written as one SQL condition: the catalog is the hottest read of the portal, and this compiles in
    microseconds where the equivalent nest of ORM subqueries took milliseconds.
    """
    table, name = model._meta.db_table, model._meta.model_name
    projects_through = model.shared_projects.through._meta.db_table
    orgs_through = model.shared_orgs.through._meta.db_table
    org, own = project.org_id, project.pk
    parts = [
        ("i.project_id = %s", [own]),
        ("(i.org_id = %s AND i.project_id IS NOT NULL AND i.sharing = 'all')", [org]),
        (
            f"(i.org_id = %s AND i.sharing = 'selected' AND EXISTS (SELECT 1 FROM {projects_through} s "
            f"WHERE s.{name}_id = i.id AND s.project_id = %s))",
            [org, own],
        ),
    ]
    system = (
        f"(i.org_id IS NULL AND (i.system_sharing = 'all' OR (i.system_sharing = 'selected' AND EXISTS "
        f"(SELECT 1 FROM {orgs_through} o WHERE o.{name}_id = i.id AND o.organization_id = %s)))"
    )
    system_params = [org]
    if issubclass(model, Profile):
        parts.append(("(i.org_id = %s AND i.project_id IS NULL AND i.origin_id IS NOT NULL)", [org]))
        system += f" AND NOT EXISTS (SELECT 1 FROM {table} c WHERE c.origin_id = i.id AND c.org_id = %s)"
        system_params.append(org)
    else:  # integrations (repositories, registries, catalog applications) have an org scope of their own
        parts.append(("(i.org_id = %s AND i.project_id IS NULL AND i.sharing = 'all')", [org]))
    parts.append((system + ")", system_params))
    sql = (
        f"SELECT i.id FROM {table} i WHERE (i.org_id = %s OR i.org_id IS NULL) AND ("
        + " OR ".join(clause for clause, _ in parts)
        + ")"
    )
    params = [org, *(value for _, values in parts for value in values)]
    # Identifiers come from model metadata, every value is a parameter.
    return Q(pk__in=RawSQL(sql, params))


def catalog_for(model: type[Model], project: Project) -> QuerySet:
    """The published profiles of ``model`` that ``project``'s users may launch.

    Profiles only ever reference published template versions (publishing is one-way), so no join is
    needed; the leading org-or-system condition lets PostgreSQL use the (org, published) index.
    """
    return model.objects.filter(visible_in_project_q(model, project), published=True).order_by(
        "display_name", "pk"
    )


def resource_groups_json() -> RawSQL:
    """A compute profile's resource groups as one JSON column (so a catalog page is one query)."""
    table, groups = ComputeProfile._meta.db_table, ResourceGroup._meta.db_table
    return RawSQL(
        "SELECT COALESCE(json_agg(json_build_object('gpu_model', g.gpu_model, 'gpu_count', g.gpu_count, "
        "'mig_profile', g.mig_profile, 'mig_count', g.mig_count, 'cpu_cores', g.cpu_cores::text, "
        "'memory_gib', g.memory_gib, 'storage_gib', g.storage_gib) ORDER BY g.position), '[]'::json)::text "
        f"FROM {groups} g WHERE g.profile_id = {table}.id",
        [],
        output_field=JSONField(),
    )


def catalog_generation_and_perm(user, perm: str, project: Project) -> tuple[int, bool]:
    """The catalog generation (what cached catalog pages are keyed by; 0 before the first catalog write)
    and whether ``user`` holds ``perm`` on ``project`` (``paas.authz``'s rule, read now), in one query:
    a served catalog page costs this and nothing else of the catalog."""
    generation = CatalogGeneration.objects.filter(pk=1).values("value")[:1]
    granted = authz.filter_for(user, perm, Project.objects.filter(pk=OuterRef("pk")))
    return (
        Project.objects.filter(pk=project.pk)
        .annotate(generation=Coalesce(Subquery(generation), 0), granted=Exists(granted))
        .values_list("generation", "granted")
        .get()
    )


def catalog_project_for(user, project_id) -> Project:
    """A project the user may see (404 otherwise), with the current ``catalog_generation``: one query."""
    generation = CatalogGeneration.objects.filter(pk=1).values("value")[:1]
    projects = Project.objects.only("id", "org_id").annotate(
        catalog_generation=Coalesce(Subquery(generation), 0)
    )
    return authz.get_visible(authz.filter_for(user, "view_project", projects), project_id, user=user)


def catalog_for_user(user, model: type[Model], project_id) -> QuerySet:
    """The catalog of a project the user may see (404 otherwise)."""
    return catalog_for(model, catalog_project_for(user, project_id))


# --- the studio / API admin side ---------------------------------------------------------------------


def managed_projects(user) -> QuerySet[Project]:
    return authz.filter_for(user, "manage_catalog", Project.objects.all())


def _managed_org_ids(user) -> QuerySet:
    return Organization.objects.filter(
        Q(pk__in=managed_projects(user).values("org_id"))
        | authz.permission_q(user, "manage_catalog", Organization)
    ).values("pk")


def admin_list_for(user, model: type[Model]) -> QuerySet:
    """What a catalog manager sees in the studio: the items of projects they manage, what is inherited
    into those projects, the system catalog shared with their orgs and their orgs' tenant copies.
    Operators manage the system catalog (every item in no org); an org's items only through a support
    access making them its admin."""
    base = model.objects.select_related("org", "project")
    if not authz.is_active_user(user):
        return base.none()
    projects, orgs = managed_projects(user), _managed_org_ids(user)
    condition = (
        Q(project__in=projects)
        | Q(org__in=orgs, project__isnull=False, sharing=Sharing.ALL)
        | (Q(org__in=orgs) & _shared_to_projects(model, projects))
        | _system_shared_to_orgs(model, orgs)
    )
    if issubclass(model, Profile):
        condition |= Q(org__in=orgs, project__isnull=True, origin__isnull=False)
    if authz.is_operator(user):
        condition |= Q(org__isnull=True, project__isnull=True)
    return base.filter(condition)


def template_list_for(user) -> QuerySet[EnvironmentTemplate]:
    return admin_list_for(user, EnvironmentTemplate)


def template_version_list_for(user) -> QuerySet[TemplateVersion]:
    """The versions of the templates ``user`` may see (API and studio)."""
    return TemplateVersion.objects.filter(template__in=template_list_for(user)).select_related("template")


def compute_profile_list_for(user) -> QuerySet[ComputeProfile]:
    return (
        admin_list_for(user, ComputeProfile)
        .select_related("template_version__template")
        .prefetch_related("resource_groups")
    )


def service_profile_list_for(user) -> QuerySet[ServiceProfile]:
    return admin_list_for(user, ServiceProfile).select_related("template_version__template", "datacenter")


def allowed_actions(user, item) -> set[str]:
    """What ``user`` may do to a catalog item they can see: edit, clone, share, delete.

    Owned by a project they manage: everything. Inherited from another project: nothing. A system
    item seen by a tenant: edit only (into the tenant's copy), never share, clone or delete. A tenant
    copy: edit. Operators manage the system catalog itself (an org's items as anyone: through the
    permissions a support access gives).
    """
    if item.org_id is None and item.project_id is None and authz.is_operator(user):
        return {"edit", "clone", "share", "delete"}
    if item.project_id is not None:
        return (
            {"edit", "clone", "share", "delete"}
            if authz.has_perm(user, "manage_catalog", item.project)
            else set()
        )
    if not isinstance(item, Profile):
        return set()  # system templates are read-only in tenants
    return {"edit"}


# --- the operators' allow-list of custom resources ---------------------------------------------------


def allowed_custom_resource_kinds() -> frozenset[tuple[str, str]]:
    """The ``(group, kind)`` pairs templates may create (publish and apply check against it). Platform
    configuration, not a user's read: no permission filter."""
    return frozenset(AllowedCustomResource.objects.values_list("group", "kind"))


def allowed_custom_resource_list_for(user) -> QuerySet[AllowedCustomResource]:
    """Operators, org admins and PaaS admins (whoever writes templates) read the list, so they know
    which custom resources their templates may use; nobody else."""
    base = AllowedCustomResource.objects.select_related("created_by")
    if authz.is_operator(user):
        return base
    if not authz.is_active_user(user):
        return base.none()
    if administers_any_org(user) or _managed_org_ids(user).exists():
        return base
    return base.none()
