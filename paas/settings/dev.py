"""Development and demo profile: the embedded default (SQLite under var/, console email)."""

import secrets

from .base import *  # noqa: F403
from .base import VAR_DIR, env, env_bool, env_list

DEBUG = True
# The demo's local cluster listens on 127.0.0.1 (production keeps loopback refused).
PAAS_OUTBOUND_ALLOW_LOOPBACK = env_bool("PAAS_OUTBOUND_ALLOW_LOOPBACK", True)


def _dev_secret_key() -> str:
    """Generate the development secret once and keep it in var/ so sessions survive restarts."""
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


def _dev_encryption_keys() -> list[str]:
    """Generate a development encryption key once into var/ (production must set its own)."""
    path = VAR_DIR / "encryption_keys"
    if not path.exists():
        from cryptography.fernet import Fernet

        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(Fernet.generate_key().decode())
        path.chmod(0o600)
    return [key.strip() for key in path.read_text().split(",") if key.strip()]


def _dev_checkpoint_key() -> str:
    """Generate the development audit-checkpoint signing key once into var/ (production sets its own)."""
    path = VAR_DIR / "audit_checkpoint_key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = env("SECRET_KEY") or _dev_secret_key()
PAAS_ENCRYPTION_KEYS = env_list("PAAS_ENCRYPTION_KEYS") or _dev_encryption_keys()
PAAS_AUDIT_CHECKPOINT_KEY = env("PAAS_AUDIT_CHECKPOINT_KEY") or _dev_checkpoint_key()
