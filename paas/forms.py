"""A service's error shown on a Django form: the one mapping the studio and the portal pages share."""

from collections.abc import Mapping

from django.forms import Form

from paas.errors import ApplicationError


def apply_error(form: Form | None, exc: ApplicationError, *, renamed: Mapping[str, str] | None = None) -> str:
    """Put a service error's field messages beside the form's fields; return what is left to show
    above the form: the error's message, followed by the messages of fields the form does not have,
    or ``""`` when the field messages say it all.

    ``renamed`` maps a service's field name to the form's name for it (a write-only secret's
    ``new_...`` field), so that the message appears where the person typed.
    """
    renamed = renamed or {}
    unplaced = []
    for field, messages in exc.fields.items():
        field = renamed.get(field, field)
        for message in messages:
            if form is not None and field in form.fields:
                form.add_error(field, message)
            else:
                unplaced.append(message)
    if not exc.fields or unplaced:
        return f"{exc.message} {' '.join(unplaced)}".strip()
    return ""
