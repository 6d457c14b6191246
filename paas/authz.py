"""Authorization: the one module that answers "may user U do action A on object O".

Permissions are django-guardian object permissions, granted by the tenancy services from role
assignments. A model may declare ``authz_parents``: for a permission codename, a list of
``(attribute, parent_codename)`` pairs meaning "``parent_codename`` on ``getattr(obj, attribute)``
implies this permission on ``obj``" (an org admin may view every project of the org).

Operators (platform superusers) run the platform, not its tenants. They hold every permission on
objects outside any organization (inventory, the system catalog, warm pools, users) and, on an
organization itself, the codenames its model lists in ``authz_operator_codenames`` (view and change:
they create, rename, deactivate orgs and set their quotas). Inside an organization (its workspaces,
instances, services, outputs, audit trail, members) they hold nothing of their own: only what an
active support access grants them (``SUPPORT_MODEL``; approved, ``starts_at <= now < expires_at``): a
``read`` grant every ``view_*`` permission there, an ``admin`` grant what an org admin holds. A model
may list ``authz_operator_codenames`` too ("*" for all) when operators run its rows although they sit
in an org (an org's quota).

``filter_for`` turns the same rules into a queryset filter built from subqueries, so a list costs a
constant number of queries whatever the user's roles. ``get_for`` is the only way to reach one object
by id: a missing object and one the user may not see both raise :class:`paas.errors.NotFound`.

A deactivated organization (``TENANT_MODEL`` with ``is_active`` false) switches off every permission
on it and on everything in it (objects with an ``org`` or a ``project`` in it), whatever roles people
hold there; only operators still see it (and may reactivate it). Both ``has_perm`` and ``filter_for``
apply the rule, so every portal page, studio page and API endpoint does. Reaching one of its objects by
id, a member of the org (and no one else) is told why: ``OrgDeactivated`` (403 ``org_deactivated``)
instead of the 404 (:func:`get_visible` and :func:`get_for` given the user).
"""

import operator
from collections.abc import Callable, Sequence
from functools import cache, reduce

from django.apps import apps
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import BooleanField, F, Func, Model, Q, QuerySet, Subquery
from django.db.models.expressions import RawSQL
from django.utils import timezone
from guardian.core import ObjectPermissionChecker
from guardian.models import UserObjectPermissionBase
from guardian.utils import get_user_obj_perms_model

from paas.errors import Forbidden, NotFound, OrgDeactivated

# The tenant model: paas names it (as settings name the user model) instead of importing tenancy.
TENANT_MODEL = "tenancy.Organization"
# Who is a member of a tenant: a row of this model with ``user`` and ``org`` (any role, even dormant).
MEMBERSHIP_MODEL = "tenancy.RoleAssignment"
# An operator's support access to one tenant: ``user``, ``org``, ``level`` ("read" or "admin"), ``state``
# ("approved" counts), ``starts_at``, ``expires_at``; the model's ``org_codenames(level)`` names what a
# level holds on the org besides every ``view_*``.
SUPPORT_MODEL = "tenancy.SupportAccess"


def _codename(perm: str) -> str:
    return perm.split(".", 1)[1] if "." in perm else perm


def is_active_user(user) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active)


def is_operator(user) -> bool:
    """Operators are the platform's superusers (the operator role keeps the flag in step)."""
    return is_active_user(user) and user.is_superuser


def _checker(user) -> ObjectPermissionChecker:
    checker = user.__dict__.get("_authz_checker")
    if checker is None:
        checker = ObjectPermissionChecker(user)
        user.__dict__["_authz_checker"] = checker
    return checker


def _holds_directly(user, codename: str, obj: Model) -> bool:
    """A guardian grant of ``codename`` on ``obj`` itself. guardian's checker answers yes to everything
    for a superuser, so an operator's own grants (an operator may also hold a role in an org) are read
    from their rows."""
    checker = _checker(user)
    if not user.is_superuser:
        return checker.has_perm(codename, obj)
    cache = user.__dict__.setdefault("_authz_direct", {})
    key = checker.get_local_cache_key(obj)
    if key not in cache:
        cache[key] = set(checker.get_user_perms(obj))
    return codename in cache[key]


