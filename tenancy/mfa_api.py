"""``/api/v1/mfa/``: the signed-in user's own MFA devices, the one-time-code step of a session, and an
org admin's reset of a member's devices; ``/api/v1/account/email/``: the address and its verification.

Devices are changed from a signed-in session only (a token cannot remove the second factor it stands
beside); keys and recovery codes are answered once, when made.
"""

import django_otp
from django.urls import path
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from paas import mfa_policy
from paas.api.fields import ScopedPrimaryKeyRelatedField
from paas.errors import Forbidden
from tenancy import email_verification, mfa
from tenancy.selectors import user_list_for


class DeviceSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    confirmed = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True)


class StatusSerializer(serializers.Serializer):
    required = serializers.BooleanField(help_text="Whether MFA is required for you (your org or role).")
    session_verified = serializers.BooleanField(help_text="Whether this session passed the code step.")
    recovery_codes_left = serializers.IntegerField(allow_null=True)
    devices = DeviceSerializer(many=True)
    passkeys = DeviceSerializer(
        many=True, help_text="Registered in a browser (WebAuthn) on /account/security/; removable here."
    )


class EnrolSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=64, required=False, allow_blank=True)


class EnrolledSerializer(DeviceSerializer):
    secret = serializers.CharField(help_text="The key, base32, for typing into the app. Shown once.")
    config_url = serializers.CharField(help_text="The otpauth:// address (what the QR code holds).")
    qr_svg = serializers.CharField(help_text="The QR code as an SVG document.")


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(max_length=32)


class EmailTokenSerializer(serializers.Serializer):
    token = serializers.CharField(
        max_length=1000, help_text="The part of the link after /account/email/verify/."
    )


class CodesSerializer(serializers.Serializer):
    recovery_codes = serializers.ListField(child=serializers.CharField(), help_text="Shown once.")


class ResetSerializer(serializers.Serializer):
    user = ScopedPrimaryKeyRelatedField(selector=user_list_for)


def _session_only(request) -> None:
    if request.auth is not None:
        raise Forbidden("MFA devices are managed from a signed-in session, not with a token.")


def _validated(serializer_class, request) -> dict:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _status(request) -> dict:
    user = request.user
    return {
        "required": mfa_policy.mfa_required_for(user),
        "session_verified": request.auth is None and mfa_policy.session_verified(request._request.user),
        "recovery_codes_left": mfa.recovery_codes_left(user),
        "devices": DeviceSerializer(mfa.totp_devices(user), many=True).data,
        "passkeys": DeviceSerializer(mfa.passkeys(user), many=True).data,
    }


class MfaView(APIView):
    """Your MFA status and authenticator apps (TOTP)."""

    @extend_schema(responses=StatusSerializer)
    def get(self, request):
        return Response(_status(request))


class TotpEnrolView(APIView):
    """Add an authenticator app: answers its key once; confirm it with a code from the app."""

    @extend_schema(request=EnrolSerializer, responses={201: EnrolledSerializer})
    def post(self, request):
        _session_only(request)
        device = mfa.mfa_totp_begin(
            actor=request.user, name=_validated(EnrolSerializer, request).get("name", "")
        )
        data = DeviceSerializer(device).data | {
            "secret": mfa.secret_of(device),
            "config_url": device.config_url,
            "qr_svg": mfa.qr_svg(device),
        }
        return Response(data, status=status.HTTP_201_CREATED)


class TotpConfirmView(APIView):
    """Confirm an added app with its current code; the first app brings recovery codes (shown once).
    The session counts as verified afterwards."""

    @extend_schema(request=TokenSerializer, responses=CodesSerializer)
    def post(self, request, pk):
        _session_only(request)
        device = mfa.totp_device_for(request.user, pk)
        codes = mfa.mfa_totp_confirm(
            actor=request.user, device=device, token=_validated(TokenSerializer, request)["token"]
        )
        device.refresh_from_db()
        django_otp.login(request._request, device)
        return Response({"recovery_codes": codes})


