"""The checks of a brand: colours (``#rrggbb``, WCAG contrast, the shades derived from them) and
images (PNG, JPEG, WebP or ICO by their magic bytes, size-limited; SVG and other markup refused), and
the text fields (no control characters: no header injection in an email's sender). Used by
``paas.branding``, which owns the model's writes."""

import base64
import binascii
import hashlib
import math
import re

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email

from paas.errors import ValidationFailed

HEX = re.compile(r"#[0-9a-f]{6}")
AA = 4.5  # WCAG 2.1 AA, normal text
COLOUR_FIELDS = ("color_background", "color_text", "color_primary", "color_primary_text")
TEXT_FIELDS = {
    "product_name": 60,
    "portal_name": 60,
    "studio_name": 60,
    "support_email": 254,
    "support_url": 500,
    "email_from_name": 100,
    "email_from_address": 254,
    "email_footer": 1000,
}
IMAGE_LIMITS = {"logo": 256 * 1024, "favicon": 64 * 1024}
MAX_PIXELS = 4096  # a PNG's width or height

# --- colours ---------------------------------------------------------------------------------------


def _channel(value: int) -> float:
    c = value / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def luminance(colour: str) -> float:
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * _channel(r) + 0.7152 * _channel(g) + 0.0722 * _channel(b)


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two ``#rrggbb`` colours (1 to 21)."""
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def shown_ratio(ratio: float) -> str:
    """The ratio rounded down (4.499 is shown 4.49, never 4.5)."""
    return f"{math.floor(ratio * 100) / 100:.2f}:1"


def mix(a: str, b: str, t: float) -> str:
    """``a`` moved ``t`` (0..1) of the way to ``b``."""
    parts = [round(int(a[i : i + 2], 16) * (1 - t) + int(b[i : i + 2], 16) * t) for i in (1, 3, 5)]
    return "#" + "".join(f"{p:02x}" for p in parts)


def surface(bg: str, inks: list[str], t: float) -> str:
    """``bg`` shaded ``t`` towards the first ink (a table head, a selected row), less when that would
    bring any ink on it below AA."""
    while t > 0:
        candidate = mix(bg, inks[0], t)
        if all(contrast(ink, candidate) >= AA + 0.1 for ink in inks):
            return candidate
        t = round(t - 0.01, 2)
    return bg


def readable_towards(fg: str, bg: str, t: float, grounds: list[str]) -> str:
    """``fg`` faded towards ``bg`` by up to ``t``, as far as it keeps AA contrast (with a margin) on
    every one of ``grounds``."""
    while t > 0:
        candidate = mix(fg, bg, t)
        if all(contrast(candidate, ground) >= AA + 0.2 for ground in grounds):
            return candidate
        t = round(t - 0.05, 2)
    return fg


def first_readable(on: str, candidates: list[str]) -> str:
    """The first of ``candidates`` on which ``on`` has AA contrast (else the one with the most)."""
    for candidate in candidates:
        if contrast(on, candidate) >= AA + 0.1:
            return candidate
    return max(candidates, key=lambda candidate: contrast(on, candidate))


def valid_colour(value) -> str:
    value = (value or "").strip().lower() if isinstance(value, str) else ""
    return value if HEX.fullmatch(value) else ""


# --- images and text fields ------------------------------------------------------------------------

IMAGE_TYPES = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "ico": "image/vnd.microsoft.icon",
}


def image_type(data: bytes) -> str | None:
    """The content type of ``data`` by its magic bytes, among PNG, JPEG, WebP and ICO; None otherwise."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR" and len(data) >= 24:
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        return IMAGE_TYPES["png"] if 0 < width <= MAX_PIXELS and 0 < height <= MAX_PIXELS else None
    if data.startswith(b"\xff\xd8\xff"):
        return IMAGE_TYPES["jpeg"]
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return IMAGE_TYPES["webp"]
    if data[:4] == b"\x00\x00\x01\x00" and len(data) >= 6 and int.from_bytes(data[4:6], "little") > 0:
        return IMAGE_TYPES["ico"]
    return None


def _looks_like_markup(data: bytes) -> bool:
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith(b"<") or b"<svg" in data[:4096].lower()


def check_image(kind: str, data: bytes) -> tuple[str, str]:
    """``(content type, sha256)`` of an acceptable image, else ValidationFailed on ``kind``."""
    limit = IMAGE_LIMITS[kind]
    if len(data) > limit:
        raise ValidationFailed(
            f"The {kind} is too large.",
            fields={kind: f"At most {limit // 1024} KiB ({len(data)} bytes given)."},
        )
    if _looks_like_markup(data):
        raise ValidationFailed(
            f"The {kind} is not accepted.",
            fields={
                kind: "SVG and other markup are not accepted (they can carry scripts): "
                "use PNG, JPEG, WebP or ICO."
            },
        )
    content_type = image_type(data)
    if content_type is None:
        raise ValidationFailed(
            f"The {kind} is not accepted.",
            fields={kind: f"Not a PNG, JPEG, WebP or ICO image (a PNG at most {MAX_PIXELS} pixels a side)."},
        )
    return content_type, hashlib.sha256(data).hexdigest()


def decode_image(kind: str, value: str) -> bytes:
    """An image given as base64 (the API)."""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationFailed(
            f"The {kind} is not valid.", fields={kind: "Give the image as base64."}
        ) from None


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_BUT_NEWLINE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")


def check_fields(values: dict) -> dict[str, str]:
    errors: dict[str, str] = {}
    for name in COLOUR_FIELDS:
        if not HEX.fullmatch(values[name]):
            errors[name] = "A colour as #rrggbb (six hexadecimal digits)."
    for name, limit in TEXT_FIELDS.items():
        value = values[name]
        pattern = _CONTROL_BUT_NEWLINE if name == "email_footer" else _CONTROL
        if len(value) > limit:
            errors[name] = f"At most {limit} characters."
        elif pattern.search(value):
            errors[name] = "Line breaks and control characters are not allowed here."
    for name in ("product_name", "portal_name", "studio_name"):
        if not values[name].strip() and name not in errors:
            errors[name] = "This field is required."
    for name in ("support_email", "email_from_address"):
        if values[name] and name not in errors:
            try:
                validate_email(values[name])
            except ValidationError:
                errors[name] = "Enter a valid email address."
    if values["email_from_name"] and not values["email_from_address"] and "email_from_name" not in errors:
        errors["email_from_address"] = "A sender name needs a sender address."
    if values["support_url"] and "support_url" not in errors:
        try:
            URLValidator(schemes=["https", "http"])(values["support_url"])
        except ValidationError:
            errors["support_url"] = "Enter an http(s) address."
    if not any(name in errors for name in COLOUR_FIELDS):
        pairs = (
            ("color_text", "color_background", "The text colour {a} on the background {b}"),
            ("color_primary", "color_background", "The primary colour {a} (links) on the background {b}"),
            ("color_primary_text", "color_primary", "The button text {a} on the primary colour {b}"),
        )
        for fg, bg, what in pairs:
            ratio = contrast(values[fg], values[bg])
            if ratio < AA:
                errors[fg] = (
                    f"{what.format(a=values[fg], b=values[bg])} has a contrast of {shown_ratio(ratio)}; "
                    f"WCAG AA needs at least {AA}:1."
                )
    return errors
