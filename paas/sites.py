from collections.abc import Callable
from functools import wraps

from django.contrib import admin
from django.http import HttpResponseBadRequest

from paas import authz, mfa_policy


def _has_nul(query) -> bool:
    return any("\x00" in key or any("\x00" in value for value in values) for key, values in query.lists())


class StudioSite(admin.AdminSite):
    """The PaaS Studio: the Django admin, branded; open to operators, org admins and PaaS admins.

    Its home is the PaaS Studio home, not the stock index: sections that the apps above ``paas``
    register with :meth:`add_home_section` (the catalog's profile cards, the instances' developer hub:
    ``paas`` imports neither), then every page the viewer may open.
    """

    site_header = "PaaS Studio"
    site_title = "PaaS Studio"
    index_title = "Home"
    index_template = "admin/studio_home.html"
    site_url = "/"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._home_sections: list[tuple[int, Callable]] = []

    def add_home_section(self, order: int, section: Callable) -> None:
        """``section(request) -> {"template": ..., **context} | None`` (None: nothing for this viewer)."""
        self._home_sections = sorted([*self._home_sections, (order, section)], key=lambda item: item[0])

    def index(self, request, extra_context=None):
        sections = [part for _, section in self._home_sections if (part := section(request))]
        return super().index(request, {**(extra_context or {}), "home_sections": sections})

    def has_permission(self, request) -> bool:
        # Staff is kept in step with the studio roles (operator, org admin, PaaS admin) by the services.
        # Like django-otp's OTPAdminSite: where MFA applies, only a session verified with it.
        user = request.user
        if not (authz.is_active_user(user) and user.is_staff):
            return False
        return mfa_policy.session_verified(user) or not mfa_policy.mfa_applies(user)

    def admin_view(self, view, cacheable=False):
        inner = super().admin_view(view, cacheable)

        @wraps(inner)
        def checked(request, *args, **kwargs):
            # PostgreSQL text cannot hold NUL: a changelist filter such as ?state=%00 would reach the
            # database and fail there. Django's forms refuse NUL in fields; the address is checked here.
            if _has_nul(request.GET):
                return HttpResponseBadRequest(
                    "The address holds a NUL character (%00), which no filter or search can match.",
                    content_type="text/plain; charset=utf-8",
                )
            return inner(request, *args, **kwargs)

        return checked
