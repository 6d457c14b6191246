"""Settings shared by every profile, read from the environment.

Profiles: ``paas.settings.dev`` (default for ``manage.py``), ``paas.settings.test`` (the suite) and
``paas.settings.production``. Every value an operator may need to change comes from an environment
variable; see the README's configuration table.
"""

import os
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(os.environ.get("PAAS_VAR_DIR", BASE_DIR / "var"))


def env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def env_bool(name: str, default: bool = False) -> bool:
    value = env(name)
    if value is None:
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {value!r}")


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in (env(name, default) or "").split(",") if item.strip()]


def env_int(name: str, default: int) -> int:
    value = env(name)
    try:
        return int(value) if value is not None else default
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from exc


DEBUG = False
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "paas.apps.StudioAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "django_q",
    "mozilla_django_oidc",
    "axes",
    # MFA (tenancy/mfa.py): TOTP authenticator apps and one-time recovery codes.
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "django_otp_webauthn",  # passkeys (WebAuthn) as a second factor
    "paas",
    "tenancy",
    "inventory",
    "catalog",
    "instances",
    "billing",
]

MIDDLEWARE = [
    # First: answers /metrics (its own bearer token; nothing below sees a scrape) and counts the rest.
    "paas.metrics_views.RequestMetricsMiddleware",
    # Then /healthz and /readyz, answered before the host check, the HTTPS redirect and sessions.
    "paas.probes.ProbeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "paas.middleware.RequestContextMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # request.user.is_verified(): the session passed the one-time-code step (django-otp).
    "django_otp.middleware.OTPMiddleware",
    # Unverified email, MFA to enrol or a session still to verify: the right page, or a 403 in the API.
    "tenancy.account_gate.AccountGateMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a password page's lockout into the "sign-in paused" page.
    "paas.lockout.LockoutMiddleware",
]

ROOT_URLCONF = "paas.urls"
WSGI_APPLICATION = "paas.wsgi.application"
ASGI_APPLICATION = "paas.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "tenancy.sso.template_context",
                "tenancy.portal.portal",
                "paas.branding.brand",
                "tenancy.support_context.support_banner",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------
# PostgreSQL only, in every profile. DATABASE_URL names the server; without it the dev profile uses the
# project's own server under var/ (paas/embedded_postgres.py), the suite's runner provisions one, and
# production refuses to start.
DATABASE_URL = env("DATABASE_URL")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)} if DATABASE_URL else {}
# PostgreSQL's JIT compiles the plan of any query it estimates as costly; for this platform's queries
# (the billing totals and dashboards, aggregations over an org's few thousand rows) the compiling took
# longer than the query: 0.3 s against 0.15 s measured (tests/benchmarks/bench_billing.py). Off for
# our connections unless DATABASE_URL's own options say otherwise.


def serves_asgi() -> bool:
    """Is this process the ASGI server (``manage.py serve``, or uvicorn started on its own)? Only it uses
    psycopg's pool: a command has one thread and needs none (and a pool turns "database does not
    exist" into a timeout), and ``manage.py qcluster`` (django-q2) forks its workers after using the
    database, so a pool's connections would be shared by several processes, each reading the others'
    results. The suite's profile turns it on: the suite serves the ASGI server in its own process."""
    return sys.argv[1:2] == ["serve"] or Path(sys.argv[0]).name in ("uvicorn", "gunicorn")


