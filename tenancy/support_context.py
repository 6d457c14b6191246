"""The support banner's template context, on every page (portal and studio): the support person sees
which org they are in and until when; the org's admins see who has support access to it."""

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from tenancy.support_selectors import banner_for


def support_banner(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.is_staff:
        return {}
    return {"support_banner": SimpleLazyObject(lambda: banner_for(user))}
