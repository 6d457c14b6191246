"""Production profile: secrets required from the environment, HTTPS everywhere, PostgreSQL."""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import DATABASES, env, env_bool, env_int, require_postgresql

SECRET_KEY = env("SECRET_KEY")
if not SECRET_KEY or len(SECRET_KEY) < 50:
    raise ImproperlyConfigured("SECRET_KEY must be set (at least 50 random characters) in production.")

from .base import PAAS_ENCRYPTION_KEYS  # noqa: E402

if not PAAS_ENCRYPTION_KEYS:
    raise ImproperlyConfigured(
        "PAAS_ENCRYPTION_KEYS must be set in production (comma-separated Fernet keys, newest first)."
    )

from .base import PAAS_AUDIT_CHECKPOINT_KEY  # noqa: E402

if len(PAAS_AUDIT_CHECKPOINT_KEY) < 32:
    raise ImproperlyConfigured(
        "PAAS_AUDIT_CHECKPOINT_KEY must be set in production (at least 32 random characters): it signs "
        "the audit chain-head checkpoints kept in PAAS_AUDIT_CHECKPOINT_DIR."
    )

DEBUG = False
# One JSON object per line on stderr (PAAS_LOG_FORMAT=text for a line of text per record).
from .base import logging_config  # noqa: E402

PAAS_LOG_FORMAT = env("PAAS_LOG_FORMAT", "json")
LOGGING = logging_config(PAAS_LOG_FORMAT)
# Operators run the platform: their accounts need a second factor (their provider's, or ours: MFA).
PAAS_MFA_REQUIRED_FOR_OPERATORS = env_bool("PAAS_MFA_REQUIRED_FOR_OPERATORS", True)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY", True) else None
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_SECURE = True
X_FRAME_OPTIONS = "DENY"

require_postgresql(DATABASES, "Set DATABASE_URL=postgres://user:pass@host:port/db.")