def database_options(database: dict, *, pool: bool | None = None) -> dict:
    """Our connection options: JIT off (above) and, in the ASGI server, psycopg's connection pool
    instead of persistent connections (a persistent connection belongs to a thread, and the ASGI
    server runs each request's synchronous code on a thread of its own). ``PAAS_DB_POOL_MAX`` bounds
    a process's connections (``0`` turns the pool off); ``PAAS_DB_POOL_TIMEOUT`` is how many seconds a
    request waits for one of them before it fails."""
    options = database.setdefault("OPTIONS", {})
    options.setdefault("options", "-c jit=off")
    # Parameters bound by the server and statements prepared once a connection has run them
    # ``PAAS_DB_PREPARE_THRESHOLD`` times (``0``: off, Django's default of values interpolated into the
    # text). PostgreSQL then plans a query shape once per connection instead of on every execution.
    prepare = env_int("PAAS_DB_PREPARE_THRESHOLD", 2)
    if prepare > 0:
        options.setdefault("server_side_binding", True)
        options.setdefault("prepare_threshold", prepare)
    pool_max = env_int("PAAS_DB_POOL_MAX", 16)
    if pool_max > 0 and (serves_asgi() if pool is None else pool):
        options.setdefault(
            "pool", {"min_size": 1, "max_size": pool_max, "timeout": env_int("PAAS_DB_POOL_TIMEOUT", 10)}
        )
        database["CONN_MAX_AGE"] = 0  # the pool keeps the connections; Django returns them after each request
    return database


if DATABASES:
    database_options(DATABASES["default"])
# How many statements a connection keeps prepared, and how many it counts towards the threshold (one
# LRU each, psycopg's ``prepared_max``; set on each connection by paas.apps). Its default of 100 is
# too few here: every savepoint has a name of its own, so each atomic block adds two one-off
# statements, and the pool hands its connections out in turn, so the statements of a launch come back
# to a connection only after many others had pushed them out and they were never prepared.
PAAS_DB_PREPARED_MAX = env_int("PAAS_DB_PREPARED_MAX", 500)


def require_postgresql(databases: dict, hint: str) -> None:
    engine = databases.get("default", {}).get("ENGINE")
    if engine != "django.db.backends.postgresql":
        got = engine or "no DATABASE_URL"
        raise ImproperlyConfigured(f"The platform runs on PostgreSQL only (got {got}). {hint}")


DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Per-process cache (catalog pages keyed by the catalog generation: never stale across processes).
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "paas",
        "OPTIONS": {"MAX_ENTRIES": 5000},
    }
}