def forget(user, *, support: bool = True) -> None:
    """Drop the permission caches on this user object (after its roles or support grants changed;
    ``support=False`` keeps what it read of support grants, when only its own permissions changed)."""
    for key in (
        ("_authz_checker", "_authz_direct", "_authz_memo", "_authz_support")
        if support
        else ("_authz_checker", "_authz_direct", "_authz_memo")
    ):
        user.__dict__.pop(key, None)


def remembered(user, key: str, compute: Callable[[], bool]) -> bool:
    """``compute()``, asked once per user object and ``key``: for the role-wide questions a page asks
    many times (may this user open the studio's sections? every section of the sidebar asks). A
    request's user object lives for that request, so this is a per-request memo, and :func:`forget`
    (called whenever roles or grants change) drops it with the other caches."""
    memo = user.__dict__.setdefault("_authz_memo", {})
    if key not in memo:
        memo[key] = bool(compute())
    return memo[key]


def in_inactive_org(obj: Model) -> bool:
    """Does ``obj`` belong to a deactivated organization (or is it one)? Read from the object's own
    relations, so it is as fresh as the object."""
    if obj._meta.label == TENANT_MODEL:
        return not obj.is_active
    if getattr(obj, "org_id", None) is not None:
        return not obj.org.is_active
    project = getattr(obj, "project", None) if getattr(obj, "project_id", None) is not None else None
    if project is not None and getattr(project, "org_id", None) is not None:
        return not project.org.is_active
    return False


def _active_org_q(model: type[Model], prefix: str) -> Q:
    """A filter dropping the objects of deactivated organizations (nothing for unscoped models)."""
    inactive = apps.get_model(TENANT_MODEL).objects.filter(is_active=False).values("pk")
    if model._meta.label == TENANT_MODEL:
        return ~Q(**{f"{prefix}pk__in": inactive})
    names = {f.name for f in model._meta.get_fields() if f.concrete}
    if "org" in names:
        return ~Q(**{f"{prefix}org__in": inactive})
    if "project" in names:
        return ~Q(**{f"{prefix}project__org__in": inactive})
    return Q()


def _operator_codenames(model: type[Model]) -> set[str]:
    return set(getattr(model, "authz_operator_codenames", ()) or ())


@cache
def _tenant_scope(model: type[Model]) -> str | None:
    """How ``model``'s rows belong to a tenant: "self" (the tenant model), "org", "project" or None."""
    if model._meta.label == TENANT_MODEL:
        return "self"
    names = {f.name for f in model._meta.get_fields() if f.concrete}
    if "org" in names:
        return "org"
    if "project" in names:
        return "project"
    return None


def _operator_runs(obj: Model, codename: str) -> bool:
    """Does an operator hold ``codename`` on ``obj`` as the platform's operator (no support access)?
    Yes outside every organization and for the codenames the model lists; no inside a tenant."""
    codes = _operator_codenames(type(obj))
    if "*" in codes or codename in codes:
        return True
    scope = _tenant_scope(type(obj))
    if scope is None:
        return True
    # In no org: read from the row's own ids (no query; a project always belongs to an org).
    return (
        scope != "self" and getattr(obj, "org_id", None) is None and getattr(obj, "project_id", None) is None
    )


def _support_levels(codename: str, *, on_org: bool) -> list[str]:
    """The support levels whose grant holds ``codename`` (on the org itself when ``on_org``)."""
    if codename.startswith("view_"):
        return ["read", "admin"]
    if on_org and codename in apps.get_model(SUPPORT_MODEL).org_codenames("admin"):
        return ["admin"]
    return []


