"""White-label branding: the product name, logo, favicon, colours, support contact and email sender and
footer every page and every email shows.

The platform's brand is the row with ``org`` NULL (until an operator saves one, the defaults: today's
"GPU PaaS" / "PaaS Studio" look); an operator may give an organization a brand of its own (a reseller's
customers see the reseller's brand). Which brand a page shows (:func:`brand_for_request`): the org of the
workspace the page is about; in the studio, the org the viewer administers when exactly one; else the
org the signed-in user belongs to when exactly one; else (operators, sign-in pages, people of several
orgs) the platform's.

Everything here is hostile input checked in the service: colours are ``#rrggbb`` only, and text on the
background, the primary colour on the background (links) and the button text on the primary colour
each need WCAG AA contrast (4.5:1; refused with the measured ratio). Images are PNG, JPEG, WebP or ICO
found by their magic bytes (SVG is refused: it can carry script), size-limited, and served by
:mod:`paas.brand_assets` with their type, ``nosniff`` and a closed Content-Security-Policy. The email
sender is a checked address (no header injection). Colours reach pages only as CSS custom properties
written here from the checked values (:meth:`BrandView.portal_css`, :meth:`BrandView.studio_css`).
"""

from dataclasses import dataclass
from email.utils import formataddr

from django.apps import apps
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils.safestring import SafeString, mark_safe

from paas import authz
from paas.audit import apply_changes, audit_log
from paas.brand_checks import (
    COLOUR_FIELDS,
    HEX,
    TEXT_FIELDS,
    check_fields,
    check_image,
    contrast,
    first_readable,
    mix,
    readable_towards,
    surface,
    valid_colour,
)
from paas.errors import Conflict, NotFound, ValidationFailed
from paas.models import Brand

DEFAULTS = {
    f.name: f.default for f in Brand._meta.concrete_fields if f.name in {*COLOUR_FIELDS, *TEXT_FIELDS}
}
for _name in TEXT_FIELDS:
    if not isinstance(DEFAULTS.get(_name), str):
        DEFAULTS[_name] = ""
ORG_STUDIO_ROLES = ("org_admin", "paas_admin")  # the roles that open the studio on an org


# --- the brand a page or an email shows --------------------------------------------------------------


