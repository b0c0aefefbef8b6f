"""Settings, read from the environment (12-factor).

DATABASE_URL   default: an SQLite file for the demo (var/drportal.sqlite3); tests use PostgreSQL
REDIS_URL      default: redis://127.0.0.1:6379/0
SECRET_KEY     default: an insecure demo key, refused when DEBUG is off
DEBUG          default: on (the demo); "0"/"false" turns it off
ALLOWED_HOSTS  comma list, default: localhost,127.0.0.1,[::1]
"""

from __future__ import annotations

import os
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


DEBUG = env_bool("DEBUG", True)
_DEMO_SECRET = "demo-only-insecure-secret-key-change-me-0123456789"
SECRET_KEY = os.environ.get("SECRET_KEY", _DEMO_SECRET)
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
    "hosts",
    "failover",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "drportal.middleware.LoginRequiredEverywhere",
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
            ],
        },
    },
]

WSGI_APPLICATION = "drportal.wsgi.application"
ASGI_APPLICATION = "drportal.asgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'drportal.sqlite3'}"),
        conn_max_age=int(os.environ.get("DB_CONN_MAX_AGE", "0")),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # The demo's single file is shared by web, worker and beat: wait for locks, don't fail.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20

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

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
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
CELERY_TIMEZONE = TIME_ZONE

# The estate
# Memory kept back for the hypervisor itself on every host, on top of dom0 (thesis: 0).
DRPORTAL_HYPERVISOR_RESERVE_MB = int(os.environ.get("DRPORTAL_HYPERVISOR_RESERVE_MB", "0"))
DRPORTAL_LAB_DIR = Path(os.environ.get("DRPORTAL_LAB_DIR", VAR_DIR / "lab"))
DRPORTAL_SSH_CONNECT_TIMEOUT = float(os.environ.get("DRPORTAL_SSH_CONNECT_TIMEOUT", "10"))
DRPORTAL_SSH_COMMAND_TIMEOUT = float(os.environ.get("DRPORTAL_SSH_COMMAND_TIMEOUT", "120"))

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

# Failover
DRPORTAL_HOLIDAY_COUNTRY = os.environ.get("DRPORTAL_HOLIDAY_COUNTRY", "DE")
DRPORTAL_HOLIDAY_SUBDIV = os.environ.get("DRPORTAL_HOLIDAY_SUBDIV", "BW")
DRPORTAL_FOUR_EYES = env_bool("DRPORTAL_FOUR_EYES", False)
# How many actions may talk to one host at once.
DRPORTAL_MAX_ACTIONS_PER_HOST = int(os.environ.get("DRPORTAL_MAX_ACTIONS_PER_HOST", "4"))
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
# connection; see failover.stream.StreamGate). Streaming itself is not limited.
DRPORTAL_SSE_SETUP_CONCURRENCY = int(os.environ.get("DRPORTAL_SSE_SETUP_CONCURRENCY", "16"))
# After a run's doorbell, wait this long so a burst of events goes out in one write.
DRPORTAL_SSE_BATCH_MS = float(os.environ.get("DRPORTAL_SSE_BATCH_MS", "10"))

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
DRPORTAL_METRICS_TOKEN = os.environ.get("DRPORTAL_METRICS_TOKEN", "")

# Readiness and reports
# The readiness check (failover/readiness/, its own app and migrations) runs every
# DRPORTAL_READINESS_INTERVAL_S on Celery beat; a pass that would start after the next one
# is due expires instead of piling up behind a slow one.
INSTALLED_APPS += ["failover.readiness"]
CELERY_IMPORTS = ("failover.tasks_readiness",)
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
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "drportal@localhost")
# Where mails link to (scheme and host, e.g. https://drportal.example.org); empty: paths only.
DRPORTAL_BASE_URL = os.environ.get("DRPORTAL_BASE_URL", "").rstrip("/")
