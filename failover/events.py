"""RunEvents: numbered per run, written in the caller's transaction; after commit a
Redis message rings the doorbell of the board's stream (never the payload)."""

from __future__ import annotations

import functools
import logging

import redis
from django.conf import settings
from django.db import transaction
from django.db.models import F

from .models import Run, RunEvent

log = logging.getLogger(__name__)


def channel(run_id: int) -> str:
    # Pub/sub ignores Redis database numbers: the channel names the database (and so the
    # deployment, or the test run), or portals sharing one Redis ring each other's bells.
    return f"drportal:{_redis_db(settings.REDIS_URL)}:run:{run_id}"


@functools.lru_cache(maxsize=4)
def _redis_db(url: str) -> int:
    return redis.Redis.from_url(url).connection_pool.connection_kwargs.get("db", 0)


def record_event(
    *, run_id: int, kind: str, message: str, action_id: int | None = None, user=None, data: dict | None = None
) -> RunEvent:
    """Append one event. Must run inside a transaction: the counter UPDATE takes the
    run's row lock, so concurrent writers number their events without gaps or twins."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("record_event needs a transaction (the counter and the row commit together)")
    Run.objects.filter(pk=run_id).update(event_seq=F("event_seq") + 1)
    seq = Run.objects.filter(pk=run_id).values_list("event_seq", flat=True).get()
    event = RunEvent.objects.create(
        run_id=run_id, seq=seq, kind=kind, message=message, action_id=action_id, user=user, data=data or {}
    )
    transaction.on_commit(lambda: ring_doorbell(run_id, seq))
    return event


_client: redis.Redis | None = None


def ring_doorbell(run_id: int, seq: int) -> None:
    global _client
    try:
        if _client is None:
            _client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
        _client.publish(channel(run_id), str(seq))
    except redis.RedisError as exc:
        # The board falls back to polling and Last-Event-ID replay; a lost ring loses nothing.
        log.warning("doorbell for run %s #%s not rung: %s", run_id, seq, exc)
        _client = None