class TotpDeviceView(APIView):
    """Remove one of your authenticator apps (the last one takes the recovery codes with it)."""

    @extend_schema(responses={204: None})
    def delete(self, request, pk):
        _session_only(request)
        mfa.mfa_device_delete(actor=request.user, device=mfa.totp_device_for(request.user, pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class PasskeyView(APIView):
    """Remove one of your passkeys (the last second factor takes the recovery codes with it)."""

    @extend_schema(responses={204: None})
    def delete(self, request, pk):
        _session_only(request)
        mfa.mfa_device_delete(actor=request.user, device=mfa.passkey_for(request.user, pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class RecoveryCodesView(APIView):
    """New recovery codes (the old ones stop working), shown once."""

    @extend_schema(request=None, responses={201: CodesSerializer})
    def post(self, request):
        _session_only(request)
        return Response({"recovery_codes": mfa.mfa_recovery_codes_create(actor=request.user)}, status=201)


class VerifyView(APIView):
    """The one-time-code step of this session (a code from the app or a recovery code)."""

    @extend_schema(request=TokenSerializer, responses=StatusSerializer)
    def post(self, request):
        _session_only(request)
        token = _validated(TokenSerializer, request)["token"]
        if mfa.mfa_verify(request=request._request, token=token) is None:
            raise Forbidden("That code is not right (or too many tries: wait a little).", code="mfa_invalid")
        return Response(_status(request))


class ResetView(APIView):
    """An org admin removes a member's MFA devices (a lost phone): they enrol again at next sign-in."""

    @extend_schema(
        request=ResetSerializer,
        responses=inline_serializer("MfaReset", {"devices": serializers.IntegerField()}),
    )
    def post(self, request):
        serializer = ResetSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        return Response(
            {"devices": mfa.mfa_reset(actor=request.user, user=serializer.validated_data["user"])}
        )


class EmailStatusSerializer(serializers.Serializer):
    email = serializers.EmailField()
    email_verified = serializers.BooleanField()
    pending_email = serializers.EmailField(allow_blank=True)


class EmailChangeSerializer(serializers.Serializer):
    email = serializers.CharField(max_length=254)


def _email_status(user) -> dict:
    return {"email": user.email, "email_verified": user.email_verified, "pending_email": user.pending_email}


class EmailView(APIView):
    """Your address: GET its state; POST ``{"email": ...}`` to change it (a link goes to the new address;
    the current one stays until it is opened)."""

    @extend_schema(responses=EmailStatusSerializer)
    def get(self, request):
        return Response(_email_status(request.user))

    @extend_schema(request=EmailChangeSerializer, responses={202: EmailStatusSerializer})
    def post(self, request):
        _session_only(request)
        email_verification.email_change_request(
            actor=request.user, email=_validated(EmailChangeSerializer, request)["email"]
        )
        return Response(_email_status(request.user), status=status.HTTP_202_ACCEPTED)


class EmailResendView(APIView):
    """Send the verification link again (at most once a minute)."""

    @extend_schema(request=None, responses={202: EmailStatusSerializer})
    def post(self, request):
        email_verification.email_verification_send(user=request.user)
        return Response(_email_status(request.user), status=status.HTTP_202_ACCEPTED)


class EmailVerifyView(APIView):
    """Apply a verification link's token (the part after ``/account/email/verify/``)."""

    permission_classes = []  # the signed token is the proof

    @extend_schema(request=EmailTokenSerializer, responses=EmailStatusSerializer)
    def post(self, request):
        token = _validated(EmailTokenSerializer, request)["token"]  # (any body shape: a 400, never a 500)
        return Response(_email_status(email_verification.email_verify(token=token)))


# Included by tenancy/api/urls.py under /api/v1/.
urlpatterns = [
    path("mfa/", MfaView.as_view(), name="mfa"),
    path("mfa/totp/", TotpEnrolView.as_view(), name="mfa-totp"),
    path("mfa/totp/<int:pk>/", TotpDeviceView.as_view(), name="mfa-totp-device"),
    path("mfa/totp/<int:pk>/confirm/", TotpConfirmView.as_view(), name="mfa-totp-confirm"),
    path("mfa/passkeys/<int:pk>/", PasskeyView.as_view(), name="mfa-passkey"),
    path("mfa/recovery-codes/", RecoveryCodesView.as_view(), name="mfa-recovery-codes"),
    path("mfa/verify/", VerifyView.as_view(), name="mfa-verify"),
    path("mfa/reset/", ResetView.as_view(), name="mfa-reset"),
    path("account/email/", EmailView.as_view(), name="account-email"),
    path("account/email/resend/", EmailResendView.as_view(), name="account-email-resend"),
    path("account/email/verify/", EmailVerifyView.as_view(), name="account-email-verify"),
]
