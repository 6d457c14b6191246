"""Input checks shared by the services of every app (tenancy is the lowest layer that knows them)."""

from django.core.exceptions import ValidationError as DjangoValidationError

from paas.errors import ValidationFailed
from paas.validation import DNS_LABEL_MAX_LENGTH
from tenancy.models import slug_validator


def clean_slug(field: str, value: str) -> str:
    """A name made of lowercase letters, digits and hyphens (a DNS label), 1 to 63 characters."""
    value = (value or "").strip()
    if not value:
        raise ValidationFailed(f"Invalid {field}.", fields={field: "This field is required."})
    try:
        slug_validator(value)
    except DjangoValidationError as exc:
        raise ValidationFailed(f"Invalid {field}.", fields={field: exc.messages}) from exc
    if len(value) > DNS_LABEL_MAX_LENGTH:
        raise ValidationFailed(
            f"Invalid {field}.", fields={field: f"At most {DNS_LABEL_MAX_LENGTH} characters."}
        )
    return value
