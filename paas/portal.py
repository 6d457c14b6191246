"""What every developer-hub (portal) page shares: sign-in, permissions shown as buttons, error mapping
(the current workspace and the switcher are tenancy's: ``tenancy.portal``).

Portal views are thin: they reach objects through selectors (missing and forbidden look alike: 404),
change state through services, and show a service's ``ApplicationError`` on the page (field messages
next to the fields, the rest at the top) instead of failing.
"""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest

from paas import authz
from paas.errors import Conflict, Forbidden, NotFound, RateLimited, ValidationFailed

# Service errors a page shows on its form; Forbidden and NotFound propagate to the 403 and 404 pages.
FORM_ERRORS = (ValidationFailed, Conflict, RateLimited)


def portal_page(view):
    """Signed-in users only; a selector's NotFound becomes the site's 404 page, a service's Forbidden
    its 403 page (pages hide what the user may not do; this is the server refusing it anyway)."""

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except NotFound as exc:
            raise Http404(exc.message) from exc
        except Forbidden as exc:
            raise PermissionDenied(exc.message) from exc

    return wrapper


def workspace_permissions(user, project) -> dict[str, bool]:
    """What the signed-in user may do in a workspace: pages show only the buttons that work."""
    return {
        "launch": authz.has_perm(user, "manage_instances", project),
        "view_instances": authz.has_perm(user, "view_instances", project),
    }
