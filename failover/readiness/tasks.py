"""Celery task of the readiness check (on beat, every DRPORTAL_READINESS_INTERVAL_S)."""

from __future__ import annotations

from celery import shared_task

from .services import readiness_check


# The name it had when it lived in failover/tasks_readiness.py: beat schedules and queued
# messages of a running deployment name it so.
@shared_task(name="failover.tasks_readiness.check_readiness", ignore_result=True)
def check_readiness() -> dict:
    return readiness_check().as_dict()
