"""Sending work to the Celery workers: the engine's one way to the task queue.

The tasks module imports the engine (a task is a thin call into it), so the engine
reaches the tasks only here, at the moment it sends, never at import.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def send_actions(action_ids: list[int]) -> None:
    """Ring the workers. A failure to send loses nothing: the action is QUEUED in the
    database and the reaper sends it again after DRPORTAL_REQUEUE_AFTER_S."""
    from failover.tasks import execute_action

    if not action_ids:
        return
    try:
        # One producer (one broker channel) for the whole batch: a channel per message cost
        # a new Redis client each (1-2 ms of a worker's CPU per action). And one Redis
        # pipeline for its messages (kombu's producer batch: one client, one round trip),
        # not a Redis client and a round trip per message; it is sent when the batch ends.
        with execute_action.app.producer_or_acquire() as producer, producer.batch():
            for action_id in action_ids:
                try:
                    execute_action.apply_async((action_id,), producer=producer)
                except Exception as exc:  # the broker is down; the reaper re-sends
                    log.warning("action %s queued but not sent (%s); the reaper will send it", action_id, exc)
    except Exception as exc:  # no producer, or the batch was not sent: the broker is down
        log.warning("actions %s queued but not sent (%s); the reaper will send them", action_ids, exc)


def kick_run(run_id: int) -> None:
    """Ask a worker to advance the run; if the broker is down, the reaper advances it."""
    from failover.tasks import advance_run

    try:
        advance_run.delay(run_id)
    except Exception as exc:
        log.warning("run %s not kicked (%s); the reaper will advance it", run_id, exc)


def kick_readiness(why: str) -> None:
    """Ask a worker for a readiness check now (a run ended: the estate has changed), not
    at beat's next turn up to DRPORTAL_READINESS_INTERVAL_S later. A check that could not
    start within that interval is dropped (beat's next one replaces it)."""
    from django.conf import settings

    from drportal.celery import app

    # By the name beat schedules it under: the engine sits below readiness and does not import it.
    task = settings.CELERY_BEAT_SCHEDULE["readiness"]["task"]
    try:
        app.send_task(task, expires=settings.DRPORTAL_READINESS_INTERVAL_S)
    except Exception as exc:
        log.warning("readiness check after %s not sent (%s); beat runs the next one", why, exc)
