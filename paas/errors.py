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


class Conflict(ApplicationError):
    status = 409
    code = "conflict"


class RateLimited(ApplicationError):
    """Too many of these requests in a window (e.g. invitation emails); the message says when to retry."""

    status = 429
    code = "rate_limited"
