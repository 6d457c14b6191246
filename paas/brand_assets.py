"""The brand's images, served by us (never from a user-given address), and the 500 page.

An image is addressed by its brand and the SHA-256 of its bytes, so it is cached for good and a new
upload gets a new address. It is answered with the type found from its magic bytes when it was
saved, ``X-Content-Type-Options: nosniff`` and a Content-Security-Policy that allows nothing (an image
opened on its own can run nothing, whatever it holds).
"""

import logging

from django.http import Http404, HttpResponse, HttpResponseServerError
from django.template import loader
from django.views.decorators.http import require_safe

from paas.models import Brand

log = logging.getLogger(__name__)

IMAGE_CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox"


@require_safe
def brand_image(request, brand_id: int, kind: str, digest: str):
    if kind not in ("logo", "favicon"):
        raise Http404
    row = (
        Brand.objects.filter(pk=brand_id, **{f"{kind}_digest": digest})
        .exclude(**{f"{kind}_digest": ""})
        .values_list(kind, f"{kind}_type")
        .first()
    )
    if row is None or not row[0]:
        raise Http404
    data, content_type = row
    response = HttpResponse(bytes(data), content_type=content_type)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = IMAGE_CSP
    response["Cross-Origin-Resource-Policy"] = "same-origin"
    response["Content-Disposition"] = f'inline; filename="{kind}"'
    response["Cache-Control"] = "public, max-age=31536000, immutable"
    response["ETag"] = f'"{digest}"'
    return response


def server_error(request, *args, **kwargs):
    """handler500: the 500 page in the platform's brand, without the request's context (whatever
    failed may be what the context processors need); the defaults when even the brand cannot be read."""
    from paas.branding import BrandView, platform_brand

    try:
        brand = platform_brand()
    except Exception:  # the database may be what failed
        log.warning("the 500 page could not read the brand", exc_info=True)
        brand = BrandView()
    try:
        return HttpResponseServerError(loader.get_template("500.html").render({"brand": brand}))
    except Exception:
        log.exception("the 500 page failed to render")
        return HttpResponseServerError("Server error.", content_type="text/plain; charset=utf-8")
