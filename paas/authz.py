"""Authorization: the one module that answers "may user U do action A on object O".

Permissions are django-guardian object permissions, granted by the tenancy services from role
assignments. A model may declare ``authz_parents``: for a permission codename, a list of
``(attribute, parent_codename)`` pairs meaning "``parent_codename`` on ``getattr(obj, attribute)``
implies this permission on ``obj``" (an org admin may view every project of the org). Operators
(platform superusers) may do everything.

``filter_for`` turns the same rules into a queryset filter built from subqueries, so a list costs a
constant number of queries whatever the user's roles. ``get_for`` is the only way to reach one object
by id: a missing object and one the user may not see both raise :class:`paas.errors.NotFound`.
"""

from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db.models import Model, Q, QuerySet
from guardian.core import ObjectPermissionChecker
from guardian.models import UserObjectPermissionBase
from guardian.utils import get_user_obj_perms_model

from paas.errors import Forbidden, NotFound


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


def has_perm(user, perm: str, obj: Model) -> bool:
    """May ``user`` exercise ``perm`` (a codename of ``obj``'s model) on ``obj``?"""
    if not is_active_user(user):
        return False
    if is_operator(user):
        return True
    codename = _codename(perm)
    if _checker(user).has_perm(codename, obj):
        return True
    for attribute, parent_perm in getattr(type(obj), "authz_parents", {}).get(codename, []):
        parent = getattr(obj, attribute, None)
        if parent is not None and has_perm(user, parent_perm, parent):
            return True
    return False


def _direct_object_ids(user, model: type[Model], codename: str) -> QuerySet:
    perm_model = get_user_obj_perms_model(model)
    rows = perm_model.objects.filter(user=user, permission__codename=codename)
    if issubclass(perm_model, UserObjectPermissionBase) and not perm_model.objects.is_generic():
        return rows.values("content_object_id")
    content_type = ContentType.objects.get_for_model(model)
    return rows.filter(content_type=content_type).values("object_pk")


def permission_q(user, perm: str, model: type[Model], *, prefix: str = "") -> Q:
    """A filter matching the objects of ``model`` on which ``user`` holds ``perm``.

    ``prefix`` lets a caller filter another model through a relation (e.g. ``"project__"``).
    """
    if not is_active_user(user):
        return Q(pk__in=[])
    if is_operator(user):
        return Q()
    codename = _codename(perm)
    condition = Q(**{f"{prefix}pk__in": _direct_object_ids(user, model, codename)})
    for attribute, parent_perm in getattr(model, "authz_parents", {}).get(codename, []):
        parent_model = model._meta.get_field(attribute).related_model
        condition |= permission_q(user, parent_perm, parent_model, prefix=f"{prefix}{attribute}__")
    return condition


def filter_for(user, perm: str, queryset: QuerySet) -> QuerySet:
    """Restrict ``queryset`` to the objects on which ``user`` holds ``perm``."""
    return queryset.filter(permission_q(user, perm, queryset.model))


def get_visible(queryset: QuerySet, pk) -> Model:
    """One object of an already permission-filtered queryset; missing and forbidden look alike (404)."""
    try:
        return queryset.get(pk=pk)
    except (queryset.model.DoesNotExist, ValueError, TypeError) as exc:
        raise NotFound(f"No such {queryset.model._meta.verbose_name}.") from exc


def get_for(user, perm: str, queryset: QuerySet, pk) -> Model:
    """Fetch one object the user may ``perm``; missing and forbidden both raise ``NotFound``."""
    name = queryset.model._meta.verbose_name
    try:
        obj = queryset.get(pk=pk)
    except (queryset.model.DoesNotExist, ValueError, TypeError) as exc:
        raise NotFound(f"No such {name}.") from exc
    if not has_perm(user, perm, obj):
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
