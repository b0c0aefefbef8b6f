"""The Celery application. Tasks stay thin: fetch by id, call a service."""

from __future__ import annotations

import logging
import os
import time

from celery import Celery, Task
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "drportal.settings")

log = logging.getLogger("drportal.twosite")


class SiteTask(Task):
    """Every task first asks whether this portal may act (drportal.twosite): on a standby,
    or on a portal that is behind, the workers and beat's jobs do nothing, and say why (once
    a minute, or when the reason changes: beat's reaper asks every few seconds)."""

    _said: tuple[str, float] = ("", 0.0)

    def __call__(self, *args, **kwargs):
        from .twosite import site_status

        status = site_status()
        if status.may_act:
            return super().__call__(*args, **kwargs)
        said, at = SiteTask._said
        if status.reason != said or time.monotonic() - at > 60:
            SiteTask._said = (status.reason, time.monotonic())
            log.warning("%s not run, nor any task until this changes: %s", self.name, status.reason)
        return None


app = Celery("drportal", task_cls=SiteTask)
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