# --- Auth -----------------------------------------------------------------------------------------
AUTH_USER_MODEL = "tenancy.User"
AUTHENTICATION_BACKENDS = [
    # First: refuses every sign-in of a locked-out username from that address (paas/lockout.py).
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    # Single sign-on; inert (answers no one) unless OIDC_ENABLED, so it never gets in a password's way.
    "tenancy.sso.OidcBackend",
    "guardian.backends.ObjectPermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Login throttling (django-axes; paas/lockout.py): after LOGIN_FAILURE_LIMIT failed sign-ins of one
# username from one address, that pair is locked out for LOGIN_LOCKOUT_MINUTES, even with the right
# password; failed API token authentications count per address. Attempts during a lockout do not extend
# it. Client addresses are REMOTE_ADDR (set AXES_IPWARE_* behind a reverse proxy).
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "paas.lockout.lockout_response"
AXES_ENABLE_ADMIN = False  # lockouts are lifted with `manage.py axes_reset`, not browsed in the studio
AXES_VERBOSE = False
AXES_DISABLE_ACCESS_LOG = True  # failures are kept (AccessAttempt), successful sign-ins are not logged
# axes looks for its own middleware class; ours is a subclass (paas.lockout.LockoutMiddleware).
SILENCED_SYSTEM_CHECKS = ["axes.W002"]
LOGIN_URL = "/login/"
# MFA (tenancy/mfa.py, paas/mfa_policy.py): operators must use it when this is on (production), as the
# members of an org that requires it (Organization.mfa_required); IdP users sign in at their provider.
PAAS_MFA_REQUIRED_FOR_OPERATORS = env_bool("PAAS_MFA_REQUIRED_FOR_OPERATORS", False)
OTP_TOTP_ISSUER = env("PAAS_MFA_ISSUER", "GPU PaaS")
# Email verification links (tenancy/email_verification.py) are valid this long.
PAAS_EMAIL_VERIFICATION_HOURS = env_int("PAAS_EMAIL_VERIFICATION_HOURS", 48)
LOGIN_REDIRECT_URL = "/"
ANONYMOUS_USER_NAME = None  # guardian: no anonymous user row; anonymous requests have no object perms

# --- Internationalisation ---------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Where collectstatic puts the static files (the image collects them at build time into /app/static).
STATIC_ROOT = Path(env("PAAS_STATIC_ROOT") or VAR_DIR / "static")

# --- Email (invitations) -----------------------------------------------------------------------------
EMAIL_BACKEND = env("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "GPU PaaS <no-reply@localhost>")
# The absolute base URL used in links that leave the platform (invitation emails).
PAAS_BASE_URL = env("PAAS_BASE_URL", "http://127.0.0.1:8000")
# Passkeys (django-otp-webauthn): bound to the host of PAAS_BASE_URL; browsers refuse an IP address, so a
# dev address like http://127.0.0.1:8000 gives passkeys on http://localhost:8000. A second factor after the
# password only, never a password-less sign-in.
_base = urlsplit(PAAS_BASE_URL)
_host = _base.hostname or "localhost"
if _host.replace(".", "").isdigit() or ":" in _host:
    _host = "localhost"
OTP_WEBAUTHN_RP_ID = env("PAAS_WEBAUTHN_RP_ID", "") or _host
OTP_WEBAUTHN_RP_NAME = env("PAAS_WEBAUTHN_RP_NAME", "GPU PaaS")
OTP_WEBAUTHN_ALLOWED_ORIGINS = env_list("PAAS_WEBAUTHN_ORIGINS") or [
    f"{_base.scheme}://{_host}" + (f":{_base.port}" if _base.port else "")
]
OTP_WEBAUTHN_ALLOW_PASSWORDLESS_LOGIN = False
INVITATION_TTL_HOURS = env_int("INVITATION_TTL_HOURS", 72)
# The kubectl proxy (instances/kubeproxy): where downloaded kubeconfigs point (default: PAAS_BASE_URL),
# the CA a private https address needs (embedded into the kubeconfig), and a credential's lifetime.
PAAS_KUBE_PROXY_URL = env("PAAS_KUBE_PROXY_URL", "")
PAAS_KUBE_PROXY_CA_FILE = env("PAAS_KUBE_PROXY_CA_FILE", "")
# The certificate and key `manage.py serve --tls-port` serves HTTPS with (where no ingress ends TLS).
PAAS_TLS_CERT_FILE = env("PAAS_TLS_CERT_FILE", "")
PAAS_TLS_KEY_FILE = env("PAAS_TLS_KEY_FILE", "")
PAAS_KUBECONFIG_TTL_MINUTES = env_int("PAAS_KUBECONFIG_TTL_MINUTES", 60)
# The ASGI application (paas/asgi.py): applications mounted at a path prefix outside Django's request
# handling, Channels' WebSocket routes, and what runs at the server's shutdown. Dotted paths, so that
# the project's module imports no app.
PAAS_ASGI_MOUNTS = [("/k8s/", "instances.kubeproxy.app.application")]
PAAS_WEBSOCKET_ROUTES = "instances.shell.routing.websocket_urlpatterns"
PAAS_ASGI_SHUTDOWN = [
    "instances.kubeproxy.auditing.shutdown",
    "instances.kubeproxy.upstream.close_all",
    "paas.metrics.shutdown",
]
# The kubectl proxy's audit (instances/kubeproxy/auditing.py): each server process chains its pending
# requests into the trails this often while they come in (0: only the schedule does); a write whose
# process died before its response was recorded is chained without a status after the grace.
PAAS_KUBECTL_AUDIT_FLUSH_SECONDS = float(env("PAAS_KUBECTL_AUDIT_FLUSH_SECONDS", "1.0"))
PAAS_KUBECTL_AUDIT_GRACE_SECONDS = env_int("PAAS_KUBECTL_AUDIT_GRACE_SECONDS", 600)
# Django serves the static files itself (dev and the suite; production puts them behind its web tier).
PAAS_SERVE_STATIC = env_bool("PAAS_SERVE_STATIC", False)
# Invitation emails sent in the last hour: at most this many per inviting person and per organization.
INVITATIONS_PER_HOUR_PER_ACTOR = env_int("INVITATIONS_PER_HOUR_PER_ACTOR", 20)
INVITATIONS_PER_HOUR_PER_ORG = env_int("INVITATIONS_PER_HOUR_PER_ORG", 100)

# --- Single sign-on (mozilla-django-oidc: authorization code flow with PKCE; see tenancy/sso.py) -------
# Either OIDC_OP_DISCOVERY_URL (the provider's .well-known/openid-configuration: endpoints are read from
# it on first use, cached for an hour, and never at start-up, so a provider that is down does not stop
# the platform) or the endpoints one by one; an endpoint set explicitly wins over the discovered one.
OIDC_RP_CLIENT_ID = env("OIDC_RP_CLIENT_ID", "")
OIDC_RP_CLIENT_SECRET = env("OIDC_RP_CLIENT_SECRET", "")
OIDC_RP_SIGN_ALGO = env("OIDC_RP_SIGN_ALGO", "RS256")
OIDC_OP_DISCOVERY_URL = env("OIDC_OP_DISCOVERY_URL", "")
OIDC_OP_AUTHORIZATION_ENDPOINT = env("OIDC_OP_AUTHORIZATION_ENDPOINT", "")
OIDC_OP_TOKEN_ENDPOINT = env("OIDC_OP_TOKEN_ENDPOINT", "")
OIDC_OP_USER_ENDPOINT = env("OIDC_OP_USER_ENDPOINT", "")
OIDC_OP_JWKS_ENDPOINT = env("OIDC_OP_JWKS_ENDPOINT", "")
OIDC_OP_LOGOUT_ENDPOINT = env("OIDC_OP_LOGOUT_ENDPOINT", "")
OIDC_RP_SCOPES = env("OIDC_RP_SCOPES", "openid email profile")
OIDC_TIMEOUT = env_int("OIDC_TIMEOUT", 10)  # seconds, for every call to the provider
OIDC_GROUPS_CLAIM = env("OIDC_GROUPS_CLAIM", "groups")
OIDC_DEFAULT_ORG = env("OIDC_DEFAULT_ORG", "")  # slug of the org that users without a mapped group join
OIDC_PROVIDER_NAME = env("OIDC_PROVIDER_NAME", "Single sign-on")  # label of the sign-in buttons
OIDC_API_TOKEN_CACHE_SECONDS = env_int("OIDC_API_TOKEN_CACHE_SECONDS", 60)  # bearer token → userinfo cache
OIDC_USE_PKCE = True
OIDC_STORE_ID_TOKEN = True  # the id_token_hint of the provider's logout
OIDC_OP_LOGOUT_URL_METHOD = "tenancy.sso.provider_logout_url"
OIDC_CALLBACK_CLASS = "tenancy.sso.CallbackView"
OIDC_AUTHENTICATE_CLASS = "tenancy.sso.AuthenticateView"
OIDC_ENABLED = bool(OIDC_RP_CLIENT_ID and (OIDC_OP_DISCOVERY_URL or OIDC_OP_AUTHORIZATION_ENDPOINT))
LOGIN_REDIRECT_URL_FAILURE = "/login/"

# --- REST API ---------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "paas.api.authentication.ApiTokenAuthentication",
        # The identity provider's access tokens (inert unless OIDC_ENABLED).
        "tenancy.api.authentication.OidcBearerAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "paas.api.pagination.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "paas.api.errors.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "paas.api.parsers.JSONParser",  # DRF's, with nesting bounded (a deep body is a 400, not a 500)
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "GPU PaaS API",
    "DESCRIPTION": "Organizations, workspaces, roles, quotas, audit trail and (later) the GPU catalog.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "SharingEnum": "catalog.models.Sharing",
        "SystemSharingEnum": "catalog.models.SystemSharing",
        "TenantRoleEnum": "tenancy.roles.TENANT_ROLE_CHOICES",
        "SourceEnum": "tenancy.models.User.Source",
        "RoleAssignmentSourceEnum": "tenancy.models.RoleAssignment.Source",
        "RunKindEnum": "instances.models.Run.Kind",
        "InstanceStateEnum": "instances.states.State",
        "RunOutcomeEnum": "instances.models.Run.Outcome",
        "RevisionOutcomeEnum": "instances.application_models.ApplicationRevision.Outcome",
    },
}
API_TOKEN_MAX_DAYS = env_int("API_TOKEN_MAX_DAYS", 365)