@dataclass(frozen=True)
class BrandView:
    """What templates and emails read (``{{ brand.product_name }}``): checked values only."""

    id: int | None = None
    org_id: int | None = None
    product_name: str = DEFAULTS["product_name"]
    portal_name: str = DEFAULTS["portal_name"]
    studio_name: str = DEFAULTS["studio_name"]
    color_background: str = DEFAULTS["color_background"]
    color_text: str = DEFAULTS["color_text"]
    color_primary: str = DEFAULTS["color_primary"]
    color_primary_text: str = DEFAULTS["color_primary_text"]
    logo_digest: str = ""
    favicon_digest: str = ""
    favicon_type: str = ""
    support_email: str = ""
    support_url: str = ""
    email_from_name: str = ""
    email_from_address: str = ""
    email_footer: str = ""

    @classmethod
    def of(cls, row: Brand | None) -> "BrandView":
        if row is None:
            return cls()
        values = {name: getattr(row, name) or "" for name in TEXT_FIELDS}
        for name in COLOUR_FIELDS:  # re-checked on the way out: only #rrggbb ever reaches a page
            values[name] = valid_colour(getattr(row, name)) or DEFAULTS[name]
        return cls(
            id=row.pk,
            org_id=row.org_id,
            logo_digest=row.logo_digest or "",
            favicon_digest=row.favicon_digest or "",
            favicon_type=row.favicon_type or "",
            **values,
        )

    # -- looks --
    @property
    def custom_colours(self) -> bool:
        """False for the defaults: pages keep their own stylesheet's look untouched."""
        return any(getattr(self, name) != DEFAULTS[name] for name in COLOUR_FIELDS)

    @property
    def theme(self) -> str:
        """``dark`` when the background is dark (the base styles' dark theme then fits the rest)."""
        return (
            "dark"
            if contrast(self.color_background, "#000000") < contrast(self.color_background, "#ffffff")
            else "light"
        )

    @property
    def default_mark(self) -> bool:
        """The studio's "GPU" mark belongs to the default product only."""
        return not self.logo_digest and self.product_name == DEFAULTS["product_name"]

    @property
    def logo_url(self) -> str:
        return f"/branding/{self.id}/logo/{self.logo_digest}/" if self.logo_digest else ""

    @property
    def favicon_url(self) -> str:
        return f"/branding/{self.id}/favicon/{self.favicon_digest}/" if self.favicon_digest else ""

    def _palette(self) -> dict[str, str]:
        bg, fg, pr, pt = self.color_background, self.color_text, self.color_primary, self.color_primary_text
        shade, selected = surface(bg, [fg, pr], 0.04), surface(bg, [fg, pr], 0.08)
        return {
            "bg": bg,
            "fg": fg,
            "primary": pr,
            "on_primary": pt,
            "muted": readable_towards(fg, bg, 0.35, [bg, shade, selected]),
            "surface": shade,
            "selected": selected,
            "hairline": mix(bg, fg, 0.12),
            "border": mix(bg, fg, 0.3),
            # Buttons that keep the button text of the brand on their own colour (delete, cancel).
            "danger": first_readable(pt, ["#ba2121", "#8b1a1a", "#ff9e9e", "#ffc9c9"]),
            "neutral": first_readable(pt, ["#5c5c5c", "#333333", "#c4c4c4", "#e6e6e6"]),
        }

    @staticmethod
    def _css(selector: str, variables: dict[str, str]) -> SafeString:
        # Every value is a #rrggbb colour computed from checked colours, or a keyword from this module.
        lines = []
        for name, value in variables.items():
            if not (HEX.fullmatch(value) or value in {"light", "dark"}):
                raise ValueError(f"unsafe CSS value for {name}")
            lines.append(f"  {name}: {value};")
        return mark_safe(f"{selector} {{\n" + "\n".join(lines) + "\n}")  # noqa: S308 (checked above)

    @property
    def portal_css(self) -> SafeString:
        """Pico CSS's custom properties for the portal (the brand's colours and what follows from them)."""
        p = self._palette()
        return self._css(
            "html:root[data-theme]",
            {
                "color-scheme": self.theme,
                "--pico-background-color": p["bg"],
                "--pico-color": p["fg"],
                **{f"--pico-h{n}-color": p["fg"] for n in range(1, 7)},
                "--pico-muted-color": p["muted"],
                "--pico-muted-border-color": p["hairline"],
                "--pico-primary": p["primary"],
                "--pico-primary-hover": p["primary"],
                "--pico-primary-background": p["primary"],
                "--pico-primary-hover-background": p["primary"],
                "--pico-primary-border": p["primary"],
                "--pico-primary-hover-border": p["primary"],
                "--pico-primary-underline": p["primary"],
                "--pico-primary-focus": p["border"],
                "--pico-primary-inverse": p["on_primary"],
                "--pico-card-background-color": p["bg"],
                "--pico-card-sectioning-background-color": p["surface"],
                "--pico-dropdown-background-color": p["bg"],
                "--pico-dropdown-color": p["fg"],
                "--pico-dropdown-hover-background-color": p["selected"],
                "--pico-form-element-background-color": p["bg"],
                "--pico-form-element-active-background-color": p["bg"],
                "--pico-form-element-color": p["fg"],
                "--pico-form-element-placeholder-color": p["muted"],
                "--pico-form-element-border-color": p["border"],
                "--pico-code-background-color": p["surface"],
                "--pico-code-color": p["fg"],
                "--pico-table-border-color": p["hairline"],
            },
        )

    @property
    def studio_css(self) -> SafeString:
        """The Django admin's custom properties for the studio."""
        p = self._palette()
        dark = self.theme == "dark"
        return self._css(
            ':root, html[data-theme="light"], html[data-theme="dark"]',
            {
                "color-scheme": self.theme,
                "--primary": p["primary"],
                "--secondary": p["primary"],
                "--accent": p["on_primary"],
                "--primary-fg": p["on_primary"],
                "--header-color": p["on_primary"],
                "--header-branding-color": p["on_primary"],
                "--header-bg": p["primary"],
                "--header-link-color": p["on_primary"],
                "--breadcrumbs-fg": p["on_primary"],
                "--breadcrumbs-link-fg": p["on_primary"],
                "--breadcrumbs-bg": p["primary"],
                "--body-bg": p["bg"],
                "--body-fg": p["fg"],
                "--body-quiet-color": p["muted"],
                "--body-medium-color": p["fg"],
                "--body-loud-color": p["fg"],
                "--link-fg": p["primary"],
                "--link-hover-color": p["primary"],
                "--link-selected-fg": p["primary"],
                "--hairline-color": p["hairline"],
                "--border-color": p["border"],
                "--darkened-bg": p["surface"],
                "--selected-bg": p["selected"],
                "--selected-row": p["selected"],
                "--button-fg": p["on_primary"],
                "--button-bg": p["primary"],
                "--button-hover-bg": p["primary"],
                "--default-button-bg": p["primary"],
                "--default-button-hover-bg": p["primary"],
                "--object-tools-fg": p["on_primary"],
                "--object-tools-bg": p["primary"],
                "--object-tools-hover-bg": p["primary"],
                "--delete-button-bg": p["danger"],
                "--delete-button-hover-bg": p["danger"],
                "--close-button-bg": p["neutral"],
                "--close-button-hover-bg": p["neutral"],
                "--error-fg": "#ff9e9e" if dark else "#ba2121",
                "--message-success-bg": "#006b1b" if dark else "#ddffdd",
                "--message-warning-bg": "#583305" if dark else "#ffffcc",
                "--message-error-bg": "#570808" if dark else "#ffefef",
            },
        )

    # -- email --
    @property
    def email_sender(self) -> str | None:
        """The From header (None: the settings' DEFAULT_FROM_EMAIL)."""
        if not self.email_from_address:
            return None
        return formataddr((self.email_from_name or self.product_name, self.email_from_address))

    @property
    def support_contact(self) -> str:
        return " · ".join(part for part in (self.support_email, self.support_url) if part)


