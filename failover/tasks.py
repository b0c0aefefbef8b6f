"""Celery tasks: thin, fetch by id, call the engine."""

from __future__ import annotations

from celery import shared_task
from celery.signals import worker_ready

from .engine.advance import advance
from .engine.dispatch import kick_readiness
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


@worker_ready.connect
def readiness_at_start(**_kwargs) -> None:
    """A worker that starts checks readiness at once (through the queue, like beat's
    check): the last verdict may be up to DRPORTAL_READINESS_INTERVAL_S old, or from
    before the estate changed while no worker ran."""
    kick_readiness("worker start")