# --- Background work (django-q2, ORM broker) --------------------------------------------------------
# DESIGN: retry > timeout > the longest task; attempts bounded.
Q_CLUSTER = {
    # Agents' workers keep this name and set Q_CLUSTER_NAME=agent-<name> (django-q2's multi-queue).
    "name": "default",
    "orm": "default",
    "workers": env_int("PAAS_WORKERS", 2),
    "timeout": env_int("PAAS_TASK_TIMEOUT", 600),
    "retry": env_int("PAAS_TASK_RETRY", 720),
    "max_attempts": env_int("PAAS_TASK_MAX_ATTEMPTS", 3),
    "ack_failures": True,
    "catch_up": False,
    "save_limit": 1000,
    "poll": 0.5,
    "label": "Background tasks",
    # Per-queue overrides for agents' workers (Q_CLUSTER_NAME=agent-<name>); none needed so far, but
    # django-q2 requires the key whenever a worker runs under another queue name.
    "ALT_CLUSTERS": {},
}
# Runs (deploys, deletes, actions) one worker process executes at once, on threads (instances/run_pool.py):
# a deploy mostly waits on the API server. 1: inside the task, one at a time.
PAAS_RUN_CONCURRENCY = env_int("PAAS_RUN_CONCURRENCY", 8)
# A running deploy/delete whose worker has not written for this long is re-driven by the reconcile.
INSTANCE_RUN_STALE_SECONDS = env_int("INSTANCE_RUN_STALE_SECONDS", 300)
# How old the newest worker heartbeat may be before /readyz calls the worker down (and the process unready).
WORKER_HEARTBEAT_MAX_AGE_SECONDS = env_int("WORKER_HEARTBEAT_MAX_AGE_SECONDS", 180)

