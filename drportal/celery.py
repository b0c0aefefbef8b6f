"""The Celery application. Tasks stay thin: fetch by id, call a service."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "drportal.settings")

app = Celery("drportal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
