"""Development and demo profile: the embedded default (the project's own PostgreSQL server under
var/postgres, started on first use and reused; console email). ``manage.py`` run by hand finds the same
database as ``make run``; DATABASE_URL points anywhere else."""

import secrets

from .base import *  # noqa: F403
from .base import DATABASES, VAR_DIR, database_options, env, env_bool, env_list, require_postgresql

DEBUG = True

if not DATABASES:
    import dj_database_url

    from paas import embedded_postgres

    DATABASES = {
        "default": database_options(
            dj_database_url.parse(embedded_postgres.ensure_project_database(VAR_DIR), conn_max_age=60)
        )
    }
require_postgresql(DATABASES, "Unset DATABASE_URL for the project's own server, or name a PostgreSQL one.")
# The demo's local cluster listens on 127.0.0.1 (production keeps loopback refused).
PAAS_OUTBOUND_ALLOW_LOOPBACK = env_bool("PAAS_OUTBOUND_ALLOW_LOOPBACK", True)


def _generated_once(name: str, make) -> str:
    """The text of ``var/<name>``, made by ``make()`` the first time (mode 0600): development secrets
    survive restarts; production sets its own through the environment."""
    path = VAR_DIR / name
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


def _dev_secret_key() -> str:
    return _generated_once("secret_key", lambda: secrets.token_urlsafe(50))


def _dev_encryption_keys() -> list[str]:
    from cryptography.fernet import Fernet

    text = _generated_once("encryption_keys", lambda: Fernet.generate_key().decode())
    return [key.strip() for key in text.split(",") if key.strip()]


def _dev_checkpoint_key() -> str:
    return _generated_once("audit_checkpoint_key", lambda: secrets.token_urlsafe(48))


SECRET_KEY = env("SECRET_KEY") or _dev_secret_key()
PAAS_ENCRYPTION_KEYS = env_list("PAAS_ENCRYPTION_KEYS") or _dev_encryption_keys()
PAAS_AUDIT_CHECKPOINT_KEY = env("PAAS_AUDIT_CHECKPOINT_KEY") or _dev_checkpoint_key()

PAAS_SERVE_STATIC = True  # uvicorn serves the static files through Django here (paas/asgi.py)
