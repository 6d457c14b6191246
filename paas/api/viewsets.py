"""API base classes: every viewset takes its queryset from a selector, so none can forget the filter."""

from collections.abc import Callable

from django.db.models import QuerySet
from rest_framework import status, viewsets
from rest_framework.response import Response

from paas import authz
from paas.errors import ValidationFailed
from paas.validation import is_id


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


# The one way an API write is made: the serializer validates, a service function does the work
# (keyword arguments and ``actor``), the serializer of the result answers. Service errors become
# clean 400/404/409 answers in the one exception handler (``paas.api.errors``).
#
# Subclasses name their services (``create_service``, ``update_service``, ``delete_service``: wrap
# them in ``staticmethod``), the keyword that takes the target object (``target_kwarg``), and may
# reshape the validated data in ``prepare``. ``reread`` answers with the result read again through the
# selector (for fields the selector annotates).
#
# (Comments, not docstrings: drf-spectacular would publish a docstring as every operation's text.)
class ServiceWriteBase:
    create_service: Callable | None = None
    update_service: Callable | None = None
    delete_service: Callable | None = None
    target_kwarg = ""
    reread = False
    create_serializer_class = None  # validates the body instead of ``serializer_class`` (which answers)
    update_serializer_class = None

    def validated(self, serializer_class=None, *, instance=None, partial=False) -> dict:
        """Validate the request body with ``serializer_class`` (default: the viewset's serializer)."""
        if serializer_class is None:
            serializer = self.get_serializer(instance, data=self.request.data, partial=partial)
        else:
            serializer = serializer_class(
                instance, data=self.request.data, partial=partial, context=self.get_serializer_context()
            )
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)

    def prepare(self, data: dict, update: bool = False) -> dict:
        """Reshape validated data into the service's keyword arguments (default: as they are)."""
        return data

    def result(self, returned):
        """The object to answer with, from what the service returned (default: the return value)."""
        return returned

    def respond(self, obj, status_code: int = status.HTTP_200_OK) -> Response:
        if self.reread:
            obj = self.get_queryset().get(pk=obj.pk)
        return Response(self.get_serializer(obj).data, status=status_code)


class ServiceCreateMixin(ServiceWriteBase):
    def create(self, request, *args, **kwargs):
        data = self.prepare(self.validated(self.create_serializer_class))
        obj = self.result(type(self).create_service(actor=request.user, **data))
        return self.respond(obj, status.HTTP_201_CREATED)


class ServiceUpdateMixin(ServiceWriteBase):
    # PATCH only (as every API update here): PUT is not offered unless a viewset adds ``update``.

    update_validates_instance = True  # the serializer sees the object (e.g. to tell a rename from a clash)

    def partial_update(self, request, *args, **kwargs):
        return self.service_update(partial=True)

    def service_update(self, partial: bool) -> Response:
        """The update; a viewset that offers PUT defines ``update`` calling this with ``partial=False``."""
        target = self.get_object()
        instance = target if self.update_validates_instance else None
        data = self.validated(self.update_serializer_class, instance=instance, partial=partial)
        data = self.prepare(data, update=True)
        obj = self.result(
            type(self).update_service(actor=self.request.user, **{self.target_kwarg: target}, **data)
        )
        return self.respond(obj)


class ServiceDestroyMixin(ServiceWriteBase):
    def destroy(self, request, *args, **kwargs):
        type(self).delete_service(actor=request.user, **{self.target_kwarg: self.get_object()})
        return Response(status=status.HTTP_204_NO_CONTENT)


class ServiceWriteMixin(ServiceCreateMixin, ServiceUpdateMixin, ServiceDestroyMixin):
    pass  # create, PATCH and DELETE through services (see ``ServiceWriteBase``)


def query_id(request, name: str) -> int | None:
    """An id from the query string (``?project=3``), or None; anything else is a 400 on that name."""
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return None
    if not is_id(raw):
        raise ValidationFailed("Invalid filter.", fields={name: "An id (a number)."})
    return int(raw)
