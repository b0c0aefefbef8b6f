"""The Celery application. Tasks stay thin: fetch by id, call a service."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "drportal.settings")

app = Celery("drportal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def _database_connections(**_kwargs) -> None:
    """Django's own rule for a connection's life, as after a web request: close it once
    it is older than CONN_MAX_AGE or broken, keep it otherwise.

    Celery's Django fixup closes every connection before and after every task unless
    CELERY_DB_REUSE_MAX is set (celery/celery#4116; #9824 reverted the fix). A new
    PostgreSQL connection per task cost more CPU than most engine tasks themselves, so
    settings.py sets CELERY_DB_REUSE_MAX out of reach and this handler decides."""
    from django.db import close_old_connections

    close_old_connections()
