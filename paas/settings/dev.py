"""Development and demo profile: the embedded default (SQLite under var/, console email)."""

import secrets

from .base import *  # noqa: F403
from .base import VAR_DIR, env

DEBUG = True


def _dev_secret_key() -> str:
    """Generate the development secret once and keep it in var/ so sessions survive restarts."""
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = env("SECRET_KEY") or _dev_secret_key()
