"""Settings, read from the environment (12-factor).

DATABASE_URL   default: an SQLite file for the demo (var/drportal.sqlite3); tests use PostgreSQL
REDIS_URL      default: redis://127.0.0.1:6379/0
SECRET_KEY     default: an insecure demo key, refused when DEBUG is off
DEBUG          default: on (the demo); "0"/"false" turns it off
ALLOWED_HOSTS  comma list, default: localhost,127.0.0.1,[::1]

Secrets (SECRET_KEY, DATABASE_URL, REDIS_URL, DRPORTAL_METRICS_TOKEN, EMAIL_HOST_PASSWORD)
may instead be read from a file named by NAME_FILE, e.g. a Docker secret under /run/secrets/.
Production (DEBUG off) turns on HTTPS-only cookies, HSTS and the HTTPS redirect; see the
README's "Deployment" section for every variable.

Longer than 400 lines on purpose: Django reads one settings module; each section says which
variable sets what and why its default is what it is.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("DRPORTAL_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={value!r}: expected one of 1/0, true/false, yes/no, on/off")


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_int(name: str, default: int, minimum: int = 0) -> int:
    value = os.environ.get(name, "")
    if value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r}: expected a whole number") from None
    if number < minimum:
        raise ImproperlyConfigured(f"{name}={value!r}: must be at least {minimum}")
    return number


def env_secret(name: str, default: str) -> str:
    """NAME, or the content of the file NAME_FILE (a Docker secret); never both."""
    path = os.environ.get(f"{name}_FILE", "")
    if not path:
        return os.environ.get(name, default)
    if os.environ.get(name):
        raise ImproperlyConfigured(f"{name} and {name}_FILE are both set: set only one of them")
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ImproperlyConfigured(f"{name}_FILE={path!r}: cannot read it ({exc.strerror or exc})") from None
    if not value:
        raise ImproperlyConfigured(f"{name}_FILE={path!r}: the file is empty")
    return value


DEBUG = env_bool("DEBUG", True)
_DEMO_SECRET = "demo-only-insecure-secret-key-change-me-0123456789"  # nosec B105  # demo only: refused below unless DEBUG
SECRET_KEY = env_secret("SECRET_KEY", _DEMO_SECRET)
if not DEBUG and SECRET_KEY == _DEMO_SECRET:
    raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "axes",
    "drportal",
    "hosts",
    "failover",
]

MIDDLEWARE = [
    "drportal.middleware.ForwardedHeadersOnlyFromTheProxy",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "drportal.sessions.SessionIdleRefresh",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Two sites: a standby refuses writes with a 503 (standalone: nothing to check).
    "drportal.middleware.StandbyGuard",
    "drportal.middleware.LoginRequiredEverywhere",
    "drportal.middleware.WriteConflictAnswers422",
    # Last: turns a lock-out flagged during authentication into the lock-out page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "drportal.urls"

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
                "django.template.context_processors.i18n",
                "drportal.context_processors.roles",
                "drportal.context_processors.site",  # two sites; standalone: no query
            ],
        },
    },
]

WSGI_APPLICATION = "drportal.wsgi.application"
ASGI_APPLICATION = "drportal.asgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        env_secret("DATABASE_URL", f"sqlite:///{VAR_DIR / 'drportal.sqlite3'}"),
        conn_max_age=int(os.environ.get("DB_CONN_MAX_AGE", "0")),
        # A kept connection is checked before it is reused: the database restarting
        # between two tasks costs a reconnect, not a failed action.
        conn_health_checks=True,
    )
}
# A pool per process (PostgreSQL only): a worker thread then holds a connection only
# while it talks to the database, not while it waits seconds for a host over SSH, so a
# worker can run far more actions at once than PostgreSQL has connections. Off (0) by
# default; docker-compose.yml turns it on for the workers. A pooled connection goes back
# to the pool after each task instead of living DB_CONN_MAX_AGE seconds.
DB_POOL_MAX_SIZE = int(os.environ.get("DB_POOL_MAX_SIZE", "0"))
if DB_POOL_MAX_SIZE and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": DB_POOL_MAX_SIZE,
        "timeout": 30,  # a thread waits this long for a free connection, then its task fails
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # The demo's single file is shared by web, worker and beat: wait for locks, don't fail.
    # A transaction that reads and then writes (every action's claim, every event) would
    # have to upgrade its lock, which SQLite refuses at once ("database is locked", no
    # waiting) while another writer holds it; IMMEDIATE takes the write lock at BEGIN, so
    # it waits (timeout) instead. WAL lets readers (the board) go on beside the writer.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        timeout=20, transaction_mode="IMMEDIATE", init_command="PRAGMA journal_mode=WAL"
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("de", "Deutsch")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = os.environ.get("TIME_ZONE", "Europe/Berlin")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Only collected (collectstatic) for production; the demo serves static/ via the finders.
STATIC_ROOT = None if DEBUG else Path(os.environ.get("STATIC_ROOT", VAR_DIR / "staticfiles"))

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "overview"
LOGOUT_REDIRECT_URL = "login"

REDIS_URL = env_secret("REDIS_URL", "redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
# Messages are acknowledged on receipt: the database, not the broker, knows what is left
# to do. A worker killed mid-task loses its message, and the reaper (which observes the
# estate before deciding) takes over; late acks would only add a redelivery an hour later
# and, with Redis, kombu's restore of unacked messages on reconnect crashes the worker.
CELERY_TASK_ACKS_LATE = False
# For the same reason no acknowledgement emulation on Redis: nothing to "restore", so a
# Redis restart cannot take the worker down (kombu's restore path fails on a lost link).
CELERY_BROKER_TRANSPORT_OPTIONS = {"ack_emulation": False}
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A worker takes a message only while one of its threads is free (Celery 5.5+, Redis
# brokers; ignored with a warning on others). A prefetch window counts only messages not
# yet started, so a worker whose threads were all busy still held one more per thread,
# which waited for it while another worker's threads were idle: in a start tier of 167
# actions on two workers of 100 threads, ~30 starts waited 5.6 s (bench/failover.py,
# 500 VMs at real latencies: the tier took 11.4 s against its commands' 5.4).
CELERY_WORKER_DISABLE_PREFETCH = os.environ.get("DRPORTAL_WORKER_DISABLE_PREFETCH", "1") == "1"
CELERY_TIMEZONE = TIME_ZONE
# Out of reach: Celery's fixup would close the database connections around every task;
# drportal/celery.py applies Django's CONN_MAX_AGE instead (close_old_connections).
CELERY_DB_REUSE_MAX = 10**9

# The estate
# Memory kept back for the hypervisor itself on every host, on top of dom0 (thesis: 0).
DRPORTAL_HYPERVISOR_RESERVE_MB = int(os.environ.get("DRPORTAL_HYPERVISOR_RESERVE_MB", "0"))
DRPORTAL_LAB_DIR = Path(os.environ.get("DRPORTAL_LAB_DIR", VAR_DIR / "lab"))
DRPORTAL_SSH_CONNECT_TIMEOUT = float(os.environ.get("DRPORTAL_SSH_CONNECT_TIMEOUT", "10"))
DRPORTAL_SSH_COMMAND_TIMEOUT = float(os.environ.get("DRPORTAL_SSH_COMMAND_TIMEOUT", "120"))
# Attempts at reaching a dom0 or an array before an action's command fails: a refused, reset
# or silent connection is tried again (0.5 s doubling, at most 5 s, within the command's
# timeout); never once the command was sent (hosts.drivers.ssh.SSHConnection.run).
DRPORTAL_SSH_CONNECT_ATTEMPTS = max(1, int(os.environ.get("DRPORTAL_SSH_CONNECT_ATTEMPTS", "3")))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"paramiko": {"level": "WARNING"}},
}

# Static files are served by WhiteNoise under uvicorn; in the demo straight from static/.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
# The workers' private key for hosts and arrays that do not name their own (the lab's in the demo).
DRPORTAL_SSH_KEY = Path(os.environ.get("DRPORTAL_SSH_KEY", DRPORTAL_LAB_DIR / "keys" / "id_drportal"))
# Where the inventory's private key paths may point (comma-separated directories). Empty:
# the directory of DRPORTAL_SSH_KEY, the lab's keys and /run/secrets (hosts.validators).
DRPORTAL_SSH_KEY_DIR = env_list("DRPORTAL_SSH_KEY_DIR", "")

# Failover
DRPORTAL_HOLIDAY_COUNTRY = os.environ.get("DRPORTAL_HOLIDAY_COUNTRY", "DE")
DRPORTAL_HOLIDAY_SUBDIV = os.environ.get("DRPORTAL_HOLIDAY_SUBDIV", "BW")
DRPORTAL_FOUR_EYES = env_bool("DRPORTAL_FOUR_EYES", False)
# A declaration noticed more than this many hours ago needs "I confirm this time".
DRPORTAL_DETECTED_MAX_AGE_H = float(os.environ.get("DRPORTAL_DETECTED_MAX_AGE_H", "24"))
# How many actions may talk to one host at once.
DRPORTAL_MAX_ACTIONS_PER_HOST = int(os.environ.get("DRPORTAL_MAX_ACTIONS_PER_HOST", "4"))
# How many actions may hold a management session on one storage array at once (an EVA's
# SSSU sessions on its Command View server, which takes only a handful). Without it the
# integrity checks of 500 groups on 50 dom0s opened up to 200 at once. 4: as the per-host
# bound, within a handful; no vendor figure was found to set it by. Each run counts its own.
DRPORTAL_MAX_ACTIONS_PER_ARRAY = int(os.environ.get("DRPORTAL_MAX_ACTIONS_PER_ARRAY", "4"))
# A running action's lease; the worker renews it every third of it. An expired lease
# means the worker died: the reaper observes and decides, it never re-runs blindly.
DRPORTAL_ACTION_LEASE_S = float(os.environ.get("DRPORTAL_ACTION_LEASE_S", "30"))
# No action may run longer than this (every command has its own timeout well below it).
DRPORTAL_ACTION_MAX_S = float(os.environ.get("DRPORTAL_ACTION_MAX_S", "1800"))
# A queued action not claimed within this long had its message lost (Redis restart).
DRPORTAL_REQUEUE_AFTER_S = float(os.environ.get("DRPORTAL_REQUEUE_AFTER_S", "20"))
DRPORTAL_REAPER_INTERVAL_S = float(os.environ.get("DRPORTAL_REAPER_INTERVAL_S", "5"))
CELERY_BEAT_SCHEDULE = {
    "reaper": {"task": "failover.tasks.reap", "schedule": DRPORTAL_REAPER_INTERVAL_S},
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# Board
# The run board follows a run by Server-Sent Events. With polling on it asks every
# DRPORTAL_BOARD_POLL_S seconds instead, and stops (status 286) once the run has ended.
DRPORTAL_BOARD_POLLING = env_bool("DRPORTAL_BOARD_POLLING", False)
DRPORTAL_BOARD_POLL_S = float(os.environ.get("DRPORTAL_BOARD_POLL_S", "2"))
# How many log lines the board shows (newest first).
DRPORTAL_BOARD_LOG_LINES = int(os.environ.get("DRPORTAL_BOARD_LOG_LINES", "200"))
# An event stream ends after this long and the browser reconnects with Last-Event-ID, so
# no connection outlives a proxy's idle limit or pins a worker forever.
DRPORTAL_SSE_MAX_SECONDS = float(os.environ.get("DRPORTAL_SSE_MAX_SECONDS", "300"))
# A comment line this often keeps proxies and browsers from calling the stream dead.
DRPORTAL_SSE_KEEPALIVE_S = float(os.environ.get("DRPORTAL_SSE_KEEPALIVE_S", "15"))
# How long the browser waits before it reconnects (the SSE "retry:" field).
DRPORTAL_SSE_RETRY_MS = int(os.environ.get("DRPORTAL_SSE_RETRY_MS", "1000"))
# How many event streams may be set up at once (each setup briefly holds a database
# connection; see failover.board.gate.StreamGate). Streaming itself is not limited.
DRPORTAL_SSE_SETUP_CONCURRENCY = int(os.environ.get("DRPORTAL_SSE_SETUP_CONCURRENCY", "16"))
# After a run's doorbell, wait this long so a burst of events goes out in one write. A
# person cannot tell 50 ms from 10, but the web server can: with 200 people watching the
# reference failover, 10 ms cost 42 writes per client and slowed the failover by 10.6 %,
# 50 ms cost 17 writes and 2.0 % (p95 latency 58 ms; bench/board.py --rounds 11).
DRPORTAL_SSE_BATCH_MS = float(os.environ.get("DRPORTAL_SSE_BATCH_MS", "50"))

# API
# Django REST framework under /api/ (failover.api), its OpenAPI schema at /api/schema/
# (drf-spectacular), and Prometheus metrics at /metrics. Clients authenticate with a
# token (manage.py api_token USERNAME) or the UI's session; permissions are the UI's.
INSTALLED_APPS += ["rest_framework", "rest_framework.authtoken", "drf_spectacular"]
REST_FRAMEWORK = {
    # Token first: its WWW-Authenticate header makes a request without credentials a 401.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["failover.api.permissions.RolePermissions"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": int(os.environ.get("DRPORTAL_API_PAGE_SIZE", "500")),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "drportal API",
    "DESCRIPTION": "Inventory, capacity what-ifs, readiness and runs of the Xen DR portal; declaring a disaster.",
    "VERSION": "1",
    "SCHEMA_PATH_PREFIX": "/api/",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema is no secret, but nothing here is served to strangers.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "RunStateEnum": "failover.choices.RunStateChoices",
        "StepStateEnum": "failover.choices.StepStateChoices",
        "ActionStateEnum": "failover.choices.ActionStateChoices",
        "RunKindEnum": "failover.choices.RunKindChoices",
        "RunModeEnum": "failover.choices.RunModeChoices",
        "ReplicationStateEnum": "hosts.choices.ReplicationStateChoices",
        "ReplicationModeEnum": "hosts.choices.ReplicationModeChoices",
    },
}
# /metrics: with a token set, scrapers send "Authorization: Bearer <token>" from anywhere;
# without one, only loopback clients are answered (see failover.api.metrics).
DRPORTAL_METRICS_TOKEN = env_secret("DRPORTAL_METRICS_TOKEN", "")

# Readiness and reports
# The readiness check (failover/readiness/, its own app and migrations) runs every
# DRPORTAL_READINESS_INTERVAL_S on Celery beat; a pass that would start after the next one
# is due expires instead of piling up behind a slow one.
INSTALLED_APPS += ["failover.readiness"]
CELERY_IMPORTS = ("failover.readiness.tasks",)
DRPORTAL_READINESS_INTERVAL_S = float(os.environ.get("DRPORTAL_READINESS_INTERVAL_S", "300"))
CELERY_BEAT_SCHEDULE["readiness"] = {
    "task": "failover.tasks_readiness.check_readiness",
    "schedule": DRPORTAL_READINESS_INTERVAL_S,
    "options": {"expires": DRPORTAL_READINESS_INTERVAL_S},
}
# The recovery point objective: a DR group lagging more than this makes its site not ready.
DRPORTAL_READINESS_RPO_S = float(os.environ.get("DRPORTAL_READINESS_RPO_S", "900"))
# A site whose last successful drill is older than this gets a warning (never drilled: too).
DRPORTAL_READINESS_DRILL_MAX_AGE_DAYS = int(os.environ.get("DRPORTAL_READINESS_DRILL_MAX_AGE_DAYS", "90"))

# Drills (failover/runs/drill.py): the isolated bridge each surviving dom0 attaches the clones
# to (per site "KA=xenbr-drill,WSL=xenbr-drill", else one name for all), and how long a
# drill may stay up before the reaper stops it and cleans up.
DRPORTAL_DRILL_BRIDGE = os.environ.get("DRPORTAL_DRILL_BRIDGE", "xenbr-drill")
DRPORTAL_DRILL_BRIDGES: dict[str, str] = {}
for _item in env_list("DRPORTAL_DRILL_BRIDGES", ""):
    _site, _eq, _bridge = _item.partition("=")
    if not (_site.strip() and _eq and _bridge.strip()):
        raise ImproperlyConfigured(
            f"DRPORTAL_DRILL_BRIDGES: {_item!r} is not SITE=BRIDGE, e.g. KA=xenbr-drill"
        )
    DRPORTAL_DRILL_BRIDGES[_site.strip()] = _bridge.strip()
DRPORTAL_DRILL_MAX_S = float(os.environ.get("DRPORTAL_DRILL_MAX_S", str(4 * 3600)))
# Failback and planned migration: how long to wait for a mirror to become consistent (a
# full copy back after a disaster may take hours: the action fails, a person retries) and
# for a VM's clean shutdown.
DRPORTAL_SYNC_WAIT_S = float(os.environ.get("DRPORTAL_SYNC_WAIT_S", "600"))
DRPORTAL_SHUTDOWN_WAIT_S = float(os.environ.get("DRPORTAL_SHUTDOWN_WAIT_S", "300"))
# A VM a run has started gets this long to boot before a functional check that finds its
# service down is recorded as down (asked again after 0.25 s, 0.5 s, ... at most every
# DRPORTAL_CHECK_POLL_S).
DRPORTAL_CHECK_SETTLE_S = float(os.environ.get("DRPORTAL_CHECK_SETTLE_S", "120"))
DRPORTAL_CHECK_POLL_S = float(os.environ.get("DRPORTAL_CHECK_POLL_S", "2"))
# Passes in which no verdict changed are deleted after this many days; changes are kept.
DRPORTAL_READINESS_KEEP_DAYS = int(os.environ.get("DRPORTAL_READINESS_KEEP_DAYS", "30"))
# Readiness e-mails go to the MoD and DR admin users with an address. The demo prints them
# on the console; production sets EMAIL_BACKEND (smtp) and EMAIL_HOST/EMAIL_PORT.
EMAIL_BACKEND = os.environ.get(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_secret("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "drportal@localhost")
# Where mails link to (scheme and host, e.g. https://drportal.example.org); empty: paths only.
DRPORTAL_BASE_URL = os.environ.get("DRPORTAL_BASE_URL", "").rstrip("/")

# Production hardening (README, "Deployment")
# HTTPS: on whenever DEBUG is off. drportal sits behind a TLS reverse proxy; uvicorn takes
# the client's address and scheme from X-Forwarded-For/-Proto only from the proxy named in
# FORWARDED_ALLOW_IPS, so no SECURE_PROXY_SSL_HEADER (a header anyone could send) is needed.
# The proxy's address(es), the same variable uvicorn reads; empty (the demo): no proxy, and a
# request with X-Forwarded-* is refused (drportal.middleware.ForwardedHeadersOnlyFromTheProxy).
DRPORTAL_TRUSTED_PROXIES = env_list("FORWARDED_ALLOW_IPS", "")
DRPORTAL_HTTPS = env_bool("DRPORTAL_HTTPS", not DEBUG)
SECURE_SSL_REDIRECT = DRPORTAL_HTTPS
# The containers' health check asks over plain HTTP from inside.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SESSION_COOKIE_SECURE = DRPORTAL_HTTPS
CSRF_COOKIE_SECURE = DRPORTAL_HTTPS
SECURE_HSTS_SECONDS = env_int("DRPORTAL_HSTS_SECONDS", 365 * 24 * 3600 if DRPORTAL_HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DRPORTAL_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("DRPORTAL_HSTS_PRELOAD", True)
# The origins a form may be posted from (scheme and host), e.g. https://drportal.example.org.
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")
for _origin in CSRF_TRUSTED_ORIGINS:
    if not _origin.startswith(("https://", "http://")):
        raise ImproperlyConfigured(
            f"CSRF_TRUSTED_ORIGINS: {_origin!r} needs its scheme, e.g. https://{_origin.split('://')[-1]}"
        )

# Content-Security-Policy (issue 17 item 12; django-csp): every response says that only
# drportal's own files may run, style, load or frame it. No inline script or style anywhere
# (templates use classes and data attributes; static/js sets what must be computed), so an
# injected <script> or style="" would not run even if escaping failed somewhere. htmx is
# told not to inject its indicator <style> (meta htmx-config; the CSS is in drportal.css).
# img-src also allows data: URIs (small inline icons). The PDF (WeasyPrint) reads the
# templates itself and is not affected.
from csp.constants import NONE, SELF  # noqa: E402  (with the block it belongs to)

INSTALLED_APPS += ["csp"]
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1, "csp.middleware.CSPMiddleware"
)
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
    },
}

# Sessions end after DRPORTAL_SESSION_IDLE_S without a request; every request (an open run
# board reconnects its event stream at least every DRPORTAL_SSE_MAX_SECONDS) starts the
# clock again, so a board left open stays logged in and an abandoned browser does not.
# The session is written at most every DRPORTAL_SESSION_REFRESH_S (drportal.sessions).
SESSION_COOKIE_AGE = env_int("DRPORTAL_SESSION_IDLE_S", 8 * 3600, minimum=60)
DRPORTAL_SESSION_REFRESH_S = 60
_SESSION_MIN = DRPORTAL_SSE_MAX_SECONDS + DRPORTAL_SSE_RETRY_MS / 1000 + DRPORTAL_SESSION_REFRESH_S
if SESSION_COOKIE_AGE <= _SESSION_MIN:
    raise ImproperlyConfigured(
        f"DRPORTAL_SESSION_IDLE_S={SESSION_COOKIE_AGE} must exceed DRPORTAL_SSE_MAX_SECONDS="
        f"{DRPORTAL_SSE_MAX_SECONDS:g} by more than {_SESSION_MIN - DRPORTAL_SSE_MAX_SECONDS:g} s: "
        "an open run board would be logged out between two streams"
    )

# Login throttling (django-axes): after DRPORTAL_LOGIN_FAILURE_LIMIT failed logins of one
# user name from one address, that pair is locked out for DRPORTAL_LOGIN_COOLOFF_MIN
# minutes (every further try starts the wait again). Locking the pair, not the user alone,
# means nobody can lock the Manager on Duty out in a disaster from somewhere else.
# Attempts and lock-outs are recorded (admin: Axes); `manage.py axes_reset_username NAME`
# lifts one early.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("DRPORTAL_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("DRPORTAL_LOGIN_COOLOFF_MIN", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_ENABLE_ACCESS_FAILURE_LOG = True
AXES_LOCKOUT_CALLABLE = "drportal.lockout.lockout_response"
# Not verbose: no "AXES: BEGIN ..." banner on every management command and process start;
# a failure's log line then names the lock-out parameters (user name and address), and
# the recorded attempts (admin: Axes) keep the user agent as before.
AXES_VERBOSE = False
# Beside it, a growing delay per user name (drportal/login_delay.py): after n failed logins
# of a name, from anywhere, its next attempt waits DRPORTAL_LOGIN_DELAY_BASE_S × 2^(n-1)
# seconds (at most DRPORTAL_LOGIN_DELAY_MAX_S) before the password is checked; never a
# refusal, so nobody can lock the Manager on Duty out. A success starts again.
DRPORTAL_LOGIN_DELAY_BASE_S = float(os.environ.get("DRPORTAL_LOGIN_DELAY_BASE_S", "1"))
DRPORTAL_LOGIN_DELAY_MAX_S = float(os.environ.get("DRPORTAL_LOGIN_DELAY_MAX_S", "30"))

# Two sites (issue 14; docs/two-sites.md, drportal/twosite.py): one portal per data centre,
# the active site's PostgreSQL streaming to a hot standby at the other. DRPORTAL_SITE is
# this portal's site code (WSL or KA); unset, the portal is standalone and every two-site
# check is off. DRPORTAL_PEER_DATABASE_URL is the other site's PostgreSQL (libpq URL): a
# take-over is refused while it answers as primary, and a portal whose peer answers as a
# primary of a newer epoch knows it is behind. DRPORTAL_PEER_PORTAL_URL (optional) is the
# other portal, linked from the banner.
DRPORTAL_SITE = os.environ.get("DRPORTAL_SITE", "").strip()
DRPORTAL_PEER_DATABASE_URL = env_secret("DRPORTAL_PEER_DATABASE_URL", "")
DRPORTAL_PEER_PORTAL_URL = os.environ.get("DRPORTAL_PEER_PORTAL_URL", "").rstrip("/")
DRPORTAL_PEER_CONNECT_TIMEOUT_S = float(os.environ.get("DRPORTAL_PEER_CONNECT_TIMEOUT_S", "2"))
DRPORTAL_SITE_STATUS_CACHE_S = float(os.environ.get("DRPORTAL_SITE_STATUS_CACHE_S", "1"))
# A standby that has not heard from its primary for longer than this says so on every page.
DRPORTAL_STANDBY_LOST_AFTER_S = float(os.environ.get("DRPORTAL_STANDBY_LOST_AFTER_S", "60"))
# A standby further behind than this is a problem (readiness, the site page).
DRPORTAL_STANDBY_MAX_LAG_S = float(os.environ.get("DRPORTAL_STANDBY_MAX_LAG_S", "30"))
if DRPORTAL_SITE:
    if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        raise ImproperlyConfigured(
            f"DRPORTAL_SITE={DRPORTAL_SITE!r}: two sites need PostgreSQL (streaming replication); "
            "DATABASE_URL is not a postgres:// URL"
        )
    if not DRPORTAL_PEER_DATABASE_URL:
        raise ImproperlyConfigured(
            f"DRPORTAL_SITE={DRPORTAL_SITE!r} needs DRPORTAL_PEER_DATABASE_URL (the other site's PostgreSQL)"
        )
    # The sessions (and, while read-only, the lock-out records) live in this site's Redis:
    # a standby's PostgreSQL takes no writes, and logging in there must still work. After a
    # take-over people log in again at the surviving portal (its own address, its own Redis).
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
    SESSION_ENGINE = "django.contrib.sessions.backends.cache"
    AXES_HANDLER = "drportal.standby_login.AxesSiteHandler"
