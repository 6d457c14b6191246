"""One error type for business-rule failures, mapped to clean API errors and form errors."""


class ApplicationError(Exception):
    """A request the platform refuses for a reason the caller can act on.

    ``fields`` maps field names to messages (shown next to form fields, returned as 400 field errors).
    ``status`` is the HTTP status the API answers with.
    """

    status = 400
    code = "invalid"

    def __init__(self, message: str, *, fields: dict[str, list[str] | str] | None = None, code: str = ""):
        super().__init__(message)
        self.message = message
        self.fields = {
            key: value if isinstance(value, list) else [value] for key, value in (fields or {}).items()
        }
        if code:
            self.code = code


class ValidationFailed(ApplicationError):
    status = 400
    code = "invalid"


class NotFound(ApplicationError):
    """A missing object, or one the user may not see: the two look alike on purpose."""

    status = 404
    code = "not_found"

    def __init__(self, message: str = "Not found.", **kwargs):
        super().__init__(message, **kwargs)


class Forbidden(ApplicationError):
    """The user can see the object but may not do this to it."""

    status = 403
    code = "forbidden"


class OrgDeactivated(Forbidden):
    """The object belongs to a deactivated organization the user is a member of: say so (the user
    knows their own org) instead of a bare 404. Never raised for an org the user is not in."""

    code = "org_deactivated"

    def __init__(self, org_name: str):
        super().__init__(
            f"Your organization {org_name} is deactivated; contact your provider.",
        )
        self.org_name = org_name


class Conflict(ApplicationError):
    status = 409
    code = "conflict"


class RateLimited(ApplicationError):
    """Too many of these requests in a window (e.g. invitation emails); the message says when to retry."""

    status = 429
    code = "rate_limited"
