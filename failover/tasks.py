"""Celery tasks: thin, fetch by id, call the engine."""

from __future__ import annotations

from celery import shared_task

from .engine.advance import advance
from .engine.execute import execute
from .engine.reaper import reap as engine_reap
from .runs.cleanup import followups


@shared_task(name="failover.tasks.execute_action", ignore_result=True)
def execute_action(action_id: int) -> None:
    execute(action_id)


@shared_task(name="failover.tasks.advance_run", ignore_result=True)
def advance_run(run_id: int) -> None:
    advance(run_id)


@shared_task(name="failover.tasks.reap", ignore_result=True)
def reap() -> dict:
    result = engine_reap()
    # Drills that ended get their cleanup; drills left up past the limit are stopped.
    result["drills"] = followups()
    return result