def _support_grants(user) -> dict[int, tuple[str, object]]:
    """The user's approved support grants by org id: ``(level, expires_at)`` (cached on the user object
    for the request; :func:`_support_holds` still compares each expiry with the clock)."""
    grants = user.__dict__.get("_authz_support")
    if grants is None:
        now = timezone.now()
        rows = apps.get_model(SUPPORT_MODEL).objects.filter(
            user=user, state="approved", starts_at__lte=now, expires_at__gt=now
        )
        grants = {}
        for org_id, level, expires_at in rows.values_list("org_id", "level", "expires_at"):
            if grants.get(org_id, ("read",))[0] != "admin":
                grants[org_id] = (level, expires_at)
        user.__dict__["_authz_support"] = grants
    return grants


def _support_holds(user, codename: str, obj: Model) -> bool:
    """Does an active support grant of ``user`` on ``obj``'s organization hold ``codename`` on it?"""
    org = org_of(obj)
    if org is None:
        return False
    grant = _support_grants(user).get(org.pk)
    if grant is None or grant[1] <= timezone.now():
        return False
    return grant[0] in _support_levels(codename, on_org=obj._meta.label == TENANT_MODEL)


def support_orgs(user) -> dict[int, str]:
    """The organizations ``user`` reaches through an active support access: ``{org id: level}``."""
    if not is_operator(user):
        return {}
    now = timezone.now()
    return {org_id: level for org_id, (level, expires) in _support_grants(user).items() if expires > now}


def has_perm(user, perm: str, obj: Model) -> bool:
    """May ``user`` exercise ``perm`` (a codename of ``obj``'s model) on ``obj``?"""
    if not is_active_user(user):
        return False
    codename = _codename(perm)
    operator = is_operator(user)
    if operator and _operator_runs(obj, codename):
        return True
    if in_inactive_org(obj):
        return False
    if _holds_directly(user, codename, obj):
        return True
    if operator and _support_holds(user, codename, obj):
        return True
    for attribute, parent_perm in getattr(type(obj), "authz_parents", {}).get(codename, []):
        parent = getattr(obj, attribute, None)
        if parent is not None and has_perm(user, parent_perm, parent):
            return True
    return False


_permission_ids: dict[tuple[str, str], int | None] = {}


def _permission_id(model: type[Model], codename: str) -> int | None:
    """The id of a model permission, cached (cleared after every migrate: a flush recreates them)."""
    key = (model._meta.label_lower, codename)
    if key not in _permission_ids:
        content_type = ContentType.objects.get_for_model(model)
        _permission_ids[key] = (
            Permission.objects.filter(content_type=content_type, codename=codename)
            .values_list("pk", flat=True)
            .first()
        )
    return _permission_ids[key]


def clear_caches(**kwargs) -> None:
    _permission_ids.clear()


@cache
def _perms_model(model: type[Model]) -> tuple[type[Model], bool]:
    """guardian's object-permission table for ``model`` and whether it has a real foreign key (cached:
    guardian walks the model's fields to find it)."""
    perm_model = get_user_obj_perms_model(model)
    direct = issubclass(perm_model, UserObjectPermissionBase) and not perm_model.objects.is_generic()
    return perm_model, direct


def _support_sql(user, model: type[Model], codename: str, now) -> tuple[str, list] | None:
    """A condition on alias ``t`` of ``model``: the row is in an org where ``user`` holds an active
    support grant of a level that gives ``codename`` (None when no level does)."""
    scope = _tenant_scope(model)
    if scope is None:
        return None
    levels = _support_levels(codename, on_org=scope == "self")
    if not levels:
        return None
    support = apps.get_model(SUPPORT_MODEL)._meta
    column = support.get_field
    orgs = (
        f"SELECT s.{column('org').column} FROM {support.db_table} s WHERE s.{column('user').column} = %s "
        f"AND s.state = 'approved' AND s.starts_at <= %s AND s.expires_at > %s "
        f"AND s.level IN ({', '.join(['%s'] * len(levels))})"
    )
    params = [user.pk, now, now, *levels]
    fields = {f.name: f for f in model._meta.get_fields() if f.concrete}
    if scope == "self":
        return f"t.{model._meta.pk.column} IN ({orgs})", params
    if scope == "org":
        return f"t.{fields['org'].column} IN ({orgs})", params
    project = fields["project"].related_model._meta
    return (
        f"t.{fields['project'].column} IN (SELECT p.{project.pk.column} FROM {project.db_table} p "
        f"WHERE p.{project.get_field('org').column} IN ({orgs}))",
        params,
    )


