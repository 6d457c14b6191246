// The security page: once django-otp-webauthn registered a passkey, show the page again (the list).
document.addEventListener("otp_webauthn.register_complete", () => window.location.reload());