# Brands are read on every page: each process keeps them a short while (a change reaches the process
# that made it at once, the others within CACHE_SECONDS).
CACHE_SECONDS = 30
_NONE = "-"  # cached: this org has no brand of its own


def _key(org_id) -> str:
    return f"paas.brand.{org_id or 0}"


def _brands(org_ids: list) -> dict:
    """``{org id or 0: BrandView or None}`` for the given orgs (0: the platform)."""
    keys = {_key(org_id): org_id or 0 for org_id in org_ids}
    cached = cache.get_many(list(keys))
    found = {keys[key]: (None if value == _NONE else value) for key, value in cached.items()}
    missing = [org_id for org_id in keys.values() if org_id not in found]
    if missing:
        q = Q(org_id__in=[o for o in missing if o]) | (Q(org__isnull=True) if 0 in missing else Q(pk__in=[]))
        rows = {row.org_id or 0: BrandView.of(row) for row in Brand.objects.filter(q)}
        fresh = {org_id: rows.get(org_id) for org_id in missing}
        cache.set_many(
            {_key(org_id): (_NONE if view is None else view) for org_id, view in fresh.items()}, CACHE_SECONDS
        )
        found.update(fresh)
    return found


def _forget(org_id) -> None:
    keys = [_key(org_id)]
    cache.delete_many(keys)
    transaction.on_commit(lambda: cache.delete_many(keys))


def platform_brand() -> BrandView:
    return _brands([0])[0] or BrandView()


def brand_for_org(org) -> BrandView:
    """The brand of an organization (or id): its own, else the platform's."""
    org_id = getattr(org, "pk", org) or 0
    found = _brands([0, org_id])
    return found[org_id] or found[0] or BrandView()


def _member_org_ids(user, roles=None) -> set[int]:
    key = f"paas.brand.orgs.{user.pk}.{'studio' if roles else 'any'}"
    cached = cache.get(key)
    if cached is not None:
        return set(cached)
    membership = apps.get_model(authz.MEMBERSHIP_MODEL)
    rows = membership.objects.filter(user=user)
    if roles:
        rows = rows.filter(role__in=roles, project__isnull=True)
    ids = set()
    for org_id, project_org_id in rows.values_list("org_id", "project__org_id"):
        ids.add(org_id or project_org_id)
    ids.discard(None)
    cache.set(key, sorted(ids), CACHE_SECONDS)
    return ids


def brand_for_user(user, *, studio: bool = False) -> BrandView:
    """The brand a signed-in person sees outside a workspace: the one org they belong to (in the
    studio: administer), else the platform's."""
    if not authz.is_active_user(user):
        return platform_brand()
    orgs = _member_org_ids(user, ORG_STUDIO_ROLES if studio else None)
    return brand_for_org(orgs.pop()) if len(orgs) == 1 else platform_brand()


def brand_for_request(request) -> BrandView:
    """The brand of a page (kept on the request: one lookup per request)."""
    cached = getattr(request, "_paas_brand", None)
    if cached is not None:
        return cached
    user = getattr(request, "user", None)
    workspace = getattr(request, "workspace", None)
    if user is None or not getattr(user, "is_authenticated", False):
        brand = platform_brand()
    elif request.path.startswith("/studio/"):
        brand = brand_for_user(user, studio=True)
    elif workspace is not None:
        brand = brand_for_org(workspace.org_id)
    else:
        brand = brand_for_user(user)
    request._paas_brand = brand
    return brand


def brand(request) -> dict:
    """Context processor: ``brand`` on every page rendered with a request."""
    return {"brand": brand_for_request(request)}


