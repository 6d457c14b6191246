from collections.abc import Callable

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


@extend_schema_field(OpenApiTypes.INT)
class ScopedPrimaryKeyRelatedField(serializers.PrimaryKeyRelatedField):
    """A reference by id, resolved only among the objects the requesting user may see.

    An id the user may not see is reported exactly like one that does not exist.
    """

    def __init__(self, *, selector: Callable, **kwargs):
        self.selector = selector
        super().__init__(**kwargs)

    def get_queryset(self):
        return self.selector(self.context["request"].user)

    def to_internal_value(self, data):
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError:
            # A member of a deactivated org naming one of its objects is told so (403 org_deactivated).
            from paas import authz

            queryset = self.get_queryset()
            if not isinstance(data, bool):
                authz.refuse_missing(self.context["request"].user, queryset, data)
            raise
