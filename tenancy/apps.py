from django.apps import AppConfig


class TenancyConfig(AppConfig):
    """Tenancy sends ``tenancy.signals``, which the higher layers (catalog, instances) connect to in their
    ``ready``; its one receiver of its own audits passkeys registered by django-otp-webauthn's views."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "tenancy"
    verbose_name = "Tenancy"

    def ready(self) -> None:
        from django.db.models.signals import post_save
        from django_otp_webauthn.models import WebAuthnCredential

        from tenancy.mfa import passkey_registered

        post_save.connect(
            passkey_registered, sender=WebAuthnCredential, dispatch_uid="tenancy.passkey_registered"
        )
