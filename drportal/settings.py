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
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
# Messages are acknowledged on receipt: the database, not the broker, knows what is left
# to do. A worker killed mid-task loses its message, and the reaper (which observes the
# estate before deciding) takes over; late acks would only add a redelivery an hour later
# and, with Redis, kombu's restore of unacked messages on reconnect crashes the worker.
CELERY_TASK_ACKS_LATE = False
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