# Secrets at rest (kubeconfigs, cloud credentials): Fernet keys, newest first, comma-separated.
PAAS_ENCRYPTION_KEYS = env_list("PAAS_ENCRYPTION_KEYS")

# Audit chain-head checkpoints (paas/checkpoints.py): signed with this key, which only the application
# holds (HMAC-SHA256, at least 32 characters; required in production), and written to this directory,
# a store the database role cannot reach (in production a mounted volume shared by every replica; it
# is the only path the application writes, so the root file system may be read-only).
PAAS_AUDIT_CHECKPOINT_KEY = env("PAAS_AUDIT_CHECKPOINT_KEY", "")
PAAS_AUDIT_CHECKPOINT_DIR = env("PAAS_AUDIT_CHECKPOINT_DIR") or str(VAR_DIR / "audit-checkpoints")

# Demo data, each step a dotted path run in order by `manage.py demo_setup`. Later apps append theirs.
DEMO_SEEDERS = [
    "tenancy.demo.seed",
    "inventory.demo.seed",
    "catalog.demo.seed",
    "instances.demo.seed",
    "billing.demo.seed",
]

# --- Metrics and logs (paas/metrics.py, paas/metrics_views.py, paas/logging.py) ------------------------
# /metrics (web port) and the workers' PAAS_WORKER_METRICS_PORT answer `Authorization: Bearer <token>`;
# unset: /metrics does not exist (404). PROMETHEUS_MULTIPROC_DIR (read by prometheus-client itself):
# the processes' shared counters with `serve --workers N`.
PAAS_METRICS_TOKEN = env("PAAS_METRICS_TOKEN", "")
# Before any app loads (prometheus-client picks its mode when first imported): the directory exists, and a
# worker serving PAAS_WORKER_METRICS_PORT without one gets a private directory (paas/metrics_env.py).
from paas import metrics_env  # noqa: E402

metrics_env.setup()
# Logs on stderr: `text` (a line per record) or `json` (one JSON object per line with timestamp, level,
# logger, message and the request id; production's default).
PAAS_LOG_FORMAT = env("PAAS_LOG_FORMAT", "text")


def logging_config(log_format: str) -> dict:
    from paas.logging import logging_config as build

    return build(log_format, level=env("LOG_LEVEL", "INFO"))