def _platform_sql(model: type[Model], codename: str) -> str | None:
    """For an operator: a condition on alias ``t`` matching the rows they hold ``codename`` on as the
    platform's operator ("TRUE" for all; None for none): rows in no organization, or every row when
    the model lists the codename in ``authz_operator_codenames``."""
    codes = _operator_codenames(model)
    scope = _tenant_scope(model)
    if scope is None or "*" in codes or codename in codes:
        return "TRUE"
    if scope == "self":
        return None
    fields = {f.name: f for f in model._meta.get_fields() if f.concrete}
    nullable = [fields[name] for name in ("org", "project") if name in fields]
    if not all(field.null for field in nullable):
        return None
    return " AND ".join(f"t.{field.column} IS NULL" for field in nullable)


def _permission_sql(user, model: type[Model], codename: str, *, support_at=None) -> tuple[str, list]:
    """SQL selecting the ids of ``model`` rows on which ``user`` holds ``codename``: direct grants
    plus those implied by a permission on a parent (``authz_parents``), recursively. Given
    ``support_at`` (a time; for operators), also the rows an active support grant gives them then.

    One SELECT per way of holding it, joined by ``UNION ALL`` (an id may come twice: the callers use
    it in ``IN``): each reads its own index (the grants' user, the rows' parent column) instead of one
    scan of the whole table testing every way on every row."""
    table = model._meta.db_table
    pk = model._meta.pk.column
    perm_model, direct = _perms_model(model)
    perm_table = perm_model._meta.db_table
    if direct:
        selects = [
            f"SELECT g.content_object_id FROM {perm_table} g WHERE g.user_id = %s AND g.permission_id = %s"
        ]
        params: list = [user.pk, _permission_id(model, codename)]
    else:
        selects = [
            f"SELECT t.{pk} FROM {table} t WHERE CAST(t.{pk} AS text) IN (SELECT g.object_pk FROM "
            f"{perm_table} g WHERE g.user_id = %s AND g.permission_id = %s AND g.content_type_id = %s)"
        ]
        params = [user.pk, _permission_id(model, codename), ContentType.objects.get_for_model(model).pk]
    for attribute, parent_perm in getattr(model, "authz_parents", {}).get(codename, []):
        field = model._meta.get_field(attribute)
        sub_sql, sub_params = _permission_sql(user, field.related_model, parent_perm, support_at=support_at)
        selects.append(f"SELECT t.{pk} FROM {table} t WHERE t.{field.column} IN ({sub_sql})")
        params += sub_params
    if support_at is not None and (support := _support_sql(user, model, codename, support_at)):
        selects.append(f"SELECT t.{pk} FROM {table} t WHERE {support[0]}")
        params += support[1]
    # Identifiers come from model metadata; every value is a parameter.
    return " UNION ALL ".join(selects), params


class _AmongIds(Func):
    """``column = ANY(ARRAY(subquery))`` (see :func:`among`)."""

    output_field = BooleanField()

    def as_sql(self, compiler, connection, **extra):
        column, column_params = compiler.compile(self.source_expressions[0])
        ids, ids_params = compiler.compile(self.source_expressions[1])
        return f"{column} = ANY(ARRAY{ids})", (*column_params, *ids_params)


