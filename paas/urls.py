from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from paas import brand_assets, probes
from paas.api import branding as branding_api
from paas.api import views as core_api
from paas.api.audit_settings import AuditSettingsView
from paas.api.audit_sinks import AuditSinkViewSet
from paas.api.org_keys import OrgKeyViewSet

router = SimpleRouter()
router.register("tokens", core_api.ApiTokenViewSet, basename="api-token")
router.register("audit-sinks", AuditSinkViewSet, basename="audit-sink")
router.register("org-keys", OrgKeyViewSet, basename="org-key")

api_v1 = [
    *router.urls,
    path("audit-settings/", AuditSettingsView.as_view(), name="audit-settings"),
    path("branding/", branding_api.BrandingView.as_view(), name="branding"),
    path("branding/brands/", branding_api.BrandListView.as_view(), name="branding-list"),
    path("branding/orgs/<int:org_id>/", branding_api.OrgBrandView.as_view(), name="branding-org"),
    path("", include("tenancy.api.urls")),
    path("", include("inventory.api.urls")),
    path("", include("catalog.api.urls")),
    path("", include("instances.api.urls")),
    path("", include("billing.api.urls")),
]

urlpatterns = [
    path("studio/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("healthz", probes.liveness, name="healthz"),
    path("readyz", probes.readiness, name="readyz"),
    path("branding/<int:brand_id>/<str:kind>/<str:digest>/", brand_assets.brand_image, name="brand-image"),
    # The developer hub (portal): sign-in/out and single sign-on, then the pages.
    path("", include("tenancy.sso_urls")),
    # Passkeys: the WebAuthn ceremonies of django-otp-webauthn (second factor only; tenancy/mfa.py).
    path("webauthn/", include("django_otp_webauthn.urls")),
    path("", include("instances.urls")),
    path("", include("catalog.urls")),
    path("", include("billing.urls")),
    path("", include("tenancy.urls")),
]

handler500 = "paas.brand_assets.server_error"
