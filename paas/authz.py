"""Authorization: the one module that answers "may user U do action A on object O".

Permissions are django-guardian object permissions, granted by the tenancy services from role
assignments. A model may declare ``authz_parents``: for a permission codename, a list of
``(attribute, parent_codename)`` pairs meaning "``parent_codename`` on ``getattr(obj, attribute)``
implies this permission on ``obj``" (an org admin may view every project of the org). Operators
(platform superusers) may do everything.

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

from functools import cache

from django.apps import apps
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Model, Q, QuerySet
from django.db.models.expressions import RawSQL
from guardian.core import ObjectPermissionChecker
from guardian.models import UserObjectPermissionBase
from guardian.utils import get_user_obj_perms_model

from paas.errors import Forbidden, NotFound, OrgDeactivated

# The tenant model: paas names it (as settings name the user model) instead of importing tenancy.
TENANT_MODEL = "tenancy.Organization"
# Who is a member of a tenant: a row of this model with ``user`` and ``org`` (any role, even dormant).
MEMBERSHIP_MODEL = "tenancy.RoleAssignment"


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


def forget(user) -> None:
    """Drop the permission cache on this user object (after its roles changed)."""
    user.__dict__.pop("_authz_checker", None)


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


def has_perm(user, perm: str, obj: Model) -> bool:
    """May ``user`` exercise ``perm`` (a codename of ``obj``'s model) on ``obj``?"""
    if not is_active_user(user):
        return False
    if is_operator(user):
        return True
    if in_inactive_org(obj):
        return False
    codename = _codename(perm)
    if _checker(user).has_perm(codename, obj):
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


def _permission_sql(user, model: type[Model], codename: str) -> tuple[str, list]:
    """SQL selecting the ids of ``model`` rows on which ``user`` holds ``codename``: direct grants
    plus those implied by a permission on a parent (``authz_parents``), recursively."""
    table = model._meta.db_table
    pk = model._meta.pk.column
    perm_model, direct = _perms_model(model)
    perm_table = perm_model._meta.db_table
    if direct:
        clauses = [
            f"t.{pk} IN (SELECT g.content_object_id FROM {perm_table} g "
            f"WHERE g.user_id = %s AND g.permission_id = %s)"
        ]
        params: list = [user.pk, _permission_id(model, codename)]
    else:
        clauses = [
            f"CAST(t.{pk} AS text) IN (SELECT g.object_pk FROM {perm_table} g WHERE g.user_id = %s "
            f"AND g.permission_id = %s AND g.content_type_id = %s)"
        ]
        params = [user.pk, _permission_id(model, codename), ContentType.objects.get_for_model(model).pk]
    for attribute, parent_perm in getattr(model, "authz_parents", {}).get(codename, []):
        field = model._meta.get_field(attribute)
        sub_sql, sub_params = _permission_sql(user, field.related_model, parent_perm)
        clauses.append(f"t.{field.column} IN ({sub_sql})")
        params += sub_params
    # Identifiers come from model metadata; every value is a parameter.
    return f"SELECT t.{pk} FROM {table} t WHERE " + " OR ".join(clauses), params


def permission_q(user, perm: str, model: type[Model], *, prefix: str = "") -> Q:
    """A filter matching the objects of ``model`` on which ``user`` holds ``perm``.

    ``prefix`` lets a caller filter another model through a relation (e.g. ``"project__"``). The
    condition is one SQL subquery: cheap to build on every request, whatever the role structure.
    """
    if not is_active_user(user):
        return Q(pk__in=[])
    if is_operator(user):
        return Q()
    sql, params = _permission_sql(user, model, _codename(perm))
    return Q(**{f"{prefix}pk__in": RawSQL(sql, params)}) & _active_org_q(model, prefix)


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
    the same rule (an active user; operators hold everything; others by their grants, direct or through
    a parent, the object's org active). For a hot path that must see a revocation at once (the kubectl
    proxy checks every request)."""
    if not is_active_user(user):
        return False
    if is_operator(user):
        return True
    sql, params = _permission_sql(user, model, _codename(perm))
    table, column = model._meta.db_table, model._meta.pk.column
    query = (
        f"SELECT EXISTS (SELECT 1 FROM {table} t WHERE t.{column} = %s AND t.{column} IN ({sql})"
        f"{_active_org_sql(model)})"
    )
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