def permission_q(user, perm: str, model: type[Model], *, prefix: str = "") -> Q:
    """A filter matching the objects of ``model`` on which ``user`` holds ``perm``.

    ``prefix`` lets a caller filter another model through a relation (e.g. ``"project__"``). The
    condition is one SQL subquery: cheap to build on every request, whatever the role structure.
    """
    if not is_active_user(user):
        return Q(pk__in=[])
    codename = _codename(perm)
    if not is_operator(user):
        sql, params = _permission_sql(user, model, codename)
        return Q(**{f"{prefix}pk__in": RawSQL(sql, params)}) & _active_org_q(model, prefix)
    platform = _platform_sql(model, codename)
    if platform == "TRUE":
        return Q()
    # An operator's rows: those granted (support accesses) or the platform's. Each set as ``pk =
    # ANY(ARRAY(...))`` so that PostgreSQL ORs two primary-key index scans instead of testing two ``IN``
    # conditions on every row of the table.
    sql, params = _permission_sql(user, model, codename, support_at=timezone.now())
    granted = Q(_AmongIds(F(f"{prefix}pk"), RawSQL(sql, params))) & _active_org_q(model, prefix)
    if platform is None:
        return granted
    table, pk = model._meta.db_table, model._meta.pk.column
    return granted | Q(
        _AmongIds(F(f"{prefix}pk"), RawSQL(f"SELECT t.{pk} FROM {table} t WHERE {platform}", []))
    )


def permission_any_q(user, perms: Sequence[str], model: type[Model], *, prefix: str = "") -> Q:
    """:func:`permission_q` of any of ``perms`` (``permission_q(a) | permission_q(b)``), as one
    ``pk IN`` over the ``UNION ALL`` of their SQL: PostgreSQL joins that to the table by its primary key,
    where an OR of two ``IN`` conditions makes it test both on every row of the table."""
    if not is_active_user(user):
        return Q(pk__in=[])
    if is_operator(user):  # (platform rules per permission: the plain OR)
        return reduce(operator.or_, (permission_q(user, perm, model, prefix=prefix) for perm in perms))
    sqls, params = [], []
    for perm in perms:
        sql, sql_params = _permission_sql(user, model, _codename(perm))
        sqls.append(sql)
        params += sql_params
    return Q(**{f"{prefix}pk__in": RawSQL(" UNION ALL ".join(sqls), params)}) & _active_org_q(model, prefix)


def among(column: str, ids: QuerySet) -> _AmongIds:
    """A filter: ``column`` (a foreign key's ``*_id``) is one of ``ids`` (a ``values("pk")`` of a list a
    user may see, e.g. ``instance_list_for(user)``). The ids are read once, then the rows by the
    column's index; ``column__in=ids`` would let PostgreSQL hash every row of the (large) table
    against the (small) visible set instead."""
    return _AmongIds(F(column), Subquery(ids))


def _active_org_sql(model: type[Model]) -> str:
    """:func:`_active_org_q` as SQL on the alias ``t`` of ``model``'s table (for :func:`holds`)."""
    org = apps.get_model(TENANT_MODEL)._meta
    inactive = f"SELECT o.{org.pk.column} FROM {org.db_table} o WHERE NOT o.is_active"
    if model._meta.label == TENANT_MODEL:
        return f" AND t.{model._meta.pk.column} NOT IN ({inactive})"
    fields = {f.name: f for f in model._meta.get_fields() if f.concrete}
    if "org" in fields:
        return f" AND t.{fields['org'].column} NOT IN ({inactive})"
    if "project" in fields:
        project = fields["project"].related_model._meta
        return (
            f" AND t.{fields['project'].column} NOT IN (SELECT p.{project.pk.column} "
            f"FROM {project.db_table} p WHERE p.{project.get_field('org').column} IN ({inactive}))"
        )
    return ""


def holds(user, perm: str, model: type[Model], pk) -> bool:
    """:func:`has_perm` for one object known by its primary key, in one SQL query and nothing cached:
    the same rule (an active user; operators hold what they run and what their support access gives;
    everyone by their grants, direct or through a parent, the object's org active). For a hot path
    that must see a revocation at once (the kubectl proxy checks every request)."""
    if not is_active_user(user):
        return False
    codename = _codename(perm)
    platform, support_at = None, None
    if is_operator(user):
        platform, support_at = _platform_sql(model, codename), timezone.now()
        if platform == "TRUE":
            return True
    sql, params = _permission_sql(user, model, codename, support_at=support_at)
    table, column = model._meta.db_table, model._meta.pk.column
    granted = f"(t.{column} IN ({sql}){_active_org_sql(model)})"
    if platform is not None:
        granted = f"({granted} OR ({platform}))"
    query = f"SELECT EXISTS (SELECT 1 FROM {table} t WHERE t.{column} = %s AND {granted})"
    with connection.cursor() as cursor:
        cursor.execute(query, [pk, *params])
        return bool(cursor.fetchone()[0])


