from django.contrib import admin

from paas import authz


class StudioSite(admin.AdminSite):
    """The PaaS Studio: the Django admin, branded; open to operators, org admins and PaaS admins."""

    site_header = "PaaS Studio"
    site_title = "PaaS Studio"
    index_title = "Platform administration"
    site_url = "/"

    def has_permission(self, request) -> bool:
        # Staff is kept in step with the studio roles (operator, org admin, PaaS admin) by the services.
        return authz.is_active_user(request.user) and request.user.is_staff
