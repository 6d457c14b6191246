"""Name shapes every layer checks the same way (paas is the lowest layer: all may use them)."""

import re

# An RFC 1123 label, as Kubernetes names namespaces and most objects: lowercase letters, digits and
# hyphens, starting and ending with a letter or digit. The pattern is also the model fields'
# (``tenancy.models.slug_validator``; its text is in migrations, so it stays as it is).
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_LABEL_MESSAGE = "Use lowercase letters, digits and hyphens; start and end with a letter or digit."
DNS_LABEL_MAX_LENGTH = 63
_DNS_LABEL = re.compile(DNS_LABEL_PATTERN)


def is_id(text: str) -> bool:
    """Whether ``text`` (from an address or a form) is a row id: ASCII digits only ("²" is a digit to
    ``str.isdigit``) and fewer than 19 of them, so that it fits a bigint column."""
    return text.isascii() and text.isdigit() and len(text) < 19


def is_dns_label(value: object) -> bool:
    """Whether ``value`` is a DNS label: the pattern above, 1 to 63 characters, nothing after it (not
    even a newline, which ``$`` alone would let through)."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= DNS_LABEL_MAX_LENGTH
        and _DNS_LABEL.fullmatch(value) is not None
    )
