"""API base classes: every viewset takes its queryset from a selector, so none can forget the filter."""

from collections.abc import Callable

from django.db.models import QuerySet
from rest_framework import viewsets

from paas import authz


class ScopedViewSetMixin:
    """Subclasses set ``selector``: a function ``(user) -> queryset`` of what the user may see.

    ``get_object`` looks the id up in that queryset only: a forbidden object is a 404, like a missing one.
    """

    selector: Callable[..., QuerySet] | None = None

    def get_queryset(self) -> QuerySet:
        selector = type(self).selector
        if selector is None:
            raise NotImplementedError(f"{type(self).__name__} must set `selector`")
        if getattr(self, "swagger_fake_view", False):  # schema generation: no user, no rows
            return type(self).serializer_class.Meta.model.objects.none()
        return selector(self.request.user)

    def get_object(self):
        lookup = self.kwargs[self.lookup_url_kwarg or self.lookup_field]
        obj = authz.get_visible(self.filter_queryset(self.get_queryset()), lookup, user=self.request.user)
        self.check_object_permissions(self.request, obj)
        return obj


class ScopedGenericViewSet(ScopedViewSetMixin, viewsets.GenericViewSet):
    pass


class ScopedReadOnlyViewSet(ScopedViewSetMixin, viewsets.ReadOnlyModelViewSet):
    pass