def filter_for(user, perm: str, queryset: QuerySet) -> QuerySet:
    """Restrict ``queryset`` to the objects on which ``user`` holds ``perm``."""
    return queryset.filter(permission_q(user, perm, queryset.model))


def org_of(obj: Model | None) -> Model | None:
    """The organization ``obj`` belongs to (itself for an organization), if any."""
    if obj is None:
        return None
    if obj._meta.label == TENANT_MODEL:
        return obj
    if getattr(obj, "org_id", None) is not None:
        return obj.org
    project = getattr(obj, "project", None) if getattr(obj, "project_id", None) is not None else None
    if project is not None and getattr(project, "org_id", None) is not None:
        return project.org
    return None


def refuse_if_deactivated(user, obj: Model | None) -> None:
    """Raise :class:`OrgDeactivated` if ``obj`` is in a deactivated organization ``user`` is a member
    of (a role there, dormant since the deactivation). Anyone else learns nothing: the caller goes on
    to its 404."""
    org = org_of(obj)
    if org is None or org.is_active or not is_active_user(user) or is_operator(user):
        return
    if apps.get_model(MEMBERSHIP_MODEL).objects.filter(user=user, org=org).exists():
        raise OrgDeactivated(str(org))


def refuse_missing(user, queryset: QuerySet, pk) -> None:
    """An object the filtered queryset did not find: a member of its deactivated org is told so."""
    if user is None:
        return
    try:
        obj = queryset.model._base_manager.filter(pk=pk).first()
    except (ValueError, TypeError, ValidationError):
        return
    refuse_if_deactivated(user, obj)


def get_visible(queryset: QuerySet, pk, *, user=None) -> Model:
    """One object of an already permission-filtered queryset; missing and forbidden look alike (404).
    Given the ``user``, an object of a deactivated org they are a member of is a 403 ``org_deactivated``."""
    try:
        return queryset.get(pk=pk)
    except (queryset.model.DoesNotExist, ValueError, TypeError, ValidationError) as exc:
        refuse_missing(user, queryset, pk)
        raise NotFound(f"No such {queryset.model._meta.verbose_name}.") from exc


def get_for(user, perm: str, queryset: QuerySet, pk) -> Model:
    """Fetch one object the user may ``perm``; missing and forbidden both raise ``NotFound`` (but see
    :func:`refuse_if_deactivated`)."""
    name = queryset.model._meta.verbose_name
    try:
        obj = queryset.get(pk=pk)
    except (queryset.model.DoesNotExist, ValueError, TypeError, ValidationError) as exc:
        refuse_missing(user, queryset, pk)
        raise NotFound(f"No such {name}.") from exc
    if not has_perm(user, perm, obj):
        refuse_if_deactivated(user, obj)
        raise NotFound(f"No such {name}.")
    return obj


def require(user, perm: str, obj: Model, *, message: str = "") -> None:
    """Raise ``Forbidden`` unless the user holds ``perm`` on ``obj``.

    Callers reach ``obj`` through ``get_for`` first, so a user who cannot see it has had a 404 already.
    """
    if not has_perm(user, perm, obj):
        raise Forbidden(message or "You do not have permission to do this.")


def require_operator(user, *, message: str = "Only platform operators may do this.") -> None:
    if not is_operator(user):
        raise Forbidden(message)


def permissions_for(codenames: set[str], model: type[Model]) -> QuerySet:
    content_type = ContentType.objects.get_for_model(model)
    return Permission.objects.filter(content_type=content_type, codename__in=codenames)
