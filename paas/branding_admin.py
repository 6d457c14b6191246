"""The studio's branding page (operators): the platform's brand and the per-org brands, written through
``paas.branding.brand_update`` (which checks colours, contrast, images and the sender; audited)."""

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.utils.html import format_html

from paas import authz
from paas.admin import OperatorOnlyAdmin
from paas.brand_checks import COLOUR_FIELDS, TEXT_FIELDS
from paas.branding import brand_delete, brand_list_for, brand_update
from paas.models import Brand

COLOUR_HELP = (
    "As #rrggbb. Text and links on the background, and button text on the primary colour, need a "
    "contrast of at least 4.5:1 (WCAG AA)."
)


class BrandForm(forms.ModelForm):
    logo_file = forms.FileField(
        label="Logo",
        required=False,
        help_text="PNG, JPEG, WebP or ICO, at most 256 KiB (SVG is not accepted). Leave empty to keep.",
    )
    remove_logo = forms.BooleanField(label="Remove the logo", required=False)
    favicon_file = forms.FileField(
        label="Favicon",
        required=False,
        help_text="PNG, JPEG, WebP or ICO, at most 64 KiB. Leave empty to keep.",
    )
    remove_favicon = forms.BooleanField(label="Remove the favicon", required=False)

    class Meta:
        model = Brand
        fields = ["org", *TEXT_FIELDS, *COLOUR_FIELDS]
        help_texts = {name: COLOUR_HELP for name in COLOUR_FIELDS} | {
            "email_from_address": "The From address of every email (e.g. no-reply@example.com).",
            "email_footer": "Appended to every email, with the support contact.",
            "support_url": "An http(s) address shown on every page and email.",
        }
        widgets = {"email_footer": forms.Textarea(attrs={"rows": 3})}


def _brands_for(user) -> QuerySet:
    return brand_list_for(user)


@admin.register(Brand)
class BrandAdmin(OperatorOnlyAdmin):
    """White-label branding: the platform's brand (no organization) and an organization's own (a
    reseller's customers see the reseller's brand)."""

    selector = staticmethod(_brands_for)
    form = BrandForm
    list_display = ["product_name", "org", "studio_name", "color_primary", "color_background", "updated_at"]
    list_select_related = ["org"]
    readonly_fields = ["logo_preview", "favicon_preview"]
    fieldsets = [
        (None, {"fields": ["org", "product_name", "portal_name", "studio_name"]}),
        ("Colours", {"fields": list(COLOUR_FIELDS)}),
        (
            "Images",
            {
                "fields": [
                    "logo_preview",
                    "logo_file",
                    "remove_logo",
                    "favicon_preview",
                    "favicon_file",
                    "remove_favicon",
                ]
            },
        ),
        (
            "Support and email",
            {
                "fields": [
                    "support_email",
                    "support_url",
                    "email_from_name",
                    "email_from_address",
                    "email_footer",
                ]
            },
        ),
    ]

    def has_change_permission(self, request, obj=None) -> bool:
        return authz.is_operator(request.user)

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "org"] if obj is not None else self.readonly_fields

    @admin.display(description="Current logo")
    def logo_preview(self, obj):
        url = obj.pk and obj.logo_digest and f"/branding/{obj.pk}/logo/{obj.logo_digest}/"
        return (
            format_html('<img src="{}" alt="The current logo" style="max-height:3em">', url) if url else "-"
        )

    @admin.display(description="Current favicon")
    def favicon_preview(self, obj):
        url = obj.pk and obj.favicon_digest and f"/branding/{obj.pk}/favicon/{obj.favicon_digest}/"
        return (
            format_html('<img src="{}" alt="The current favicon" style="max-height:2em">', url)
            if url
            else "-"
        )

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        images = {}
        for kind in ("logo", "favicon"):
            upload = data.get(f"{kind}_file")
            if upload:
                images[kind] = upload.read(256 * 1024 + 1)  # past the limit is refused by the service
            elif data.get(f"remove_{kind}"):
                images[kind] = None
        org = self.fresh(obj).org if change else data.get("org")
        row = brand_update(
            actor=request.user,
            org=org,
            **images,
            **{name: data.get(name, "") for name in (*TEXT_FIELDS, *COLOUR_FIELDS)},
        )
        obj.pk = row.pk

    def service_delete(self, request, obj) -> None:
        brand_delete(actor=request.user, brand=obj)