def brand_in_effect(user, *, org_id=None) -> BrandView:
    """``GET /api/v1/branding/``: the brand the user sees (of ``org_id`` when they belong to it; an
    operator may name any org)."""
    if org_id is not None:
        if authz.is_operator(user) or int(org_id) in _member_org_ids(user):
            return brand_for_org(int(org_id))
        raise NotFound("No such organization.")
    return brand_for_user(user)


# --- selectors for operators ------------------------------------------------------------------------


def brand_list_for(user):
    """Every brand (the platform's and the orgs'), for operators; nobody else."""
    if not authz.is_operator(user):
        return Brand.objects.none()
    return Brand.objects.select_related("org")


def brand_get_for(user, *, org_id=None) -> Brand:
    """The stored brand of an org (None: the platform's); NotFound if none or not an operator."""
    row = brand_list_for(user).filter(org_id=org_id) if org_id else brand_list_for(user).filter(org=None)
    found = row.first()
    if found is None:
        raise NotFound("No such brand.")
    return found


# --- services ---------------------------------------------------------------------------------------

_UNSET = object()


@transaction.atomic
def brand_update(*, actor, org=None, logo=_UNSET, favicon=_UNSET, **values) -> Brand:
    """Create or change the brand of ``org`` (None: the platform's). ``values`` are the text and colour
    fields (those not given keep their value); ``logo``/``favicon``: image bytes, or None/b"" to remove.
    Operators only; audited on the platform's chain."""
    authz.require_operator(actor, message="Only platform operators set the branding.")
    unknown = set(values) - {*COLOUR_FIELDS, *TEXT_FIELDS}
    if unknown:
        raise ValidationFailed(
            "Unknown branding fields.", fields={name: "Unknown field." for name in unknown}
        )
    if org is not None:
        tenant = apps.get_model(authz.TENANT_MODEL)
        org = tenant.objects.filter(pk=getattr(org, "pk", org)).first()
        if org is None:
            raise ValidationFailed("No such organization.", fields={"org": "No such organization."})
    stored = Brand.objects.filter(org=org) if org is not None else Brand.objects.filter(org__isnull=True)
    row = stored.select_for_update().first()
    created = row is None
    current = BrandView.of(row)
    merged = {name: getattr(current, name) for name in (*COLOUR_FIELDS, *TEXT_FIELDS)}
    for name, value in values.items():
        value = "" if value is None else str(value)
        merged[name] = value.strip().lower() if name in COLOUR_FIELDS else value.strip()
    errors = check_fields(merged)
    images = {}
    for kind, data in (("logo", logo), ("favicon", favicon)):
        if data is _UNSET:
            continue
        if not data:
            images[kind] = (None, "", "")
            continue
        try:
            content_type, digest = check_image(kind, bytes(data))
        except ValidationFailed as exc:
            errors.update({k: v[0] for k, v in exc.fields.items()})
            continue
        images[kind] = (bytes(data), content_type, digest)
    if errors:
        raise ValidationFailed("The branding is not valid.", fields=errors)
    if created:
        row = Brand(org=org)
    changes = apply_changes(row, merged)
    for kind, (data, content_type, digest) in images.items():
        if getattr(row, f"{kind}_digest") != digest:
            changes[kind] = [getattr(row, f"{kind}_digest") or None, digest or None]
        setattr(row, kind, data)
        setattr(row, f"{kind}_type", content_type)
        setattr(row, f"{kind}_digest", digest)
    if created or changes:
        try:
            with transaction.atomic():
                row.save()
        except IntegrityError:  # the same brand created at the same moment by someone else
            raise Conflict("This brand was just created by someone else: load it again and retry.") from None
        _forget(row.org_id)
        audit_log(
            actor=actor,
            action="brand.create" if created else "brand.update",
            target=row,
            details={"org": org.pk if org else None, "changes": changes},
        )
    return row


@transaction.atomic
def brand_delete(*, actor, brand: Brand) -> None:
    """Remove an org's brand (its people see the platform's again) or reset the platform's to the
    defaults. Operators only; audited."""
    authz.require_operator(actor, message="Only platform operators set the branding.")
    details = {"org": brand.org_id, "product_name": brand.product_name}
    audit_log(actor=actor, action="brand.delete", target=brand, details=details)
    brand.delete()
    _forget(details["org"])


def email_parts(org=None) -> tuple[BrandView, str | None, str]:
    """For ``paas.mail.send_email``: the brand, the From header and the footer appended to the body."""
    view = brand_for_org(org)
    footer_lines = [line for line in (view.email_footer, view.support_contact) if line]
    if view.support_contact:
        footer_lines[-1] = f"Support: {view.support_contact}"
    footer = "\n\n-- \n" + "\n".join([view.product_name, *footer_lines])
    return view, view.email_sender, footer