LOGGING = logging_config(PAAS_LOG_FORMAT)

# The outbound-address policy (paas/outbound.py): addresses the platform connects out to (cluster API
# servers today) may not be loopback, link-local, cloud metadata, unspecified or multicast addresses;
# private ranges stay allowed. These settings widen or close it.
PAAS_OUTBOUND_ALLOW_LOOPBACK = env_bool("PAAS_OUTBOUND_ALLOW_LOOPBACK", False)
PAAS_OUTBOUND_ALLOWED_NETWORKS = env_list("PAAS_OUTBOUND_ALLOWED_NETWORKS")  # CIDRs, comma-separated
PAAS_OUTBOUND_DENY_ALL = env_bool("PAAS_OUTBOUND_DENY_ALL", False)  # refuse every outbound address

# Audit streaming (paas/audit_stream.py): `manage.py audit_stream` (started by `manage.py serve` beside
# the worker) passes over the sinks every POLL seconds, so new events leave within seconds. The
# every-minute "audit stream" schedule is the safety net: one pass, or a loop of LOOP seconds (it then
# holds one worker for that time; 0 by default, as the streamer runs). HOSTNAME is the syslog/Splunk
# host field (default: the host's name).
PAAS_AUDIT_STREAM_LOOP_SECONDS = env_int("PAAS_AUDIT_STREAM_LOOP_SECONDS", 0)
PAAS_AUDIT_STREAM_POLL_SECONDS = env_int("PAAS_AUDIT_STREAM_POLL_SECONDS", 2)
PAAS_AUDIT_STREAM_HOSTNAME = env("PAAS_AUDIT_STREAM_HOSTNAME", "")


def _default_helm_binary() -> str:
    """The helm v4 the suite and the demo build (tests/toolchain, cached beside localkube's binaries),
    if it is there; else ``helm`` on PATH; else empty (charts then cannot be rendered, and say so)."""
    import shutil

    cache = Path(os.environ.get("LOCALKUBE_CACHE") or Path.home() / ".cache" / "localkube")
    built = sorted((cache / "tools").glob("helm-v4.*/helm"), key=lambda p: p.stat().st_mtime, reverse=True)
    if built:
        return str(built[0])
    return shutil.which("helm") or ""


# Applications' Helm charts are rendered with `helm template` (catalog/sources/helm.py), never installed.
PAAS_HELM_BINARY = env("PAAS_HELM_BINARY") or _default_helm_binary()

# The web shell (instances/shell): kubectl (and helm, above) run in a bubblewrap sandbox, one per command
# line. Both binaries by path (`make run` builds them: python -m tests.toolchain build kubectl|bwrap);
# empty: the shell says it is not available. Limits: open shells per user, idle seconds, a session's
# longest life (its credential's lifetime), and the output passed to the browser per second.
PAAS_KUBECTL_BINARY = env("PAAS_KUBECTL_BINARY", "")
PAAS_BWRAP_BINARY = env("PAAS_BWRAP_BINARY", "")
PAAS_SHELL_MAX_PER_USER = env_int("PAAS_SHELL_MAX_PER_USER", 3)
PAAS_SHELL_IDLE_SECONDS = env_int("PAAS_SHELL_IDLE_SECONDS", 900)
PAAS_SHELL_MAX_SECONDS = env_int("PAAS_SHELL_MAX_SECONDS", 3600)
PAAS_SHELL_OUTPUT_BYTES_PER_SECOND = env_int("PAAS_SHELL_OUTPUT_BYTES_PER_SECOND", 65536)

# Container registries (catalog/registry_check.py): the Amazon ECR API an ECR registry's access key is
# exchanged at for a 12-hour registry token ({region} is the registry's), and how long before a token
# expires the scheduled refresh replaces it.
PAAS_ECR_API_URL = env("PAAS_ECR_API_URL", "https://api.ecr.{region}.amazonaws.com/")
PAAS_REGISTRY_TOKEN_REFRESH_MARGIN = env_int("PAAS_REGISTRY_TOKEN_REFRESH_MARGIN", 14400)  # seconds
